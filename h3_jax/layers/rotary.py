"""Rotary position embeddings, GPT-NeoX layout, as pure functions for the attention layers.

The first R = rotary_dim features of each head are split into halves x1 = x[:R/2] and
x2 = x[R/2:R], and each pair (x1_i, x2_i) is rotated by the angle t * theta_i at position t, with
theta_i = base^(-2i/R):

    x1_i' = x1_i cos(t theta_i) - x2_i sin(t theta_i)
    x2_i' = x2_i cos(t theta_i) + x1_i sin(t theta_i)

Features R.. of the head pass unchanged. Applied to queries and keys (never values), the score
q_s . k_t then depends on the positions only through s - t. This is the non-interleaved layout
used by the H3-2.7B "rotary" checkpoint's attention layers (R = 64, base 10000).
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

DEFAULT_BASE = 10000.0


def rotary_frequencies(rotary_dim: int, base: float = DEFAULT_BASE) -> Float[Array, " R2"]:
    """theta_i = base^(-2i/R) for i < R/2, float32 (the checkpoint's `inv_freq`)."""
    _check_rotary_dim(rotary_dim)
    exponents = jnp.arange(0, rotary_dim, 2, dtype=jnp.float32) / rotary_dim
    return 1.0 / (base**exponents)


def rotary_angles(
    positions: Int[Array, "... L"], rotary_dim: int, base: float = DEFAULT_BASE
) -> tuple[Float[Array, "... L R2"], Float[Array, "... L R2"]]:
    """(cos, sin) of positions * theta, in float32."""
    angles = jnp.asarray(positions, jnp.float32)[..., None] * rotary_frequencies(rotary_dim, base)
    return jnp.cos(angles), jnp.sin(angles)


def apply_rotary(
    x: Float[Array, "B L H P"],
    positions: Int[Array, " L"] | Int[Array, "B L"],
    rotary_dim: int,
    base: float = DEFAULT_BASE,
) -> Float[Array, "B L H P"]:
    """Rotate the first rotary_dim features of every head of x by its position.

    positions holds the absolute position of each step: `offset + jnp.arange(L)` for a sequence,
    `position[None]` for one recurrent step. Computed in float32, returned in x's dtype.
    """
    if x.ndim < 2:
        raise ValueError(f"apply_rotary: x must be (..., L, H, P), got shape {x.shape}")
    if rotary_dim > x.shape[-1]:
        raise ValueError(
            f"apply_rotary: rotary_dim={rotary_dim} exceeds the head size P={x.shape[-1]}"
        )
    cos, sin = rotary_angles(positions, rotary_dim, base)
    cos, sin = cos[..., None, :], sin[..., None, :]  # broadcast over heads: (..., L, 1, R/2)
    half = rotary_dim // 2
    x32 = x.astype(jnp.float32)
    x1, x2, rest = x32[..., :half], x32[..., half:rotary_dim], x32[..., rotary_dim:]
    rotated = [x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest]
    return jnp.concatenate(rotated, axis=-1).astype(x.dtype)


def _check_rotary_dim(rotary_dim: int) -> None:
    valid = isinstance(rotary_dim, int) and not isinstance(rotary_dim, bool)
    if not valid or rotary_dim < 2 or rotary_dim % 2:
        raise ValueError(f"rotary_dim: got {rotary_dim!r}; allowed is an even int >= 2")
