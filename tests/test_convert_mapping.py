"""from_official / to_official: exact round trips, layout vs the model, kernels, clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from h3_jax import convert, ssm
from h3_jax.convert import releases
from h3_jax.convert.keys import rules
from h3_jax.layers.diag_ssm import DiagSSM
from h3_jax.layers.shift_ssm import ShiftSSM
from h3_jax.models import LM, LMConfig
from official_numpy_forward import diag_kernel, shift_kernel
from official_state_dict import official_state_dict

CASES = {
    "pure": dict(n_layer=2),
    "hybrid": dict(n_layer=3, attn_layer_idx=(1,), d_model=32, d_state=16, d_inner=48),
    "head_dim_2": dict(n_layer=2, attn_layer_idx=(0,), head_dim=2),
}


def convert_case(name, seed=0):
    sd = official_state_dict(seed, **CASES[name])
    config, params = convert.from_official(sd, n_heads=4)
    return sd, config, params


@pytest.mark.parametrize("name", CASES)
def test_round_trip_is_exact(name):
    sd, config, params = convert_case(name)
    back = convert.to_official(config, params)
    assert sorted(back) == sorted(sd)
    for key, array in sd.items():
        assert back[key].dtype == np.float32 and back[key].shape == array.shape, key
        np.testing.assert_array_equal(back[key], array, err_msg=key)


@pytest.mark.parametrize("name", CASES)
def test_inferred_config_and_param_layout_match_the_model(name):
    sd, config, params = convert_case(name)
    spec = CASES[name]
    assert (config.d_model, config.n_layer) == (spec.get("d_model", 16), spec["n_layer"])
    assert config.attn_layer_idx == spec.get("attn_layer_idx", ())
    h3 = config.mixer
    assert h3.d_state == spec.get("d_state", 8) and config.mlp_width == spec.get("d_inner", 64)
    assert h3.head_dim == spec.get("head_dim", 1) and config.vocab_size == 29
    assert (h3.discretization, h3.A_init) == ("bilinear", "lin")
    init = jax.eval_shape(LM(config).init, jax.random.key(0), jnp.zeros((1, 4), jnp.int32))
    expected = jax.tree.map(lambda s: (s.shape, s.dtype), init["params"])
    assert jax.tree.map(lambda a: (a.shape, a.dtype), params) == expected


def test_converted_kernels_equal_the_float64_formulas():
    sd, config, params = convert_case("hybrid")
    L = 64
    for i in (0, 2):  # the H3 layers
        ours = params[f"layers_{i}"]["mixer"]
        kern = f"backbone.layers.{i}.mixer.kernel.kernel"
        expected = diag_kernel(sd[f"{kern}.log_dt"], sd[f"{kern}.inv_A_real"],
                               sd[f"{kern}.A_imag"], sd[f"{kern}.B"], sd[f"{kern}.C"][0], L)
        dyn = DiagSSM(config.d_model, config.mixer.n_modes).apply({"params": ours["diag_ssm"]})
        K = ssm.diag_ssm_kernel(dyn.dA, dyn.dB, dyn.C, L)
        np.testing.assert_allclose(np.asarray(K), expected, rtol=0,
                                   atol=2e-5 * np.abs(expected).max())
        np.testing.assert_array_equal(np.asarray(dyn.D), sd[f"backbone.layers.{i}.mixer.D"])
        shift = f"backbone.layers.{i}.mixer.ssm_k_kernel.kernel"
        expected = shift_kernel(sd[f"{shift}.B"].astype(np.float64),
                                sd[f"{shift}.C"][0].astype(np.float64))
        filt = ShiftSSM(config.d_model, config.mixer.d_state).apply({"params": ours["shift_ssm"]})
        np.testing.assert_allclose(np.asarray(filt.K), expected, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(filt.D), sd[f"backbone.layers.{i}.mixer.ssm_k_D"])


def test_rules_cover_every_official_key_once():
    sd, config, _ = convert_case("hybrid")
    official = [r.official for r in rules(config)] + ["lm_head.weight"]
    assert sorted(official) == sorted(sd) and len(set(official)) == len(official)


# ---- errors ---------------------------------------------------------------------------------

def test_wrong_shape_is_named():
    sd = official_state_dict(0, **CASES["hybrid"])
    key = "backbone.layers.2.mixer.kernel.kernel.A_imag"
    sd[key] = np.zeros((32, 7), np.float32)
    with pytest.raises(ValueError, match=rf"wrong shape \(1\): {key} has shape \(32, 7\), "
                                         r"expected \(32, 8\)"):
        convert.from_official(sd, n_heads=4)


def test_missing_key_is_named():
    sd = official_state_dict(0, **CASES["hybrid"])
    del sd["backbone.layers.2.mixer.ssm_k_D"]
    with pytest.raises(ValueError, match=r"missing \(1\): backbone\.layers\.2\.mixer\.ssm_k_D"):
        convert.from_official(sd, n_heads=4)


def test_missing_anchor_key_is_named():
    sd = official_state_dict(0, **CASES["pure"])
    del sd["backbone.embeddings.word_embeddings.weight"]
    with pytest.raises(ValueError, match="missing key 'backbone.embeddings.word_embeddings"):
        convert.from_official(sd)


def test_extra_key_is_named():
    sd = official_state_dict(0, **CASES["pure"])
    sd["backbone.layers.1.mixer.extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"unexpected \(1\): backbone\.layers\.1\.mixer\.extra"):
        convert.from_official(sd)


def test_all_problems_are_reported_together():
    sd = official_state_dict(0, **CASES["pure"])
    del sd["backbone.ln_f.bias"]
    sd["backbone.layers.0.mlp.fc2.bias"] = np.zeros(5, np.float32)
    sd["surprise"] = np.zeros(1, np.float32)
    with pytest.raises(ValueError) as err:
        convert.from_official(sd)
    message = str(err.value)
    for part in ("missing (1): backbone.ln_f.bias", "unexpected (1): surprise",
                 "backbone.layers.0.mlp.fc2.bias has shape (5,), expected (16,)"):
        assert part in message


def test_untied_head_is_refused():
    sd = official_state_dict(0, **CASES["pure"])
    sd["lm_head.weight"] = sd["lm_head.weight"] + 1.0
    with pytest.raises(ValueError, match="lm_head.weight differs"):
        convert.from_official(sd)


def test_half_precision_inputs_are_upcast_exactly():
    sd = official_state_dict(0, **CASES["pure"])
    half = {k: v.astype(np.float16) for k, v in sd.items()}
    config, params = convert.from_official(half)
    back = convert.to_official(config, params)
    for key in sd:
        assert back[key].dtype == np.float32
        np.testing.assert_array_equal(back[key], half[key].astype(np.float32), err_msg=key)


def test_head_may_be_absent():
    sd = official_state_dict(0, **CASES["pure"])
    del sd["lm_head.weight"]
    config, params = convert.from_official(sd)
    assert "lm_head.weight" in convert.to_official(config, params)


def test_attention_heads_are_required_for_unknown_sizes():
    sd = official_state_dict(0, **CASES["hybrid"])
    with pytest.raises(ValueError, match="pass n_heads"):
        convert.from_official(sd)


def test_structural_overrides_are_refused_and_others_apply():
    sd = official_state_dict(0, **CASES["pure"])
    with pytest.raises(ValueError, match="d_model"):
        convert.from_official(sd, d_model=32)
    config, _ = convert.from_official(sd, compute_dtype="bfloat16", embed_dropout=0.0)
    assert config.compute_dtype == "bfloat16" and config.embed_dropout == 0.0
    with pytest.raises(ValueError, match="no_such_field"):
        convert.from_official(sd, no_such_field=1)


def test_to_official_checks_params():
    _, config, params = convert_case("pure")
    params["layers_0"]["mixer"]["diag_ssm"]["D"] = jnp.zeros(3)
    del params["ln_f"]["bias"]
    with pytest.raises(ValueError, match=r"missing \(1\): ln_f/bias.*layers_0/mixer/diag_ssm/D "
                                         r"has shape \(3,\)"):
        convert.to_official(config, params)
    with pytest.raises(ValueError, match="only H3 and attention"):
        convert.to_official(LMConfig(vocab_size=8, d_model=8, mixer="s4d"), {})
    with pytest.raises(ValueError, match="d_inner: got 0"):
        convert.to_official(LMConfig(vocab_size=8, d_model=8, d_inner=0), {})


# ---- releases and rotary ---------------------------------------------------------------------

def structure_of(preset, **changes):
    fields = dict(vocab_size=preset.vocab_size, d_model=preset.d_model, n_layer=preset.n_layer,
                  d_state=64, d_inner=4 * preset.d_model, head_dim=1,
                  attn_layer_idx=preset.attn_layer_idx)
    return convert.Structure(**{**fields, **changes})


@pytest.mark.parametrize("name", list(releases.RELEASES))
def test_released_models_are_found_from_their_keys(name):
    preset = releases.RELEASES[name]
    assert releases.find_release(structure_of(preset)) == preset
    assert releases.get_release(name.lower()) == preset


def test_preset_lookup_edge_cases():
    p125, p27 = releases.RELEASES["H3-125M"], releases.RELEASES["H3-2.7B"]
    # The safari training layout of the 125M model still finds its heads.
    assert releases.find_release(structure_of(p125, attn_layer_idx=(1, 8))) == p125
    # 2.7B with unknown attention layers: ambiguous, unless the rotary buffer decides.
    assert releases.find_release(structure_of(p27, attn_layer_idx=(3,))) is None
    rotary = structure_of(p27, attn_layer_idx=(3,), rotary_emb_dim=64)
    assert releases.find_release(rotary) == releases.RELEASES["H3-2.7B-rotary"]
    assert releases.find_release(structure_of(p125, attn_layer_idx=())) is None
    with pytest.raises(ValueError, match="unknown released model"):
        releases.get_release("H3-9B")


def test_preset_supplies_heads(monkeypatch):
    tiny = releases.ReleasedModel("tiny", 32, 3, (1,), 4, initializer_range=0.01)
    monkeypatch.setitem(releases.RELEASES, "tiny", tiny)
    sd = official_state_dict(0, **CASES["hybrid"])
    config, _ = convert.from_official(sd)  # found from the sizes
    assert config.attention.n_heads == 4 and config.initializer_range == 0.01
    config, _ = convert.from_official(sd, preset="tiny", n_heads=8)  # explicit heads win
    assert config.attention.n_heads == 8
    with pytest.raises(ValueError, match="preset H3-125M has d_model=768"):
        convert.from_official(sd, preset="H3-125M")


def test_rotary_buffers_give_the_rotary_dimension():
    sd = official_state_dict(0, **CASES["hybrid"], rotary_inv_freq=4)
    config, params = convert.from_official(sd, n_heads=4)
    assert config.attention.rotary_emb_dim == 4
    back = convert.to_official(config, params, rotary_inv_freq=True)
    assert sorted(back) == sorted(sd)
    for key in sd:
        np.testing.assert_allclose(back[key], sd[key], rtol=1e-6, err_msg=key)


def test_rotary_buffer_checks():
    sd = official_state_dict(0, **CASES["hybrid"], rotary_inv_freq=4)
    with pytest.raises(ValueError, match="rotary buffers imply 4"):
        convert.from_official(sd, n_heads=4, rotary_emb_dim=8)
    key = "backbone.layers.1.mixer.rotary_emb.inv_freq"
    sd[key] = sd[key] * 2
    with pytest.raises(ValueError, match="not the rotary frequencies"):
        convert.from_official(sd, n_heads=4, rotary_emb_dim=4)
