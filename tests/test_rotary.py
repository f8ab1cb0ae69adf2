"""Rotary position embeddings: the NeoX layout, relative positions, steps, pass-through, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from h3_jax.layers import rotary as rotary_module
from h3_jax.layers.rotary import rotary_frequencies
from official_numpy_forward import rotary as reference_rotary

# One compiled program per shape instead of many eager ops (much faster on a busy CPU).
apply_rotary = jax.jit(rotary_module.apply_rotary, static_argnames=("rotary_dim", "base"))


def random_heads(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("rotary_dim", [2, 4, 8])
def test_matches_the_float64_reference(rotary_dim):
    x = random_heads(0, (2, 40, 3, 8))  # (B, L, heads, P)
    out = apply_rotary(jnp.asarray(x), jnp.arange(40), rotary_dim)
    expected = reference_rotary(x.astype(np.float64), rotary_dim)
    np.testing.assert_allclose(np.asarray(out), expected, rtol=0, atol=2e-5)
    # Features past rotary_dim pass through untouched.
    np.testing.assert_array_equal(np.asarray(out)[..., rotary_dim:], x[..., rotary_dim:])


def test_scores_depend_on_relative_position_only():
    q, k = random_heads(1, (1, 1, 1, 8)), random_heads(2, (1, 1, 1, 8))

    def score(s, t):
        qs = apply_rotary(jnp.asarray(q), jnp.array([s]), 8)
        kt = apply_rotary(jnp.asarray(k), jnp.array([t]), 8)
        return float(jnp.sum(qs * kt))

    assert score(5, 2) == pytest.approx(score(103, 100), rel=1e-4)
    assert score(0, 0) == pytest.approx(float(np.sum(q * k)), rel=1e-6)


def test_one_step_equals_its_row_of_the_sequence():
    x = random_heads(3, (2, 12, 2, 4))
    full = apply_rotary(jnp.asarray(x), jnp.arange(12), 4)
    for t in (0, 7, 11):
        row = apply_rotary(jnp.asarray(x[:, t : t + 1]), jnp.array([t]), 4)
        np.testing.assert_allclose(np.asarray(row), np.asarray(full[:, t : t + 1]), atol=1e-6)
    # Per-example positions (B, L) broadcast the same way.
    per_batch = apply_rotary(jnp.asarray(x), jnp.tile(jnp.arange(12), (2, 1)), 4)
    np.testing.assert_allclose(np.asarray(per_batch), np.asarray(full), atol=1e-6)


def test_frequencies_and_dtype():
    np.testing.assert_allclose(
        np.asarray(rotary_frequencies(64)), 10000.0 ** (-np.arange(0, 64, 2) / 64), rtol=1e-6
    )
    out = apply_rotary(jnp.ones((1, 3, 1, 4), jnp.bfloat16), jnp.arange(3), 4)
    assert out.dtype == jnp.bfloat16


@pytest.mark.parametrize("rotary_dim", [0, 3, 16, True])
def test_bad_rotary_dim(rotary_dim):
    with pytest.raises(ValueError, match="rotary_dim"):
        rotary_module.apply_rotary(jnp.ones((1, 2, 1, 8)), jnp.arange(2), rotary_dim)
