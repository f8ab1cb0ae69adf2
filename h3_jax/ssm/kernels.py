"""Convolution kernels of the diagonal SSM and of the shift SSM.

The diagonal kernel K[h, l] = 2 Re sum_n W[h, n] dA[h, n]^l is a Vandermonde product. Writing
l = a*T + b with T ~ sqrt(L) splits it into two small power tables, dA^b (b < T) and dA^(aT)
(a < L/T), and one real matmul over the modes: O(H N sqrt(L)) exponentials and memory instead
of O(H N L), and the O(H N L) multiply-adds run at matmul speed. Powers are exp(l log dA), so a
stable mode (|dA| < 1) decays to an exact zero at any length instead of overflowing.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Complex, Float

from h3_jax.ssm._checks import Signature, positive_int

HIGHEST = jax.lax.Precision.HIGHEST


def power_tables(dA: Complex[Array, "H N"], length: int):
    """Powers dA^b for b < T and dA^(a T) for a < A, with A * T >= length.

    Returns (inner (H, N, T), outer (H, N, A), T).
    """
    block = 1 << max(0, math.ceil(math.log2(math.sqrt(length))))
    n_blocks = -(-length // block)
    log_dA = jnp.log(dA)[..., None]
    real_dtype = jnp.finfo(dA.dtype).dtype
    inner = jnp.exp(log_dA * jnp.arange(block, dtype=real_dtype))
    outer = jnp.exp(log_dA * (block * jnp.arange(n_blocks, dtype=real_dtype)))
    return inner, outer, block


def vandermonde(
    W: Complex[Array, "... H N"], dA: Complex[Array, "H N"], length: int
) -> Float[Array, "... H L"]:
    """2 Re sum_n W[..., h, n] dA[h, n]^l for l < length, without an (..., H, N, L) intermediate."""
    inner, outer, block = power_tables(dA, length)
    coeff = W[..., None] * outer  # (..., H, N, A)
    # Re(X Y) as one real matmul over 2N: [Re X, -Im X] . [Re Y; Im Y].
    x = jnp.concatenate([coeff.real, -coeff.imag], axis=-2)
    y = jnp.concatenate([inner.real, inner.imag], axis=-2)
    k = 2 * jnp.einsum("...hka,hkt->...hat", x, y, precision=HIGHEST)
    return k.reshape(*k.shape[:-2], -1)[..., :length]


def diag_ssm_kernel(
    dA: Complex[Array, "H N"],
    dB: Complex[Array, "H N"],
    C: Complex[Array, "H N"],
    length: int,
) -> Float[Array, "H L"]:
    """Convolution kernel of the diagonal SSM: K[h, l] = 2 Re sum_n C dB dA^l, for l < length."""
    Signature("diag_ssm_kernel").diag_ssm(dA, dB, C)
    length = positive_int("diag_ssm_kernel", "length", length)
    return vandermonde(C * dB, dA, length)


def shift_ssm_kernel(
    B: Float[Array, "H N"], C: Float[Array, "H N"], length: int
) -> Float[Array, "H L"]:
    """Kernel of the shift SSM x_t = S x_{t-1} + B u_t, y = C x (S shifts the state down by one).

    K[h, j] = C S^j B = sum_n B[h, n] C[h, n + j] for j < N, zero beyond; with B = e_1, K = C.
    The cross-correlation runs as FFTs of length 2N (no wrap-around: n + j < 2N): gathering the
    (H, N, N) Hankel matrix of C instead, with its scatter-add gradient, made the paper's
    synthetic train step (L = 20) 12% slower.
    """
    sig = Signature("shift_ssm_kernel")
    sig.array("B", B, "H N", kind="real")
    sig.array("C", C, "H N", kind="real")
    length = positive_int("shift_ssm_kernel", "length", length)
    n = B.shape[-1]
    spectrum = jnp.conj(jnp.fft.rfft(B, n=2 * n)) * jnp.fft.rfft(C, n=2 * n)
    return fit_length(jnp.fft.irfft(spectrum, n=2 * n)[..., :n], length)


def fit_length(K: Float[Array, "H Lk"], length: int) -> Float[Array, "H L"]:
    """Truncate a kernel to `length` taps, or zero-pad it up to `length`."""
    taps = K.shape[-1]
    if taps >= length:
        return K[..., :length]
    return jnp.pad(K, ((0, 0), (0, length - taps)))
