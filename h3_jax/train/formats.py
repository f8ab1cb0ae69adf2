"""Versions of the stored run config (config.json, study cells), and the converter that reads
older ones. `CONFIG_FORMAT` is written into every config; a config without it is format 1.

Format 1 kept every mixer's settings flat in the model section (d_state, head_dim, n_heads,
gss_expand, attn_dropout, rotary_emb_dim, ...) and the whole-sequence algorithm in
train.mode; format 2 gives each mixer its own settings (model.mixer, model.attention) with the
algorithm among them.
"""

from __future__ import annotations

import copy
from typing import Any

CONFIG_FORMAT = 2

_V1_SSM = ("d_state", "discretization", "A_init", "dt_min", "dt_max")
_V1_ATTENTION = {"n_heads": "n_heads", "attn_dropout": "dropout", "rotary_emb_dim": "rotary_emb_dim"}


def upgrade_config(data: dict[str, Any]) -> dict[str, Any]:
    """A stored run config dict, converted to the current format (a new dict)."""
    data = copy.deepcopy(data)
    version = data.get("format", 1)
    if version > CONFIG_FORMAT:
        raise ValueError(
            f"config format {version} is newer than this h3_jax reads ({CONFIG_FORMAT}); "
            "update h3_jax"
        )
    if version == 1:
        mode = data.get("train", {}).pop("mode", "fft")
        data["model"] = upgrade_model_v1(data["model"], mode)
    data["format"] = CONFIG_FORMAT
    return data


def upgrade_model_v1(model: dict[str, Any], mode: str = "fft") -> dict[str, Any]:
    """A format-1 model section (flat LMConfig fields) as format 2; `mode` was train.mode."""
    model = dict(model)
    name = model.pop("mixer", "h3")
    ssm = {k: model.pop(k) for k in _V1_SSM if k in model}
    head_dim, expand = model.pop("head_dim", 1), model.pop("gss_expand", 3)
    attention = {new: model.pop(old) for old, new in _V1_ATTENTION.items() if old in model}
    if name == "attention":
        mixer = {"spec": "attention", **attention}
    else:
        # None meant "the mixer's own default", which is now the Config's default.
        mixer = {"spec": name, **{k: v for k, v in ssm.items() if v is not None}, "algorithm": mode}
        if name == "h3":
            mixer["head_dim"] = head_dim
        elif name == "gss":
            mixer["expand"] = expand
    model["mixer"] = mixer
    # Settings of attention layers a model did not have were never used: keep the defaults.
    if model.get("attn_layer_idx"):
        model["attention"] = attention
    return model
