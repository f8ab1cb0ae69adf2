"""Recurrent generation: prefill then step equals the full forward; generate is greedy decoding."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from h3_jax import generate as gen
from h3_jax import mixers
from h3_jax.models import LMConfig
from test_models_helpers import (  # noqa: F401  (fast_compile is an autouse fixture)
    NAMES,
    assert_close,
    fast_compile,
    jitted_forward,
    random_tokens,
    scale,
    small_config,
    trained_like_params,
)

LENGTH = 20


@pytest.mark.parametrize("name", NAMES)
def test_prefill_then_step_equals_full_forward(name):
    config = small_config(name)
    params = trained_like_params(config)
    tokens = random_tokens(0, (2, LENGTH))
    full = jitted_forward(config)(params, tokens)
    tol = 2e-5 * scale(full)
    for k in (1, 9, LENGTH - 1):
        logits, state = gen.prefill(config, params, tokens[:, :k], max_len=LENGTH)
        assert_close(logits, full[:, :k], rtol=0, atol=tol, err_msg=f"prefill k={k}")
        for t in range(k, LENGTH):
            logits_t, state = gen.step(config, params, state, tokens[:, t])
            assert_close(logits_t, full[:, t], rtol=0, atol=tol, err_msg=f"k={k}, t={t}")
        assert int(state["position"]) == LENGTH


@pytest.mark.parametrize("name", ["h3", "h3_head_dim_2", "s4d"])
def test_long_prefill_uses_fft_path_and_matches(name):
    """A prompt longer than the short-convolution limit, and longer than the shift SSM's taps."""
    config = small_config(name)
    params = trained_like_params(config)
    tokens = random_tokens(1, (1, 150))
    full = jitted_forward(config)(params, tokens)
    logits, state = gen.prefill(config, params, tokens[:, :140])
    assert_close(logits, full[:, :140], rtol=0, atol=2e-5 * scale(full))
    for t in range(140, 150):
        logits_t, state = gen.step(config, params, state, tokens[:, t])
        assert_close(logits_t, full[:, t], rtol=0, atol=2e-5 * scale(full), err_msg=f"t={t}")


def test_stepping_from_the_zero_state_equals_full_forward():
    config = small_config("hybrid")
    params = trained_like_params(config)
    tokens = random_tokens(2, (2, 12))
    full = jitted_forward(config)(params, tokens)
    state = gen.init_state(config, batch_size=2, max_len=12)
    for t in range(12):
        logits_t, state = gen.step(config, params, state, tokens[:, t])
        assert_close(logits_t, full[:, t], rtol=0, atol=2e-5 * scale(full), err_msg=f"t={t}")


def test_state_survives_a_round_trip_through_numpy():
    config = small_config("hybrid")
    params = trained_like_params(config)
    tokens = random_tokens(3, (2, 16))
    full = jitted_forward(config)(params, tokens)
    _, state = gen.prefill(config, params, tokens[:, :10], max_len=16)
    saved = jax.tree_util.tree_map(np.asarray, state)
    restored = jax.tree_util.tree_map(jnp.asarray, saved)
    for t in range(10, 16):
        logits_t, restored = gen.step(config, params, restored, tokens[:, t])
        assert_close(logits_t, full[:, t], rtol=0, atol=2e-5 * scale(full))


def test_init_state_matches_prefill_state_structure():
    for name in NAMES:
        config = small_config(name)
        params = trained_like_params(config)
        tokens = random_tokens(0, (3, 5))
        _, state = jax.eval_shape(functools.partial(gen._prefill, config, cache_len=7), params, tokens)
        empty = gen.init_state(config, batch_size=3, max_len=7)
        same = jax.tree_util.tree_map(lambda a, b: a.shape == b.shape and a.dtype == b.dtype, state, empty)
        assert all(jax.tree_util.tree_leaves(same)), name


@pytest.mark.parametrize("name", ["h3", "attention", "hybrid"])
def test_greedy_generate_equals_repeated_full_forward_argmax(name):
    config = small_config(name)
    params = trained_like_params(config)
    prompt = random_tokens(4, (2, 6))
    new = gen.generate(config, params, prompt, 8, jax.random.key(0))
    assert new.shape == (2, 8) and new.dtype == jnp.int32
    # The model is causal, so one fixed-length buffer (one compilation) serves every step.
    seq = jnp.concatenate([prompt, jnp.zeros((2, 8), jnp.int32)], axis=1)
    for t in range(6, 14):
        logits = jitted_forward(config)(params, seq)
        seq = seq.at[:, t].set(jnp.argmax(logits[:, t - 1], axis=-1).astype(jnp.int32))
    np.testing.assert_array_equal(np.asarray(new), np.asarray(seq[:, 6:]))


