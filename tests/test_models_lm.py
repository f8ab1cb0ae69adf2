"""The language model: shapes, dtypes, algorithms, causality, jit, bf16, dropout, bad input.

Each mixer keeps its own contract (causality, jit, bf16, prefill + step) by
h3_jax.testing.check_mixer (tests/test_testing.py); here those properties are checked for the
LM around it, on an H3 model and a hybrid with attention."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from h3_jax import generate, mixers
from h3_jax.models import LM, LMConfig
from test_models_helpers import (  # noqa: F401  (fast_compile is an autouse fixture)
    NAMES,
    assert_close,
    fast_compile,
    jitted_forward,
    random_tokens,
    scale,
    small_config,
    trained_like_params,
    with_algorithm,
)


COMPOSED = ["h3", "hybrid"]


@pytest.mark.parametrize("name", COMPOSED)
def test_logits_shape_dtype_and_determinism(name):
    config = small_config(name)
    params = trained_like_params(config)
    tokens = random_tokens(0, (2, 24))
    logits = LM(config).apply({"params": params}, tokens)
    assert logits.shape == (2, 24, config.vocab_size) and logits.dtype == jnp.float32
    assert np.isfinite(np.asarray(logits)).all()
    again = jitted_forward(config)(params, tokens)
    # Eager and jit run the same ops; XLA may fuse differently, hence a float32-level tolerance.
    assert_close(again, logits, rtol=0, atol=1e-5 * scale(logits))


FFT_CASES = [(name, 24) for name in NAMES] + [
    (name, 140) for name in ("h3", "h3_head_dim_2", "s4d", "gss")  # > SHORT_CONV_MAX_LEN: FFT
]


@pytest.mark.parametrize("name, length", FFT_CASES)
def test_fft_equals_scan(name, length):
    config = small_config(name)
    params = trained_like_params(config)
    tokens = random_tokens(1, (2, length))
    fft = jitted_forward(config, "fft")(params, tokens)
    scan = jitted_forward(config, "scan")(params, tokens)
    assert_close(scan, fft, rtol=0, atol=2e-5 * scale(fft))


@pytest.mark.parametrize("name, length", [(name, 16) for name in COMPOSED] + [("h3", 140)])
def test_causal_by_gradient(name, length):
    """d logits[t, 0] / d embedding(token at s) is zero for every s > t and not for s <= t.

    Each position holds a distinct token id >= 1 and the scored logit is id 0, so the tied head
    adds gradient only to row 0, never to the rows under test."""
    config = small_config(name, vocab_size=length + 1)
    params = trained_like_params(config)
    tokens = (1 + jax.random.permutation(jax.random.key(2), length))[None]
    t = length // 2

    def logit(embedding):
        p = {**params, "embedding": embedding}
        return LM(config).apply({"params": p}, tokens)[0, t, 0]

    grad = np.asarray(jax.jit(jax.grad(logit))(params["embedding"]))
    per_position = np.abs(grad[np.asarray(tokens[0])]).max(axis=-1)  # (L,)
    past, future = per_position[: t + 1], per_position[t + 1 :]
    assert (past[[0, t]] > 0).all()
    # Exact zeros with the direct convolution; FFT round-off leaks ~1e-8 relative.
    assert future.max() <= 1e-6 * past.max(), future.max() / past.max()


@pytest.mark.parametrize("name", COMPOSED)
def test_bfloat16_forward_tracks_float32(name):
    config = small_config(name)
    params = trained_like_params(config)
    tokens = random_tokens(3, (2, 24))
    f32 = jitted_forward(config)(params, tokens)
    bf16 = jitted_forward(config.replace(compute_dtype="bfloat16"))(params, tokens)
    assert bf16.dtype == jnp.float32
    # bf16 has an 8-bit mantissa (relative step 2^-8 = 4e-3); errors add up over 2 layers.
    assert_close(bf16, f32, rtol=0, atol=3e-2 * scale(f32))


@pytest.mark.parametrize("name", ["h3", "attention"])
def test_dropout_only_when_training(name):
    dropout = dict(dropout=0.5) if name == "attention" else {}
    config = small_config(name, embed_dropout=0.5, resid_dropout=0.5, **dropout)
    params = trained_like_params(small_config(name))
    tokens = random_tokens(0, (2, 24))
    apply = jax.jit(
        lambda key: LM(config).apply(
            {"params": params}, tokens, train=True, rngs={"dropout": key}
        )
    )
    eval_logits = jitted_forward(config)(params, tokens)
    assert_close(eval_logits, jitted_forward(small_config(name))(params, tokens), rtol=0, atol=0)
    a, b = apply(jax.random.key(2)), apply(jax.random.key(3))
    assert np.abs(np.asarray(a - b)).max() > 1e-2 * scale(eval_logits)
    assert_close(a, apply(jax.random.key(2)), rtol=0, atol=0)


def test_out_of_range_tokens_raise_eagerly_and_poison_under_jit():
    config = small_config("h3")
    params = trained_like_params(config)
    model = LM(config)
    for bad in (config.vocab_size, -1):
        tokens = jnp.array([[0, 1, bad, 2]])
        with pytest.raises(ValueError, match=r"token ids must lie in \[0, vocab_size=13\)"):
            model.apply({"params": params}, tokens)
        with pytest.raises(ValueError, match="token ids"):
            model.init(jax.random.key(0), tokens)
        # Under jit the ids are traced: JAX's gather would clamp, the model returns NaN instead
        # (from the bad position on, and possibly before: 0 * NaN in a convolution is NaN).
        logits = np.asarray(jitted_forward(config)(params, tokens))
        assert np.isnan(logits[0, 2:]).all()
    with pytest.raises(TypeError, match="integer"):
        model.apply({"params": params}, jnp.zeros((1, 4)))
    with pytest.raises(ValueError, match="shape"):
        model.apply({"params": params}, jnp.zeros((4,), jnp.int32))
    with pytest.raises(ValueError, match="shape"):
        model.apply({"params": params}, jnp.zeros((1, 4), jnp.int32),
                    generate.init_state(config, 1), method="step")


def test_sequence_longer_than_position_table_raises():
    config = small_config("attention", max_position_embeddings=16)
    params = trained_like_params(config)
    jitted_forward(config)(params, jnp.zeros((1, 16), jnp.int32))
    with pytest.raises(ValueError, match="max_position_embeddings=16"):
        jitted_forward(config)(params, jnp.zeros((1, 17), jnp.int32))


@pytest.mark.parametrize(
    "changes, field",
    [
        (dict(mixer="mamba"), "mixer"),
        (dict(mixer="no_such_module:Mixer"), "mixer"),
        (dict(mixer="h3_jax.mixers:Shared"), "mixer"),
        (dict(attn_layer_idx=(2,)), "attn_layer_idx"),
        (dict(attn_layer_idx=(-1,)), "attn_layer_idx"),
        (dict(compute_dtype="float16"), "compute_dtype"),
        (dict(embed_dropout=1.0), "embed_dropout"),
        (dict(resid_dropout=float("nan")), "resid_dropout"),
        (dict(max_position_embeddings=-1), "max_position_embeddings"),
        (dict(initializer_range=float("inf")), "initializer_range"),
        (dict(vocab_size=0), "vocab_size"),
        (dict(d_model=0), "d_model"),
        (dict(d_inner=-1), "d_inner"),
        (dict(identity_mlp=1), "identity_mlp"),
        (dict(identity_mlp=True), "identity_mlp"),  # needs d_inner=0
    ],
)
def test_config_rejects_bad_values_naming_field_and_value(changes, field):
    fields = dict(vocab_size=10, d_model=16, n_layer=2)
    fields.update(changes)
    with pytest.raises(ValueError, match=rf"LMConfig\.{field}") as info:
        LMConfig(**fields)
    value = next(iter(changes.values()))
    assert repr(value) in str(info.value) or str(value) in str(info.value)


@pytest.mark.parametrize(
    "mixer, field, value",
    [
        (mixers.H3Config, "head_dim", 0),
        (mixers.H3Config, "d_state", 7),
        (mixers.H3Config, "A_init", "legendre"),
        (mixers.S4DConfig, "discretization", "euler"),
        (mixers.GSSConfig, "dt_min", 0.2),
        (mixers.GSSConfig, "dt_max", float("nan")),
        (mixers.GSSConfig, "expand", 0),
        (mixers.H3Config, "algorithm", "recurrent"),
        (mixers.AttentionConfig, "n_heads", 0),
        (mixers.AttentionConfig, "dropout", 1.0),
        (mixers.AttentionConfig, "rotary_emb_dim", -2),
    ],
)
def test_mixer_config_rejects_bad_values_naming_field_and_value(mixer, field, value):
    with pytest.raises(ValueError, match=rf"{mixer.__name__}\.{field}") as info:
        mixer(**{field: value})
    assert repr(value) in str(info.value) or str(value) in str(info.value)


@pytest.mark.parametrize(
    "mixer, field",
    [
        (mixers.H3Config(head_dim=3), "H3Config.head_dim"),
        (mixers.AttentionConfig(n_heads=5), "AttentionConfig.n_heads"),
        (mixers.AttentionConfig(n_heads=2, rotary_emb_dim=10), "AttentionConfig.rotary_emb_dim"),
        (mixers.AttentionConfig(n_heads=2, rotary_emb_dim=3), "AttentionConfig.rotary_emb_dim"),
    ],
)
def test_mixer_settings_that_do_not_fit_the_width_are_refused(mixer, field):
    with pytest.raises(ValueError, match=field):
        LMConfig(vocab_size=10, d_model=16, mixer=mixer)


@pytest.mark.parametrize("identity_mlp", [False, True])
def test_blocks_without_mlp(identity_mlp):
    """d_inner=0: mixer-only blocks (no norm2, no MLP), or with identity_mlp x += norm2(x) after
    the mixer; every mode still equal."""
    config = small_config("hybrid", d_inner=0, identity_mlp=identity_mlp)
    params = trained_like_params(config)
    norm2 = {"norm2"} if identity_mlp else set()
    assert set(params["layers_0"]) == {"norm1", "mixer"} | norm2 and config.mlp_width == 0
    tokens = random_tokens(3, (2, 12))
    fft = jitted_forward(config)(params, tokens)
    scan = LM(with_algorithm(config, "scan")).apply({"params": params}, tokens)
    assert_close(scan, fft, rtol=0, atol=2e-5 * scale(fft))
    logits, state = generate.prefill(config, params, tokens[:, :5], max_len=12)
    for t in range(5, 12):
        logits_t, state = generate.step(config, params, state, tokens[:, t])
        assert_close(logits_t, fft[:, t], rtol=0, atol=2e-5 * scale(fft), err_msg=f"t={t}")


def test_identity_mlp_adds_the_normalised_residual():
    """With norm2's scale and bias at zero, x += norm2(x) adds nothing: the logits are those of
    mixer-only blocks with the same parameters; with norm2 as initialised they are not."""
    plain = small_config("h3", d_inner=0)
    identity = plain.replace(identity_mlp=True)
    params = trained_like_params(identity)
    tokens = random_tokens(4, (2, 12))
    zeroed = jax.tree.map(lambda a: a, params)  # new dicts: the helper's params are cached
    for i in range(identity.n_layer):
        zeroed[f"layers_{i}"]["norm2"] = jax.tree.map(jnp.zeros_like, params[f"layers_{i}"]["norm2"])
    without = {k: ({n: p for n, p in v.items() if n != "norm2"} if k.startswith("layers_") else v)
               for k, v in params.items()}
    expected = LM(plain).apply({"params": without}, tokens)
    assert_close(LM(identity).apply({"params": zeroed}, tokens), expected, rtol=0, atol=0)
    changed = LM(identity).apply({"params": params}, tokens)
    assert float(jnp.max(jnp.abs(changed - expected))) > 1e-3 * scale(expected)


def test_identity_mlp_blocks_follow_their_definition():
    """Each block is x += mixer(norm1(x)); x += norm2(x): the model's logits against that
    definition written out, LayerNorms and residual sums in float64, the mixer as a module."""
    config = small_config("h3", d_inner=0, identity_mlp=True)
    params = trained_like_params(config)
    tokens = random_tokens(5, (2, 12))

    def norm(x, p):
        x = x - x.mean(-1, keepdims=True)
        x = x / np.sqrt((x * x).mean(-1, keepdims=True) + config.layer_norm_eps)
        return x * np.asarray(p["scale"], np.float64) + np.asarray(p["bias"], np.float64)

    embedding = np.asarray(params["embedding"], np.float64)
    x = embedding[np.asarray(tokens)]
    for i in range(config.n_layer):
        layer = params[f"layers_{i}"]
        normed = jnp.asarray(norm(x, layer["norm1"]), jnp.float32)
        mixed = mixers.H3(config.mixer, config.shared).apply({"params": layer["mixer"]}, normed)
        x = x + np.asarray(mixed, np.float64)
        x = x + norm(x, layer["norm2"])
    expected = norm(x, params["ln_f"]) @ embedding.T
    logits = LM(config).apply({"params": params}, tokens)
    assert_close(logits, expected, rtol=0, atol=1e-5 * scale(expected))


def test_config_defaults_and_derived_fields():
    config = LMConfig(vocab_size=10)
    assert config.mlp_width == 4 * config.d_model and config.mixer == mixers.H3Config()
    assert config.mixer.n_modes == config.mixer.d_state // 2 == 32
    assert (config.mixer.discretization, config.mixer.A_init) == ("bilinear", "lin")
    s4d = config.replace(mixer="s4d").mixer
    assert isinstance(s4d, mixers.S4DConfig) and (s4d.discretization, s4d.A_init) == ("zoh", "inv")
    hybrid = LMConfig(vocab_size=10, n_layer=4, attn_layer_idx=[1, 3])
    assert hybrid.attn_layer_idx == (1, 3) and hash(hybrid) and hybrid.uses_cache
    kinds = [mixers.spec_of(hybrid.layer_mixer(i)) for i in range(4)]
    assert kinds == ["h3", "attention", "h3", "attention"] and not config.uses_cache
