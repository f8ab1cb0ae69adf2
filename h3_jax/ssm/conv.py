"""Causal convolution of channels-last sequences with one kernel per channel."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from h3_jax.ssm._checks import Signature
from h3_jax.ssm.kernels import HIGHEST, fit_length


def fft_length(min_length: int) -> int:
    """Smallest 2^a 3^b 5^c >= min_length: sizes the FFT handles at full speed."""
    best = 1 << max(0, (min_length - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            size = p35
            while size < min_length:
                size *= 2
            best = min(best, size)
            p35 *= 3
        p5 *= 5
    return best


def causal_conv(
    u: Float[Array, "... L H"],
    K: Float[Array, "H Lk"],
    D: Float[Array, " H"] | None = None,
) -> Float[Array, "... L H"]:
    """y[t, h] = sum_{s <= t} K[h, t - s] u[s, h] + D[h] u[t, h], by FFT.

    The FFT is zero-padded to at least 2L, so the product is a linear (never circular)
    convolution. K may have any length: shorter kernels are zero-padded, longer ones truncated.
    Half-precision input is computed in float32 (XLA's FFT has no f16/bf16) and cast back.
    """
    Signature("causal_conv").conv(u, K, D)
    length = u.shape[-2]
    out_dtype = u.dtype
    compute = jnp.promote_types(jnp.promote_types(u.dtype, K.dtype), jnp.float32)
    n = fft_length(2 * length)
    # Channels-first inside: XLA's FFT runs over the minor axis.
    u_hl = jnp.swapaxes(u.astype(compute), -1, -2)
    k_freq = jnp.fft.rfft(fit_length(K.astype(compute), length), n=n)
    y = jnp.fft.irfft(jnp.fft.rfft(u_hl, n=n) * k_freq, n=n)[..., :length]
    y = jnp.swapaxes(y, -1, -2)
    if D is not None:
        y = y + D.astype(compute) * u.astype(compute)
    return y.astype(out_dtype)


# Smallest Toeplitz block of `short_causal_conv`: tinier blocks make matmuls too small to pay.
MIN_BLOCK = 16


def short_causal_conv(
    u: Float[Array, "... L H"],
    K: Float[Array, "H Lk"],
    D: Float[Array, " H"] | None = None,
) -> Float[Array, "... L H"]:
    """The same convolution as `causal_conv`, as batched Toeplitz-block matmuls.

    Time is cut into blocks of T = max(min(Lk, L), MIN_BLOCK) steps. With the filter no longer
    than a block, each output block needs only its own and the previous input block: one
    (T, 2T) Toeplitz matrix per channel. Cost ~ 2T multiply-adds per output, forward and
    backward both matmuls: for short filters (the shift SSM's taps) or short sequences this
    beats a length-2L FFT several times on CPU. Half-precision input is computed in float32.
    """
    Signature("short_causal_conv").conv(u, K, D)
    batch, length, channels = u.shape[:-2], u.shape[-2], u.shape[-1]
    compute = jnp.promote_types(jnp.promote_types(u.dtype, K.dtype), jnp.float32)
    taps = min(K.shape[-1], length)
    K = K[:, :taps].astype(compute)
    if D is not None:
        # The skip term is the lag-0 tap: the matmul applies it, and its gradient comes out
        # of the kernel's instead of a separate reduction over every batch row and step.
        K = K.at[:, 0].add(D.astype(compute))
    # Channels-first rows (H, B', L): the channel is the matmul's batch axis.
    x = jnp.moveaxis(u.astype(compute), -1, 0).reshape(channels, -1, length)
    block = max(taps, MIN_BLOCK)
    if length <= block:
        y = jnp.einsum("hms,hts->hmt", x, _toeplitz(K, length, length, 0), precision=HIGHEST)
    else:
        n_blocks = -(-length // block)
        x = jnp.pad(x, ((0, 0), (0, 0), (block, n_blocks * block - length)))
        x = x.reshape(channels, -1, n_blocks + 1, block)
        pairs = jnp.concatenate([x[:, :, :-1], x[:, :, 1:]], axis=-1).reshape(channels, -1, 2 * block)
        y = jnp.einsum("hms,hts->hmt", pairs, _toeplitz(K, block, 2 * block, block), precision=HIGHEST)
        y = y.reshape(channels, -1, n_blocks * block)[..., :length]
    y = jnp.moveaxis(y.reshape(channels, *batch, length), 0, -1)
    return y.astype(u.dtype)


def _toeplitz(K: Float[Array, "H Lk"], rows: int, cols: int, offset: int) -> Float[Array, "H R S"]:
    """M[h, t, s] = K[h, offset + t - s] where 0 <= offset + t - s < Lk, else 0."""
    taps = K.shape[-1]
    lag = offset + jnp.arange(rows)[:, None] - jnp.arange(cols)[None, :]
    inside = (lag >= 0) & (lag < taps)
    return jnp.where(inside, K[:, jnp.clip(lag, 0, taps - 1)], 0.0)


def direct_causal_conv(
    u: Float[Array, "... L H"],
    K: Float[Array, "H Lk"],
    D: Float[Array, " H"] | None = None,
) -> Float[Array, "... L H"]:
    """Reference for `causal_conv`: the O(L^2) sum over lags, in u's dtype, O(L H) memory."""
    Signature("direct_causal_conv").conv(u, K, D)
    length = u.shape[-2]
    K = fit_length(K, length).astype(u.dtype)
    pad = [(0, 0)] * u.ndim
    pad[-2] = (length, 0)
    u_padded = jnp.pad(u, pad)  # u_padded[L + s] = u[s], zeros before

    def add_lag(j, y):
        shifted = jax.lax.dynamic_slice_in_dim(u_padded, length - j, length, axis=u.ndim - 2)
        return y + K[:, j] * shifted

    y = jax.lax.fori_loop(0, length, add_lag, jnp.zeros_like(u))
    if D is not None:
        y = y + D.astype(u.dtype) * u
    return y
