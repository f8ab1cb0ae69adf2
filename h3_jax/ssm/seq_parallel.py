"""Sequence parallelism for the time-invariant SSMs: the length axis split over S devices.

Device s holds steps [s T, (s + 1) T) of every sequence (T = L / S). These functions run inside
`jax.shard_map`, once per device, with collectives over the mesh axis `axis`:

- The diagonal SSM is state passing with the devices as chunks (see `state.py`): each device
  runs the convolution view on its own chunk from zero state and computes the chunk's final
  state x_j; one all-gather of those states gives every device the state entering its chunk,

      x_in(s) = sum_{j < s} dA^(T (s - 1 - j)) x_j        (an exclusive prefix over devices),

  whose free response (`diag_ssm_state_output`) it adds to its output.
- The shift SSM is a filter of N taps: each device needs the previous device's last N - 1
  inputs (a halo, one `ppermute`).

Per layer and direction this moves S states (..., H, N) (complex) to every device and one halo
(..., N - 1, H) to the next; the backward pass moves as much again.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Complex, Float


def incoming_state(
    dA: Complex[Array, "H N"], x_last: Complex[Array, "... H N"], length: int, axis: str
) -> Complex[Array, "... H N"]:
    """The state entering this device's chunk, from every device's chunk-final state `x_last`
    (computed from zero state over `length` = T steps); zero on the first device."""
    states = jax.lax.all_gather(x_last, axis)  # (S, ..., H, N)
    here = jax.lax.axis_index(axis)
    earlier = jnp.arange(states.shape[0])
    # Clamped so that the later devices' (masked) weights stay finite for the gradient.
    hops = jnp.maximum(here - 1 - earlier, 0).astype(jnp.float32)
    weights = jnp.exp(hops[:, None, None] * (jnp.log(dA) * length))  # (S, H, N)
    weights = jnp.where((earlier < here)[:, None, None], weights, 0)
    weights = weights.reshape(weights.shape[0], *([1] * (states.ndim - 3)), *dA.shape)
    return jnp.sum(weights * states, axis=0)


def with_halo(u: Float[Array, "... T H"], width: int, axis: str) -> Float[Array, "... L H"]:
    """u preceded by the previous device's last `width` steps (zeros on the first device)."""
    if width == 0:
        return u
    if width > u.shape[-2]:
        raise ValueError(f"with_halo: a halo of {width} steps needs chunks at least that long, "
                         f"got {u.shape[-2]} steps per device")
    shards = jax.lax.axis_size(axis)
    tail = u[..., u.shape[-2] - width:, :]
    halo = jax.lax.ppermute(tail, axis, perm=[(s, s + 1) for s in range(shards - 1)])
    return jnp.concatenate([halo, u], axis=-2)
