"""Converted models compute the official model's logits, and their recurrent view agrees.

The reference is an independent float64 NumPy forward pass over the official state dict
(tests/official_numpy_forward.py), written from the checkpoint layout description alone.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from h3_jax import convert, generate
from h3_jax.models import LM
from official_numpy_forward import official_forward
from official_state_dict import official_state_dict

CASES = {
    # L 40 runs the short direct convolutions, L 80 the FFT path.
    "pure": (dict(n_layer=2), 40),
    "pure_fft": (dict(n_layer=2, d_model=24, d_state=16), 80),
    "hybrid": (dict(n_layer=3, attn_layer_idx=(1,), d_model=32, d_state=16, d_inner=48), 48),
}
N_HEADS = 4


@pytest.fixture(autouse=True)
def fast_compile():
    # XLA's slower passes off: only float32 rounding can change, and compiling dominates here.
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


@functools.lru_cache(maxsize=None)
def converted(name):
    sd = official_state_dict(1, **CASES[name][0])
    config, params = convert.from_official(sd, n_heads=N_HEADS)
    return sd, config, params


def tokens_for(name, batch=2):
    length = CASES[name][1]
    return np.random.default_rng(2).integers(0, 29, (batch, length)).astype(np.int32)


@pytest.mark.parametrize("name", CASES)
def test_logits_equal_the_official_float64_forward(name):
    sd, config, params = converted(name)
    tokens = tokens_for(name)
    expected = official_forward(sd, tokens, n_heads=N_HEADS)
    forward = jax.jit(lambda p, t: LM(config).apply({"params": p}, t))
    logits = np.asarray(forward(params, jnp.asarray(tokens)))
    assert expected.std() > 1.0  # logits that vary: every weight matters
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("name", ["pure", "hybrid"])
def test_prefill_then_steps_equal_the_full_forward(name):
    _, config, params = converted(name)
    tokens = jnp.asarray(tokens_for(name))
    length, prompt = tokens.shape[1], 8
    full = np.asarray(jax.jit(lambda p, t: LM(config).apply({"params": p}, t))(params, tokens))
    logits, state = generate.prefill(config, params, tokens[:, :prompt], max_len=length)
    rows = [np.asarray(logits)]
    for t in range(prompt, length):
        step_logits, state = generate.step(config, params, state, tokens[:, t])
        rows.append(np.asarray(step_logits)[:, None])
    recurrent = np.concatenate(rows, axis=1)
    np.testing.assert_allclose(recurrent, full, rtol=0, atol=2e-5 * np.abs(full).max())


def test_rotary_hybrid_equals_the_official_forward_and_its_steps():
    sd = official_state_dict(1, **CASES["hybrid"][0], rotary_inv_freq=4)
    config, params = convert.from_official(sd, n_heads=N_HEADS)
    assert config.attention.rotary_emb_dim == 4
    tokens = tokens_for("hybrid")
    expected = official_forward(sd, tokens, n_heads=N_HEADS, rotary_dim=4)
    full = np.asarray(jax.jit(lambda p, t: LM(config).apply({"params": p}, t))(params, tokens))
    np.testing.assert_allclose(full, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    logits, state = generate.prefill(config, params, jnp.asarray(tokens[:, :8]), max_len=48)
    rows = [np.asarray(logits)]
    for t in range(8, tokens.shape[1]):
        step_logits, state = generate.step(config, params, state, jnp.asarray(tokens[:, t]))
        rows.append(np.asarray(step_logits)[:, None])
    recurrent = np.concatenate(rows, 1)
    np.testing.assert_allclose(recurrent, full, rtol=0, atol=2e-5 * np.abs(full).max())
