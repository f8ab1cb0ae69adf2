"""Pieces shared by the mixers and the LM: dense layers with the reference init, dtypes, modes."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax.numpy as jnp

from h3_jax.models.config import LMConfig

# Whole-sequence views, and the two recurrent views used by h3_jax.generate.
SEQUENCE_MODES = ("fft", "scan")
MODES = SEQUENCE_MODES + ("prefill", "step")


def compute_dtype(config: LMConfig):
    return jnp.dtype(config.compute_dtype)


def dense(config: LMConfig, features: int, name: str, std: float | None = None) -> nn.Dense:
    """Linear layer: weights N(0, std) (default initializer_range), bias 0, float32 params,
    matmul in the compute dtype."""
    std = config.initializer_range if std is None else std
    return nn.Dense(
        features,
        dtype=compute_dtype(config),
        param_dtype=jnp.float32,
        kernel_init=nn.initializers.normal(std),
        bias_init=nn.initializers.zeros,
        name=name,
    )


def residual_std(config: LMConfig) -> float:
    """GPT-2 rescaled init of the projections that write into the residual stream."""
    return config.initializer_range / (2 * config.n_layer) ** 0.5


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode: got {mode!r}; allowed are {MODES}")


gelu = functools.partial(nn.gelu, approximate=True)
