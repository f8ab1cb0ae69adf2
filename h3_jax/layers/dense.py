"""Dense layers with the reference init, and the LM settings every layer shares (`Shared`)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp



@dataclasses.dataclass(frozen=True)
class Shared:
    """The language model's settings that every mixer and layer of it uses."""

    d_model: int
    """Width D of the residual stream: each mixer maps (..., D) to (..., D)."""
    n_layer: int = 2
    """Number of blocks (it scales the init of projections into the residual stream)."""
    initializer_range: float = 0.02
    """Std of the normal init of linear layers."""
    compute_dtype: str = "float32"
    """dtype of matmuls and activations, "float32" or "bfloat16"; parameters stay float32."""


def compute_dtype(config: Shared):
    return jnp.dtype(config.compute_dtype)


def dense(
    config: Shared, features: int, name: str | None = None, std: float | None = None
) -> nn.Dense:
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

    config: Shared
    features: int

    @nn.compact
    def __call__(self, in_features: int):
        std = self.config.initializer_range
        shape = (in_features, self.features)
        kernel = self.param("kernel", nn.initializers.normal(std), shape, jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        return kernel, bias


def fused_dense(config: Shared, x, layers: Sequence[DenseParams]) -> list:
    """[dense(config, features, name)(x) for each DenseParams layer], as one matmul: one wide
    product (and one weight-gradient product) costs less on CPU than several narrow ones."""
    params = [layer(x.shape[-1]) for layer in layers]
    dtype = compute_dtype(config)
    kernel = jnp.concatenate([k for k, _ in params], axis=1).astype(dtype)
    bias = jnp.concatenate([b for _, b in params]).astype(dtype)
    y = _matmul_last_axis(x.astype(dtype), kernel) + bias
    return jnp.split(y, len(layers), axis=-1)


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


def residual_std(config: Shared) -> float:
    """GPT-2 rescaled init of the projections that write into the residual stream."""
    return config.initializer_range / (2 * config.n_layer) ** 0.5


gelu = functools.partial(nn.gelu, approximate=True)
