"""The shift SSM as a Flax module: a learned causal filter of n_taps steps per channel.

x_t = S x_{t-1} + B u_t, y_t = C x_t + D u_t with S the down-shift. Its kernel has exactly n_taps
taps (C itself when B = e_1), so whole sequences use a Toeplitz-block convolution, never a
full-length FFT, and the recurrent state is simply the last n_taps inputs.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Array, Float

from h3_jax import ssm
from h3_jax.layers import seq_mesh


class ShiftFilter(NamedTuple):
    """The shift SSM as a filter: y_t = sum_j K[h, j] u_{t-j} + D[h] u_t."""

    K: Float[Array, "H N"]
    D: Float[Array, " H"]


class ShiftSSM(nn.Module):
    """Parameters B, C (H, N) and D (H,) of `channels` shift SSMs with n_taps = N; returns ShiftFilter.

    B is trainable with init e_1 (as in the official code), C ~ U(+-1/sqrt(N)), D ~ N(0, 1).
    """

    channels: int
    n_taps: int

    @nn.compact
    def __call__(self) -> ShiftFilter:
        H, N = self.channels, self.n_taps
        init = lambda k: ssm.init_shift_ssm(k, H, N)  # noqa: E731
        B = self.param("B", lambda k: init(k)["B"])
        C = self.param("C", lambda k: init(k)["C"])
        D = self.param("D", nn.initializers.normal(1.0), (H,), jnp.float32)
        return ShiftFilter(ssm.shift_ssm_kernel(B, C, N), D)


def sequence(filt: ShiftFilter, u: Float[Array, "... L H"]) -> Float[Array, "... L H"]:
    """The filter over a whole sequence; under a mesh with a `seq` axis, per length shard with
    the previous shard's last N - 1 inputs handed over."""
    if seq_mesh.seq_shards() > 1:
        return seq_mesh.over_length(_length_shard, filt, u)
    return ssm.short_causal_conv(u, filt.K, filt.D)


def _length_shard(filt: ShiftFilter, u: Float[Array, "... T H"]) -> Float[Array, "... T H"]:
    width = filt.K.shape[-1] - 1
    extended = ssm.seq_parallel.with_halo(u, width, seq_mesh.SEQ_AXIS)
    return ssm.short_causal_conv(extended, filt.K, filt.D)[..., width:, :]


def final_state(u: Float[Array, "... L H"], n_taps: int) -> Float[Array, "... H N"]:
    """The last n_taps inputs, newest first (zeros before the start): state[..., h, m] = u_{L-1-m}."""
    length = u.shape[-2]
    pad = [(0, 0)] * u.ndim
    pad[-2] = (max(0, n_taps - length), 0)
    recent = jnp.pad(u, pad)[..., -n_taps:, :]
    return jnp.swapaxes(jnp.flip(recent, axis=-2), -1, -2)


def step(
    filt: ShiftFilter, state: Float[Array, "... H N"], u_t: Float[Array, "... H"]
) -> tuple[Float[Array, "... H N"], Float[Array, "... H"]]:
    """Push u_t into the history and filter it -> (new state, y_t)."""
    state = jnp.concatenate([u_t[..., None], state[..., :-1]], axis=-1)
    y = jnp.sum(filt.K * state, axis=-1) + filt.D * u_t
    return state, y
