"""Blocked causal attention equals the dense score-matrix form, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_models_helpers import (  # noqa: F401  (fast_compile is an autouse fixture)
    assert_close,
    fast_compile,
    jitted_forward,
    random_tokens,
    scale,
    small_config,
    trained_like_params,
)

from h3_jax import generate as gen
from h3_jax.models.attention import ATTENTION_BLOCK
from h3_jax.models.blocked_attention import (
    blocked_causal_attention,
    dense_causal_attention,
)


def _qkv_and_cotangent(length, dtype, heads=2, size=8, batch=2):
    rng = np.random.default_rng(length)
    return [jnp.asarray(rng.standard_normal((batch, length, heads, size)), dtype) for _ in range(4)]


def _value_and_grads(attention, q, k, v, cotangent):
    """attention(q, k, v) and the gradients of <attention(q, k, v), cotangent>, compiled."""
    out, pullback = jax.vjp(attention, q, k, v)
    return out, pullback(cotangent)


def _compiled(attention, *args):
    return jax.jit(lambda *args: _value_and_grads(attention, *args))(*args)


# Lengths below, at and off multiples of the block; a block of 1 is the sequential extreme.
@pytest.mark.parametrize("length,block", [(1, 4), (16, 4), (37, 8), (37, 1), (20, 64)])
def test_float64_equals_dense_values_and_gradients(length, block):
    with jax.enable_x64():
        q, k, v, cotangent = _qkv_and_cotangent(length, jnp.float64)
        blocked = _compiled(
            lambda q, k, v: blocked_causal_attention(q, k, v, block), q, k, v, cotangent)
        dense = _compiled(dense_causal_attention, q, k, v, cotangent)
    for got, want, name in zip(jax.tree.leaves(blocked), jax.tree.leaves(dense),
                               ("out", "dq", "dk", "dv")):
        assert got.dtype == jnp.float64, name
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=name)


def test_float32_and_bfloat16_track_the_float64_oracle():
    with jax.enable_x64():
        q, k, v, cotangent = _qkv_and_cotangent(70, jnp.float64)
        oracle = _compiled(dense_causal_attention, q, k, v, cotangent)
    for dtype, tol in ((jnp.float32, 1e-5), (jnp.bfloat16, 5e-2)):
        cast = [x.astype(dtype) for x in (q, k, v, cotangent)]
        got = _compiled(lambda q, k, v: blocked_causal_attention(q, k, v, 16), *cast)
        for g, want, name in zip(jax.tree.leaves(got), jax.tree.leaves(oracle),
                                 ("out", "dq", "dk", "dv")):
            assert g.dtype == dtype, name
            err = np.max(np.abs(np.asarray(g, np.float64) - np.asarray(want)))
            assert err <= tol * np.max(np.abs(np.asarray(want))), (dtype, name, err)


def test_bad_block_size_raises():
    q = jnp.zeros((1, 4, 1, 2))
    with pytest.raises(ValueError, match="block_size: got 0"):
        blocked_causal_attention(q, q, q, 0)


def test_model_past_one_block_matches_its_recurrent_steps():
    """The whole-sequence forward runs in blocks beyond ATTENTION_BLOCK tokens; stepping through
    the key/value cache uses the dense form. They agree."""
    config = small_config("hybrid")
    params = trained_like_params(config)
    length = ATTENTION_BLOCK + 22
    tokens = random_tokens(3, (1, length))
    full = jitted_forward(config)(params, tokens)
    tol = 2e-5 * scale(full)
    split = ATTENTION_BLOCK + 12
    logits, state = gen.prefill(config, params, tokens[:, :split], max_len=length)
    assert_close(logits, full[:, :split], rtol=0, atol=tol)
    for t in range(split, length):
        logits_t, state = gen.step(config, params, state, tokens[:, t])
        assert_close(logits_t, full[:, t], rtol=0, atol=tol, err_msg=f"t={t}")
