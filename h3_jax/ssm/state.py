"""State passing: the FFT path over a long sequence, one chunk at a time, carrying the SSM state.

Within a chunk that starts from state x0, the output splits into the convolution of the chunk
(zero initial state) and the free response of x0:

    y_t = (K * u)_t + D u_t + 2 Re sum_n C_n dA_n^(t+1) x0_n
    x_T = dA^T x0 + sum_{r<T} dA^r dB u_{T-1-r}

Both extra terms are Vandermonde products, computed with the same sqrt(T) power tables as the
kernel, so no (..., T, H, N) array is ever formed.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Complex, Float

from h3_jax.ssm._checks import Signature, positive_int
from h3_jax.ssm._chunks import scan_chunks
from h3_jax.ssm.conv import causal_conv
from h3_jax.ssm.kernels import HIGHEST, diag_ssm_kernel, power_tables, vandermonde


def diag_ssm_state_output(
    dA: Complex[Array, "H N"],
    C: Complex[Array, "H N"],
    x0: Complex[Array, "... H N"],
    length: int,
) -> Float[Array, "... L H"]:
    """Output contribution of an initial state: y_t = 2 Re sum_n C dA^(t+1) x0, for t < length."""
    sig = Signature("diag_ssm_state_output")
    sig.array("dA", dA, "H N", kind="complex")
    sig.array("C", C, "H N", kind="complex")
    sig.array("x0", x0, "... H N", kind="complex")
    length = positive_int("diag_ssm_state_output", "length", length)
    return jnp.swapaxes(vandermonde(C * dA * x0, dA, length), -1, -2)


def diag_ssm_final_state(
    dA: Complex[Array, "H N"],
    dB: Complex[Array, "H N"],
    u: Float[Array, "... L H"],
    x0: Complex[Array, "... H N"] | None = None,
) -> Complex[Array, "... H N"]:
    """State after running u from x0: x_L = dA^L x0 + sum_{r<L} dA^r dB u_{L-1-r}."""
    sig = Signature("diag_ssm_final_state")
    sig.diag_ssm(dA, dB)
    sig.array("u", u, "... L H", kind="real")
    if x0 is not None:
        sig.array("x0", x0, "... H N", kind="complex")
    length = u.shape[-2]
    inner, outer, block = power_tables(dA, length)
    n_blocks = outer.shape[-1]
    # Reversed time r = a*block + b, zero-padded to whole blocks: u_rev[..., a, b, h] = u_{L-1-r}.
    u_rev = jnp.flip(u, axis=-2)
    pad = [(0, 0)] * u.ndim
    pad[-2] = (0, n_blocks * block - length)
    u_rev = jnp.pad(u_rev, pad).reshape(*u.shape[:-2], n_blocks, block, u.shape[-1])
    u_rev = u_rev.astype(inner.real.dtype)
    # Inner sums over b (a real matmul per real/imaginary part), then outer sums over a.
    within = (jnp.einsum("...abh,hnb->...ahn", u_rev, inner.real, precision=HIGHEST)
              + 1j * jnp.einsum("...abh,hnb->...ahn", u_rev, inner.imag, precision=HIGHEST))
    total = jnp.einsum("...ahn,hna->...hn", within, outer, precision=HIGHEST)
    x = dB * total
    if x0 is not None:
        x = x + jnp.exp(jnp.log(dA) * length) * x0
    return x


def diag_ssm_state_passing(
    dA: Complex[Array, "H N"],
    dB: Complex[Array, "H N"],
    C: Complex[Array, "H N"],
    u: Float[Array, "... L H"],
    D: Float[Array, " H"] | None = None,
    *,
    chunk_size: int,
    x0: Complex[Array, "... H N"] | None = None,
) -> tuple[Float[Array, "... L H"], Complex[Array, "... H N"]]:
    """The FFT path over u in chunks of `chunk_size`, carrying the state -> (y, x_last).

    Equals `causal_conv(u, diag_ssm_kernel(dA, dB, C, L), D)` (plus the free response of x0)
    while the FFT only ever spans 2 * chunk_size steps. The kernel is computed once.
    """
    sig = Signature("diag_ssm_state_passing")
    sig.diag_ssm(dA, dB, C)
    sig.array("u", u, "... L H", kind="real")
    if D is not None:
        sig.array("D", D, "H", kind="real")
    chunk_size = positive_int("diag_ssm_state_passing", "chunk_size", chunk_size)
    if x0 is None:
        x0 = jnp.zeros((*u.shape[:-2], *dA.shape), jnp.result_type(dA, dB, u))
    else:
        sig.array("x0", x0, "... H N", kind="complex")
    chunk_size = min(chunk_size, u.shape[-2])
    K = diag_ssm_kernel(dA, dB, C, chunk_size)

    def one_chunk(x, u_chunk):
        y = causal_conv(u_chunk, K, D)
        y = y + diag_ssm_state_output(dA, C, x, u_chunk.shape[-2]).astype(y.dtype)
        return diag_ssm_final_state(dA, dB, u_chunk, x), y

    return scan_chunks(one_chunk, x0, u, chunk_size)
