"""Run a stateful function over a sequence chunk by chunk."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def scan_chunks(step, x0, u, chunk_size: int):
    """Apply step(x, u_chunk) -> (x, y_chunk) to consecutive chunks of u -> (y, x).

    `u` is an array (..., L, C) or a pytree of such arrays with the same L (cut alike); y is
    (..., L, C'). Whole chunks go through one `jax.lax.scan` (compiled once); a shorter last
    chunk, if any, is one more call.
    """
    length = jax.tree.leaves(u)[0].shape[-2]
    n_chunks, rest = divmod(length, chunk_size)
    whole = n_chunks * chunk_size

    def chunked(a):  # (..., L, C) -> (n_chunks, ..., chunk_size, C)
        main = a[..., :whole, :].reshape(*a.shape[:-2], n_chunks, chunk_size, a.shape[-1])
        return jnp.moveaxis(main, -3, 0)

    x, ys = jax.lax.scan(step, x0, jax.tree.map(chunked, u))
    y = jnp.moveaxis(ys, 0, -3)
    y = y.reshape(*y.shape[:-3], whole, y.shape[-1])
    if rest:
        x, y_rest = step(x, jax.tree.map(lambda a: a[..., whole:, :], u))
        y = jnp.concatenate([y, y_rest], axis=-2)
    return y, x
