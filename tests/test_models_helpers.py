"""Shared by the model, mixer and generation tests: small configs, parameters, fixtures.

Compiling dominates the time of these tests on CPU, so: parameters for the equality tests are
drawn with NumPy on the shapes from `jax.eval_shape` (no random-number kernels to compile),
jitted forwards are cached per config, and XLA's slower optimisation passes are switched off
inside these tests (`fast_compile`), which changes no result beyond float32 rounding.
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from h3_jax import mixers
from h3_jax.models import LM, LMConfig

VOCAB = 13

# Small models, one per mixer: LMConfig fields, and the mixer's own fields beside them.
MIXER_CONFIGS = {
    "h3": dict(mixer="h3"),
    "h3_head_dim_2": dict(mixer="h3", head_dim=2),
    "s4d": dict(mixer="s4d"),
    "gss": dict(mixer="gss"),
    "attention": dict(mixer="attention", n_heads=2, max_position_embeddings=96),
    "hybrid": dict(mixer="h3", attn_layer_idx=(1,), attention=mixers.AttentionConfig(n_heads=2)),
}
NAMES = list(MIXER_CONFIGS)
LM_FIELDS = {f.name for f in dataclasses.fields(LMConfig)}


@pytest.fixture(autouse=True)
def fast_compile():
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


def small_config(name: str, **changes) -> LMConfig:
    """The small model `name` (d_model 16, 2 layers, d_state 8) with `changes`: LMConfig fields,
    or fields of its mixer's Config (e.g. head_dim, algorithm, dropout)."""
    fields = dict(vocab_size=VOCAB, d_model=16, n_layer=2, **MIXER_CONFIGS[name])
    fields.update(changes)
    mixer = mixers.default_config(fields.pop("mixer"))
    own = {k: fields.pop(k) for k in list(fields) if k not in LM_FIELDS}
    if isinstance(mixer, mixers.DiagSSMConfig):
        own.setdefault("d_state", 8)
    return LMConfig(mixer=dataclasses.replace(mixer, **own), **fields)


def with_algorithm(config: LMConfig, algorithm: str) -> LMConfig:
    """config with its mixer computing whole sequences by `algorithm` (when it has a choice)."""
    if algorithm not in config.mixer.algorithms:
        return config
    return config.replace(mixer=dataclasses.replace(config.mixer, algorithm=algorithm))


def random_tokens(seed: int, shape, vocab: int = VOCAB):
    return jnp.asarray(np.random.default_rng(seed).integers(0, vocab, shape), jnp.int32)


def param_shapes(config: LMConfig):
    tokens = jnp.zeros((1, 8), jnp.int32)
    return jax.eval_shape(LM(config).init, jax.random.key(0), tokens)["params"]


@functools.lru_cache(maxsize=None)
def trained_like_params(config: LMConfig, seed: int = 0):
    """Parameters like those of a trained model, drawn with NumPy: every SSM parameter away from
    its init structure (shift B not e_1, B not 1, A and dt spread) and O(1) logits."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name, parent = _name(path[-1]), _name(path[-2]) if len(path) > 1 else ""
        shape = leaf.shape
        noise = lambda s=0.2: s * rng.standard_normal(shape)  # noqa: E731
        if name == "inv_A_real":
            value = math.log(0.5) + noise(0.3)
        elif name == "A_imag":
            value = math.pi * np.arange(shape[-1]) + noise(0.3)
        elif name == "log_dt":
            value = rng.uniform(math.log(1e-3), math.log(1e-1), shape)
        elif parent == "diag_ssm" and name == "B":
            value = np.stack([np.ones(shape[:-1]), np.zeros(shape[:-1])], -1) + noise(0.3)
        elif parent == "shift_ssm" and name == "B":
            value = np.eye(shape[-1])[0] + noise(0.2)
        elif parent == "shift_ssm" and name == "C":
            value = noise(1 / math.sqrt(shape[-1]))
        elif name in ("C", "D"):
            value = noise(0.7)
        elif name == "scale":
            value = 1 + noise(0.1)
        elif name == "bias":
            value = noise(0.1)
        elif name in ("embedding", "position_embedding"):
            value = noise(0.3)
        else:  # dense kernels (in, out)
            value = noise(1 / math.sqrt(shape[0]))
        return jnp.asarray(value, leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, param_shapes(config))


@functools.lru_cache(maxsize=None)
def jitted_forward(config: LMConfig, algorithm: str = "fft"):
    model = LM(with_algorithm(config, algorithm))
    return jax.jit(lambda p, t: model.apply({"params": p}, t))


def scale(x) -> float:
    return float(np.abs(np.asarray(x)).max())


def assert_close(actual, expected, *, rtol: float, atol: float, err_msg: str = ""):
    np.testing.assert_allclose(
        np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol, err_msg=err_msg
    )


def _name(key) -> str:
    return str(getattr(key, "key", getattr(key, "name", key)))