def test_sampling_is_reproducible_in_range_and_compiled_once():
    config = small_config("h3")
    params = trained_like_params(config)
    prompt = random_tokens(5, (3, 4))
    before = gen._generate._cache_size()
    a = gen.generate(config, params, prompt, 10, jax.random.key(1), temperature=1.0)
    b = gen.generate(config, params, prompt, 10, jax.random.key(1), temperature=1.0)
    c = gen.generate(config, params, prompt, 10, jax.random.key(2), temperature=1.0)
    assert gen._generate._cache_size() == before + 1
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    assert int(a.min()) >= 0 and int(a.max()) < config.vocab_size


def test_bad_input_raises():
    config = small_config("hybrid")
    params = trained_like_params(config)
    tokens = random_tokens(0, (1, 6))
    with pytest.raises(ValueError, match="max_len is required"):
        gen.prefill(config, params, tokens)
    with pytest.raises(ValueError, match="shorter than the prompt"):
        gen.prefill(config, params, tokens, max_len=5)
    with pytest.raises(ValueError, match="max_len"):
        gen.init_state(config, batch_size=1, max_len=0)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, vocab_size=13\)"):
        gen.prefill(config, params, tokens.at[0, 2].set(13), max_len=8)
    with pytest.raises(ValueError, match="token ids"):
        gen.generate(config, params, tokens.at[0, 0].set(-1), 2, jax.random.key(0))
    _, state = gen.prefill(config, params, tokens, max_len=6)
    with pytest.raises(ValueError, match="past the key/value cache"):
        gen.step(config, params, state, jnp.zeros((1,), jnp.int32))
    with pytest.raises(ValueError, match="token"):
        gen.step(config, params, state, jnp.array([99]))
    positional = small_config("attention", max_position_embeddings=8)
    with pytest.raises(ValueError, match="max_position_embeddings=8"):
        gen.generate(positional, trained_like_params(positional), tokens, 3, jax.random.key(0))
    with pytest.raises(ValueError, match="max_new_tokens"):
        gen.generate(config, params, tokens, 0, jax.random.key(0))


@pytest.mark.parametrize("name", ["h3", "hybrid"])
def test_last_logits_equals_the_full_forward_last_row(name):
    """Every split between the prefill and the stepped part gives the forward's final row."""
    config = small_config(name)
    params = trained_like_params(config)
    tokens = random_tokens(5, (3, LENGTH))
    last = jitted_forward(config)(params, tokens)[:, -1]
    for prefill_len in (1, 7, LENGTH, 100):
        assert_close(gen.last_logits(config, params, tokens, prefill_len), last, rtol=0,
                     atol=2e-5 * scale(last), err_msg=f"prefill_len={prefill_len}")
    compiled = gen.compile_last_logits(config, params, tokens, 7)
    np.testing.assert_array_equal(compiled(params, tokens), gen.last_logits(config, params, tokens, 7))


def test_last_logits_bad_input():
    config = small_config("h3")
    params = trained_like_params(config)
    tokens = random_tokens(0, (1, 6))
    for last_logits in (gen.last_logits, gen.compile_last_logits):
        with pytest.raises(ValueError, match="prefill_len must be an int >= 1, got 0"):
            last_logits(config, params, tokens, 0)
    with pytest.raises(ValueError, match="token ids"):
        gen.last_logits(config, params, tokens.at[0, 1].set(99))
    positional = small_config("attention", max_position_embeddings=4)
    with pytest.raises(ValueError, match="max_position_embeddings=4"):
        gen.last_logits(positional, trained_like_params(positional), tokens)


def test_ssm_state_has_no_length_dimension():
    config = LMConfig(vocab_size=10, d_model=16, mixer=mixers.H3Config(d_state=8, head_dim=2))
    state = gen.init_state(config, batch_size=2, max_len=10_000)
    assert state["layers"][0]["shift"].shape == (2, 16, 8)
    assert state["layers"][0]["diag"].shape == (2, 2, 2, 8, 4)
    assert state["layers"][0]["diag"].dtype == jnp.complex64


def test_rotary_attention_prefill_then_step_equals_full_forward():
    config = small_config("hybrid", attention=mixers.AttentionConfig(n_heads=2, rotary_emb_dim=4))
    params = trained_like_params(config)
    tokens = random_tokens(3, (2, LENGTH))
    full = jitted_forward(config)(params, tokens)
    no_rotary = jitted_forward(small_config("hybrid"))(params, tokens)
    assert np.abs(np.asarray(full - no_rotary)).max() > 1e-3 * scale(full)  # rotary is applied
    logits, state = gen.prefill(config, params, tokens[:, :7], max_len=LENGTH)
    assert_close(logits, full[:, :7], rtol=0, atol=2e-5 * scale(full))
    for t in range(7, LENGTH):
        logits_t, state = gen.step(config, params, state, tokens[:, t])
        assert_close(logits_t, full[:, t], rtol=0, atol=2e-5 * scale(full), err_msg=f"t={t}")
