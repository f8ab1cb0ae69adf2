"""The diagonal SSM as a recurrence: parallel (associative) scan, chunked scan, one step, reference.

    x_t = dA x_{t-1} + dB u_t,    y_t = 2 Re sum_n C_n x_t[n]    (per channel h)

The D skip term is not part of these functions; add D * u to compare with `causal_conv`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Complex, Float

from h3_jax.ssm._checks import Signature, positive_int
from h3_jax.ssm._chunks import scan_chunks
from h3_jax.ssm.kernels import HIGHEST


def _check(fn: str, dA, dB, C, u, x0, *, u_name="u", u_spec="... L H", x0_name="x0"):
    """Validate the arguments; return the initial state (zeros when x0 is None)."""
    sig = Signature(fn)
    sig.diag_ssm(dA, dB, C)
    sig.array(u_name, u, u_spec, kind="real")
    if x0 is None:
        batch = sig.batch_shape(u_name, u, u_spec)
        return jnp.zeros((*batch, *dA.shape), jnp.result_type(dA, dB, u))
    return sig.array(x0_name, x0, "... H N", kind="complex")


def _combine(left, right):
    """Composition of affine maps x -> a x + b: apply `left`, then `right`."""
    a_left, b_left = left
    a_right, b_right = right
    return a_left * a_right, a_right * b_left + b_right


def _readout(C, x):
    """2 Re sum_n C_n x[n], over the last axis."""
    return 2 * (jnp.einsum("...hn,hn->...h", x.real, C.real, precision=HIGHEST)
                - jnp.einsum("...hn,hn->...h", x.imag, C.imag, precision=HIGHEST))


def _scan_block(dA, dB, C, u, x0):
    """Associative scan over one block u (..., T, H) from state x0 -> (y, x_last)."""
    b = dB * u[..., None]  # (..., T, H, N)
    b = b.at[..., 0, :, :].add(dA * x0)
    time_axis = b.ndim - 3
    # dA is the same at every step: keep it unbroadcast over the batch axes.
    a = jnp.broadcast_to(dA, (*(1,) * time_axis, u.shape[-2], *dA.shape))
    _, x = jax.lax.associative_scan(_combine, (a, b), axis=time_axis)
    return _readout(C, x), x[..., -1, :, :]


def diag_ssm_scan(
    dA: Complex[Array, "H N"],
    dB: Complex[Array, "H N"],
    C: Complex[Array, "H N"],
    u: Float[Array, "... L H"],
    x0: Complex[Array, "... H N"] | None = None,
    chunk_size: int | None = None,
) -> tuple[Float[Array, "... L H"], Complex[Array, "... H N"]]:
    """Run the recurrence over u with `jax.lax.associative_scan` -> (y, x_last).

    With `chunk_size`, the scan runs inside chunks of that many steps and a sequential loop
    carries the state between them, so memory grows as chunk_size*H*N instead of L*H*N; the
    backward pass recomputes each chunk instead of storing its states.
    """
    x0 = _check("diag_ssm_scan", dA, dB, C, u, x0)
    length = u.shape[-2]
    if chunk_size is None or positive_int("diag_ssm_scan", "chunk_size", chunk_size) >= length:
        return _scan_block(dA, dB, C, u, x0)

    @jax.checkpoint
    def one_chunk(x, u_chunk):
        y, x = _scan_block(dA, dB, C, u_chunk, x)
        return x, y

    return scan_chunks(one_chunk, x0, u, chunk_size)


def diag_ssm_step(
    dA: Complex[Array, "H N"],
    dB: Complex[Array, "H N"],
    C: Complex[Array, "H N"],
    x: Complex[Array, "... H N"],
    u_t: Float[Array, "... H"],
) -> tuple[Complex[Array, "... H N"], Float[Array, "... H"]]:
    """One step of the recurrence -> (x_new, y_t)."""
    _check("diag_ssm_step", dA, dB, C, u_t, x, u_name="u_t", u_spec="... H", x0_name="x")
    x = dA * x + dB * u_t[..., None]
    return x, _readout(C, x)


def diag_ssm_recurrence(
    dA: Complex[Array, "H N"],
    dB: Complex[Array, "H N"],
    C: Complex[Array, "H N"],
    u: Float[Array, "... L H"],
    x0: Complex[Array, "... H N"] | None = None,
) -> tuple[Float[Array, "... L H"], Complex[Array, "... H N"]]:
    """Reference for the fast paths: one step at a time with `jax.lax.scan` -> (y, x_last)."""
    x0 = _check("diag_ssm_recurrence", dA, dB, C, u, x0)
    step = lambda x, u_t: diag_ssm_step(dA, dB, C, x, u_t)  # noqa: E731
    x_last, ys = jax.lax.scan(step, x0, jnp.moveaxis(u, -2, 0))
    return jnp.moveaxis(ys, 0, -2), x_last
