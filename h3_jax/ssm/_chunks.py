"""Run a stateful function over a sequence chunk by chunk."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def scan_chunks(step, x0, u, chunk_size: int):
    """Apply step(x, u_chunk) -> (x, y_chunk) to consecutive chunks of u (..., L, H) -> (y, x).

    Whole chunks go through one `jax.lax.scan` (compiled once); a shorter last chunk, if any,
    is one more call.
    """
    batch, length, channels = u.shape[:-2], u.shape[-2], u.shape[-1]
    n_chunks, rest = divmod(length, chunk_size)
    main = u[..., : n_chunks * chunk_size, :].reshape(*batch, n_chunks, chunk_size, channels)
    x, ys = jax.lax.scan(step, x0, jnp.moveaxis(main, -3, 0))
    y = jnp.moveaxis(ys, 0, -3).reshape(*batch, n_chunks * chunk_size, ys.shape[-1])
    if rest:
        x, y_rest = step(x, u[..., n_chunks * chunk_size :, :])
        y = jnp.concatenate([y, y_rest], axis=-2)
    return y, x
