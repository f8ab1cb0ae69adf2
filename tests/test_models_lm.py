"""The language model: shapes, dtypes, determinism, dropout, modes, config validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from h3_jax.models import LM, LMConfig

MIXER_CONFIGS = {
    "h3": dict(mixer="h3"),
    "h3_head_dim_2": dict(mixer="h3", head_dim=2),
    "s4d": dict(mixer="s4d"),
    "gss": dict(mixer="gss"),
    "attention": dict(mixer="attention", n_heads=2, max_position_embeddings=64),
    "hybrid": dict(mixer="h3", attn_layer_idx=(1,), n_heads=2),
}


def small_config(name: str, **changes) -> LMConfig:
    fields = dict(vocab_size=13, d_model=16, n_layer=2, d_state=8, **MIXER_CONFIGS[name])
    fields.update(changes)
    return LMConfig(**fields)


def random_tokens(seed: int, shape, vocab: int = 13):
    return jax.random.randint(jax.random.key(seed), shape, 0, vocab)


@pytest.mark.parametrize("name", list(MIXER_CONFIGS))
def test_logits_shape_dtype_and_determinism(name):
    config = small_config(name)
    tokens = random_tokens(0, (2, 20))
    params = LM(config).init(jax.random.key(1), tokens)["params"]
    assert isinstance(params, dict)
    logits = LM(config).apply({"params": params}, tokens, mode="fft")
    assert logits.shape == (2, 20, 13) and logits.dtype == jnp.float32
    again = LM(config).apply({"params": params}, tokens)
    np.testing.assert_array_equal(np.asarray(logits), np.asarray(again))
    assert np.isfinite(np.asarray(logits)).all()


@pytest.mark.parametrize("name", ["h3", "attention"])
def test_dropout_only_when_training(name):
    config = small_config(name, embed_dropout=0.5, resid_dropout=0.5, attn_dropout=0.5)
    tokens = random_tokens(0, (2, 16))
    params = LM(config).init(jax.random.key(1), tokens)["params"]
    apply = lambda key: LM(config).apply(  # noqa: E731
        {"params": params}, tokens, mode="fft", train=True, rngs={"dropout": key}
    )
    eval_logits = LM(config).apply({"params": params}, tokens)
    a, b = apply(jax.random.key(2)), apply(jax.random.key(3))
    assert not np.allclose(np.asarray(a), np.asarray(b), atol=1e-3)
    assert not np.allclose(np.asarray(a), np.asarray(eval_logits), atol=1e-3)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(apply(jax.random.key(2))))
