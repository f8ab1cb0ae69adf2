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
from h3_jax.models import LM
from h3_jax.mixers.attention import ATTENTION_BLOCK
from h3_jax.layers.blocked_attention import (
    blocked_causal_attention,
    dense_causal_attention,
    dropout_keep_mask,
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


# Dropout: the blocked form draws each tile's mask from its own key; the dense reference applies
# the same mask assembled whole.
@pytest.mark.parametrize("length,block", [(16, 4), (37, 8), (37, 1), (5, 8)])
def test_dropout_float64_equals_dense_with_the_same_mask(length, block):
    rate, key = 0.3, jax.random.key(7)
    with jax.enable_x64():
        q, k, v, cotangent = _qkv_and_cotangent(length, jnp.float64)
        keep = dropout_keep_mask(key, rate, q.shape[:3], block)
        blocked = _compiled(lambda q, k, v: blocked_causal_attention(
            q, k, v, block, dropout_rate=rate, dropout_key=key), q, k, v, cotangent)
        dense = _compiled(lambda q, k, v: dense_causal_attention(q, k, v, keep, rate),
                          q, k, v, cotangent)
        undropped = _compiled(dense_causal_attention, q, k, v, cotangent)
    for got, want, name in zip(jax.tree.leaves(blocked), jax.tree.leaves(dense),
                               ("out", "dq", "dk", "dv")):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=name)
    assert np.abs(np.asarray(blocked[0]) - np.asarray(undropped[0])).max() > 1e-2


def test_dropout_mask_keeps_one_minus_rate_and_differs_between_tiles():
    rate, block = 0.25, 64
    keep = np.asarray(dropout_keep_mask(jax.random.key(1), rate, (4, 2 * block, 2), block))
    assert keep.shape == (4, 2, 2 * block, 2 * block)
    assert abs(keep.mean() - (1 - rate)) < 0.01  # 131,072 draws: 8 standard deviations
    tile = lambda i, j: keep[..., i * block:(i + 1) * block, j * block:(j + 1) * block]  # noqa: E731
    assert (tile(0, 0) != tile(1, 1)).mean() > 0.2 and (tile(1, 0) != tile(1, 1)).mean() > 0.2
    other_key = np.asarray(dropout_keep_mask(jax.random.key(2), rate, (4, 2 * block, 2), block))
    assert (keep != other_key).mean() > 0.2


def test_bad_block_size_and_dropout_arguments_raise():
    q = jnp.zeros((1, 4, 1, 2))
    with pytest.raises(ValueError, match="block_size: got 0"):
        blocked_causal_attention(q, q, q, 0)
    with pytest.raises(ValueError, match="dropout_key: got None"):
        blocked_causal_attention(q, q, q, 2, dropout_rate=0.1)
    with pytest.raises(ValueError, match=r"dropout_rate: got 1.0; expected a float in \[0, 1\)"):
        blocked_causal_attention(q, q, q, 2, dropout_rate=1.0, dropout_key=jax.random.key(0))


def test_model_trains_with_attention_dropout_past_one_block_without_the_score_matrix():
    config = small_config("attention", dropout=0.5, embed_dropout=0.0, max_position_embeddings=0)
    params = trained_like_params(config)
    length = ATTENTION_BLOCK + 22
    tokens = random_tokens(4, (1, length))

    def loss(p, key):
        logits = LM(config).apply({"params": p}, tokens, train=True, rngs={"dropout": key})
        return jnp.mean(logits**2)

    grad = jax.jit(jax.value_and_grad(loss))
    # No (L, L) array anywhere in the train step: the dense path would hold the probabilities.
    assert f"{length},{length}" not in str(jax.make_jaxpr(grad)(params, jax.random.key(0)))
    (value, grads), (again, _) = grad(params, jax.random.key(0)), grad(params, jax.random.key(0))
    other, _ = grad(params, jax.random.key(1))
    assert value == again and value != other  # the dropout key decides the mask, and only it
    undropped = jnp.mean(LM(config).apply({"params": params}, tokens) ** 2)
    assert abs(float(value) - float(undropped)) > 1e-6
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))


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
