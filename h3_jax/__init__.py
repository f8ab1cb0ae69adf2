"""h3-jax: the H3 (Hungry Hungry Hippos) state space model in JAX and Flax."""

from h3_jax.malloc import keep_freed_memory

__version__ = "0.1.0"

# Before XLA starts its threads: see h3_jax/malloc.py (H3_JAX_MALLOC=0 turns it off).
MALLOC_TUNED = keep_freed_memory()
