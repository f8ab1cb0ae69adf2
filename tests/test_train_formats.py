"""Stored run configs of format 1 (flat mixer settings, train.mode) read as today's configs."""

from __future__ import annotations

import pytest

from h3_jax import mixers
from h3_jax.presets import get_preset
from h3_jax.train.config import apply_overrides, config_from_dict, config_to_dict
from h3_jax.train.formats import CONFIG_FORMAT, upgrade_config


def format_1(config, model: dict, mode: str = "fft") -> dict:
    """config_to_dict of `config` as format 1 wrote it: no format key, the flat model fields
    `model` in place of mixer / attention, and train.mode."""
    data = config_to_dict(config)
    del data["format"], data["model"]["mixer"], data["model"]["attention"]
    data["model"].update(model)
    data["train"]["mode"] = mode
    return data


V1_H3 = dict(mixer="h3", d_state=64, head_dim=1, n_heads=1, discretization=None, A_init=None,
             dt_min=1e-3, dt_max=1e-1, gss_expand=3, attn_dropout=0.1, rotary_emb_dim=0)


def test_format_1_h3_config_reads_as_the_preset():
    config = get_preset("h3-ar")
    assert config_from_dict(format_1(config, V1_H3)) == config
    assert config_to_dict(config)["format"] == CONFIG_FORMAT


@pytest.mark.parametrize(
    "preset, overrides, v1, mode",
    [
        ("tiny-ar", [], dict(V1_H3, head_dim=4), "fft"),
        ("h3-ar", ["model.mixer.algorithm=scan", "model.mixer.d_state=16"],
         dict(V1_H3, d_state=16), "scan"),
        ("gss-ar", ["model.mixer.expand=2", "model.mixer.A_init=inv"],
         dict(V1_H3, mixer="gss", gss_expand=2, A_init="inv"), "fft"),
        ("s4d-ar", [], dict(V1_H3, mixer="s4d"), "fft"),  # None: S4D's own zoh / inv
        ("attention-ar", ["model.mixer.dropout=0.0", "model.mixer.n_heads=2"],
         dict(V1_H3, mixer="attention", attn_dropout=0.0, n_heads=2), "fft"),
        ("h3-ar", ["model.attn_layer_idx=1", "model.attention.n_heads=4",
                   "model.attention.rotary_emb_dim=8"],
         dict(V1_H3, n_heads=4, rotary_emb_dim=8, attn_layer_idx=[1]), "fft"),
        # Attention settings of a model without attention layers were never used: defaults.
        ("h3-mqar", [], dict(V1_H3, head_dim=2, attn_dropout=0.0), "fft"),
    ],
)
def test_format_1_configs_convert_field_by_field(preset, overrides, v1, mode):
    config = apply_overrides(get_preset(preset), overrides)
    assert config_from_dict(format_1(config, v1, mode)) == config


def test_a_newer_format_is_refused_by_name():
    data = config_to_dict(get_preset("h3-ar"))
    data["format"] = CONFIG_FORMAT + 1
    with pytest.raises(ValueError, match=f"config format {CONFIG_FORMAT + 1} is newer"):
        upgrade_config(data)


def test_upgrade_leaves_its_input_unchanged():
    data = format_1(get_preset("h3-ar"), V1_H3)
    before = repr(data)
    upgrade_config(data)
    assert repr(data) == before and isinstance(
        config_from_dict(data).model.mixer, mixers.H3Config)
