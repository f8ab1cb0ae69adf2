"""Token-id checks and the embedding lookup that never clamps an out-of-range id.

JAX's gather clamps out-of-range indices, which would silently train on the wrong tokens. So:
- concrete inputs (eager calls, `LM.init`, the entry points of h3_jax.generate) are checked on
  the host and raise ValueError;
- under `jax.jit` the ids are tracers and cannot raise, so the lookup fills the embedding of an
  out-of-range id with NaN: the logits of that sequence (from that position on, and possibly
  before it, since a convolution multiplies it by zero) and any loss built on them become NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int


def check_token_ids(tokens, vocab_size: int, *, name: str = "tokens") -> None:
    """Raise if tokens is not an integer array, or (when concrete) holds ids outside [0, V)."""
    dtype = getattr(tokens, "dtype", None)
    if dtype is None or not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"{name}: must be an integer array of token ids, got dtype {dtype}")
    if isinstance(tokens, jax.core.Tracer):
        return
    ids = np.asarray(tokens)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = ids[(ids < 0) | (ids >= vocab_size)]
        raise ValueError(
            f"{name}: token ids must lie in [0, vocab_size={vocab_size}), "
            f"got {bad.size} outside it (e.g. {bad.ravel()[0]})"
        )


def lookup(table: Float[Array, "V D"], ids: Int[Array, "..."]) -> Float[Array, "... D"]:
    """table[ids], with NaN rows for ids outside [0, V) (negative ids included)."""
    ids = jnp.where(ids < 0, table.shape[0], ids)
    return table.at[ids].get(mode="fill", fill_value=jnp.nan)
