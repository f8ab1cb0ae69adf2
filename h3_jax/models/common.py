"""Pieces shared by the mixers and the LM: dense layers with the reference init, dtypes, modes."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
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
        dot_general=dense_dot,
        name=name,
    )


@jax.custom_vjp
def _matmul_last_axis(x, kernel):
    return jnp.matmul(x, kernel)


def _matmul_fwd(x, kernel):
    return jnp.matmul(x, kernel), (x, kernel)


def _matmul_bwd(residuals, grad):
    x, kernel = residuals
    # The barrier keeps XLA:CPU from fusing the op that produced `grad` (e.g. GELU's
    # derivative) into the transposing copy feeding the weight gradient, a strided loop that
    # made the MLP's backward pass 2x slower at (32768 x 256). Same arithmetic, same result.
    grad = jax.lax.optimization_barrier(grad)
    rows = lambda a: a.reshape(-1, a.shape[-1])  # noqa: E731
    return jnp.matmul(grad, kernel.T), jnp.matmul(rows(x).T, rows(grad))


_matmul_last_axis.defvjp(_matmul_fwd, _matmul_bwd)


def dense_dot(x, kernel, dimension_numbers, precision=None, preferred_element_type=None):
    """nn.Dense's dot_general (contract x's last axis with kernel's first), with a backward
    pass laid out for XLA:CPU; anything else goes to lax.dot_general unchanged."""
    plain = (((x.ndim - 1,), (0,)), ((), ()))
    custom = precision is not None or preferred_element_type is not None
    if dimension_numbers != plain or kernel.ndim != 2 or custom:
        return jax.lax.dot_general(x, kernel, dimension_numbers, precision, preferred_element_type)
    return _matmul_last_axis(x, kernel)


def residual_std(config: LMConfig) -> float:
    """GPT-2 rescaled init of the projections that write into the residual stream."""
    return config.initializer_range / (2 * config.n_layer) ** 0.5


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode: got {mode!r}; allowed are {MODES}")


gelu = functools.partial(nn.gelu, approximate=True)
