"""Pieces shared by the mixers and the LM: dense layers with the reference init, dtypes, modes."""

from __future__ import annotations

import functools
from collections.abc import Sequence

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


class DenseParams(nn.Module):
    """The float32 kernel (in, features) and bias of `dense(config, features, name)`: same
    names, same init, same RNG stream, for layers that run several projections as one matmul."""

    config: LMConfig
    features: int

    @nn.compact
    def __call__(self, in_features: int):
        std = self.config.initializer_range
        shape = (in_features, self.features)
        kernel = self.param("kernel", nn.initializers.normal(std), shape, jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        return kernel, bias


def fused_dense(config: LMConfig, x, features: int, names: Sequence[str]) -> list:
    """[dense(config, features, name)(x) for name in names], as one matmul: one wide product
    (and one weight-gradient product) costs less on CPU than several narrow ones."""
    params = [DenseParams(config, features, name=name)(x.shape[-1]) for name in names]
    dtype = compute_dtype(config)
    kernel = jnp.concatenate([k for k, _ in params], axis=1).astype(dtype)
    bias = jnp.concatenate([b for _, b in params]).astype(dtype)
    y = _matmul_last_axis(x.astype(dtype), kernel) + bias
    return jnp.split(y, len(names), axis=-1)


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
