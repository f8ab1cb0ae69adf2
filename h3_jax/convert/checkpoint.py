"""A converted model on disk: OUTDIR/config.json (the LMConfig fields) and OUTDIR/params (orbax).

    config, params = h3_jax.convert.load("h3-125m")
    tokens = h3_jax.generate.generate(config, params, prompt, max_new_tokens=32, key=key)

The params are restored against the shapes the config implies, so a checkpoint that does not
match its config fails to load instead of giving a half-filled model.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from h3_jax.convert import keys as K
from h3_jax.models import LMConfig
from h3_jax.train.fields import from_jsonable, to_jsonable
from h3_jax.train.formats import CONFIG_FORMAT, upgrade_model_v1

CONFIG_FILE = "config.json"
PARAMS_DIR = "params"
FORMAT = "h3-jax-lm"


def config_to_json(config: LMConfig) -> dict[str, Any]:
    return {"format": FORMAT, "version": CONFIG_FORMAT, "config": to_jsonable(config)}


def config_from_json(data: dict[str, Any]) -> LMConfig:
    """The LMConfig of `config_to_json` output, of this or an earlier version."""
    if data.get("format") != FORMAT or not isinstance(data.get("config"), dict):
        raise ValueError(f"not an h3-jax model config (expected {{'format': {FORMAT!r}, ...}})")
    model = data["config"]
    if data.get("version", 1) == 1:
        model = upgrade_model_v1(model)
    try:
        return from_jsonable(LMConfig, model)
    except TypeError as err:  # a field this version of LMConfig does not know
        raise ValueError(f"config.json does not fit this version of LMConfig: {err}") from None


def save(outdir: str | os.PathLike, config: LMConfig, params: dict[str, Any]) -> None:
    """Write config.json and the orbax params checkpoint into outdir (which must not hold one)."""
    outdir = os.path.abspath(os.fspath(outdir))
    for name in (CONFIG_FILE, PARAMS_DIR):
        if os.path.exists(os.path.join(outdir, name)):
            raise FileExistsError(f"{outdir} already holds {name}; choose a new directory")
    os.makedirs(outdir, exist_ok=True)
    checkpointer = ocp.StandardCheckpointer()
    try:
        checkpointer.save(os.path.join(outdir, PARAMS_DIR), params)
        checkpointer.wait_until_finished()
    finally:
        checkpointer.close()
    # The config goes last: its presence marks a complete checkpoint.
    with open(os.path.join(outdir, CONFIG_FILE), "w") as f:
        json.dump(config_to_json(config), f, indent=2)
        f.write("\n")


def load(outdir: str | os.PathLike) -> tuple[LMConfig, dict[str, Any]]:
    """(config, params) written by `save` or `h3-jax convert`, ready for LM(config).apply and
    h3_jax.generate (params are jax arrays on the default device)."""
    outdir = os.path.abspath(os.fspath(outdir))
    path = os.path.join(outdir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{outdir} holds no converted model ({CONFIG_FILE} not found)")
    with open(path) as f:
        config = config_from_json(json.load(f))
    checkpointer = ocp.StandardCheckpointer()
    try:
        params = checkpointer.restore(os.path.join(outdir, PARAMS_DIR), abstract_params(config))
    finally:
        checkpointer.close()
    return config, params


def abstract_params(config: LMConfig) -> dict[str, Any]:
    """The params tree of `config` as float32 ShapeDtypeStructs (from the key table, no init)."""
    tree: dict[str, Any] = {}
    for rule in K.rules(config):
        node = tree
        for name in rule.path[:-1]:
            node = node.setdefault(name, {})
        node[rule.path[-1]] = jax.ShapeDtypeStruct(rule.our_shape, np.float32)
    return tree
