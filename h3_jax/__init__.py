"""h3-jax: the H3 (Hungry Hungry Hippos) state space model in JAX and Flax."""

__version__ = "0.1.0"
