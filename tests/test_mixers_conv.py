"""The Toeplitz-block convolution used for short filters and short sequences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from h3_jax import ssm
from h3_jax.models.toeplitz_conv import toeplitz_causal_conv
from test_models_helpers import assert_close, fast_compile  # noqa: F401


@pytest.mark.parametrize(
    "length, taps",
    [(1, 8), (5, 8), (8, 8), (17, 16), (20, 8), (30, 64), (64, 64), (65, 64), (100, 8), (300, 64)],
)
def test_equals_direct_convolution(length, taps):
    rng = np.random.default_rng(length * 100 + taps)
    u = jnp.asarray(rng.standard_normal((2, 3, length, 5)), jnp.float32)
    K = jnp.asarray(rng.standard_normal((5, taps)), jnp.float32)
    D = jnp.asarray(rng.standard_normal(5), jnp.float32)
    y = jax.jit(toeplitz_causal_conv)(u, K, D)
    assert y.shape == u.shape and y.dtype == jnp.float32
    expected = ssm.direct_causal_conv(u, K, D)
    assert_close(y, expected, rtol=0, atol=1e-5 * np.sqrt(min(taps, length)) * 4)


def test_gradients_equal_those_of_the_unrolled_convolution():
    rng = np.random.default_rng(0)
    u = jnp.asarray(rng.standard_normal((2, 50, 4)), jnp.float32)
    K = jnp.asarray(rng.standard_normal((4, 16)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((2, 50, 4)), jnp.float32)
    loss = lambda conv: jax.jit(jax.grad(lambda u, K: jnp.sum(w * conv(u, K)), argnums=(0, 1)))  # noqa: E731
    for ours, reference in zip(loss(toeplitz_causal_conv)(u, K), loss(ssm.short_causal_conv)(u, K)):
        assert_close(ours, reference, rtol=0, atol=1e-4)


def test_bfloat16_input_is_computed_in_float32_and_cast_back():
    u = jnp.ones((1, 20, 3), jnp.bfloat16)
    K = jnp.ones((3, 4), jnp.float32)
    y = toeplitz_causal_conv(u, K)
    assert y.dtype == jnp.bfloat16
    assert_close(y.astype(jnp.float32)[0, :, 0], np.minimum(np.arange(1, 21), 4), rtol=0, atol=0)
