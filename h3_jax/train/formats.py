"""Versions of what a run stores (its config, its checkpoints, its metrics log), and the small
converters that read older ones. `CONFIG_FORMAT` is written into every config and
`CHECKPOINT_FORMAT` into every checkpoint's meta; one without it is format 1.

Config format 1 kept every mixer's settings flat in the model section (d_state, head_dim, n_heads,
gss_expand, attn_dropout, rotary_emb_dim, ...) and the whole-sequence algorithm in
train.mode; format 2 gives each mixer its own settings (model.mixer, model.attention) with the
algorithm among them.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import jax

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


# Checkpoints. Format 2 (this one): every train state has a leading replica axis (R, ...), one
# optimizer structure (AdamW in both groups), and the meta carries "format", the metric windows
# and the timing. Format 1 (`h3-jax train` before replicas): no replica axis; the SSM group used
# plain Adam when weight_decay_ssm was 0; the meta held one window and scalar metrics. (Study
# cells of format 1 kept their checkpoints under another directory name and are not found.)

CHECKPOINT_FORMAT = 2


def restore_checkpoint(checkpoints, step: int, like: Any, config) -> tuple[Any, dict[str, Any]]:
    """(state, meta) of the checkpoint at `step` in the current format; `like` is a fresh state
    of the run (its structure, shapes and shardings)."""
    meta = checkpoints.read_meta(step)
    version = meta.get("format", 1)
    if version > CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint format {version} (step {step}) is newer than this h3_jax "
                         f"reads ({CHECKPOINT_FORMAT}); update h3_jax")
    if version == CHECKPOINT_FORMAT:
        return checkpoints.restore(step, like)
    if "history" in meta:
        raise ValueError(f"step {step} is a study checkpoint of format 1; train the cell again")
    one = jax.tree.map(lambda leaf: leaf[0], like)
    stored, _ = checkpoints.restore(step, dict(one, opt_state=_format1_opt_state(config, one)))
    # The optimizer states differ only by AdamW's empty decay states: the same leaves in order.
    leaves = jax.tree.leaves(stored["opt_state"])
    structure = jax.tree.structure(one["opt_state"])
    if len(leaves) != structure.num_leaves:
        raise ValueError(f"checkpoint at step {step}: {len(leaves)} optimizer leaves, expected "
                         f"{structure.num_leaves}")
    state = dict(stored, opt_state=jax.tree.unflatten(structure, leaves))
    state = jax.tree.map(lambda leaf, ref: jax.device_put(leaf[None], ref.sharding), state, like)
    return state, _format1_meta(meta)


def _format1_opt_state(config, state: Any) -> Any:
    """The optimizer state as format 1 stored it (the values do not matter, only the tree)."""
    import functools

    import optax

    from h3_jax.models import param_labels

    optim, rate = config.optim, lambda step: 0.0  # a schedule: its state holds a step count
    groups = optax.partition(
        {"rest": optax.adamw(rate),
         "ssm": optax.adamw(rate) if optim.weight_decay_ssm else optax.adam(rate)},
        functools.partial(param_labels, config=config.model),
    )
    if optim.clip_norm is not None:
        groups = optax.chain(optax.clip_by_global_norm(1.0), groups)
    return groups.init(state["params"])


def _format1_meta(meta: dict[str, Any]) -> dict[str, Any]:
    window = {k: ([v] if k not in ("count", "lr") else v) for k, v in meta["window"].items()}
    last = meta.get("last_eval")
    return {
        "format": CHECKPOINT_FORMAT, "step": meta["step"],
        "windows": {"log": window, "eval": None},  # format 1 kept no since-eval window
        "timing": None, "eval_accuracy": meta.get("eval_accuracy"),
        "last_eval": last and _format1_eval(last),
    }


def _format1_eval(record: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "eval", "step": record["step"], "lr": None, "train_loss": None,
            "test_accuracy": [record["accuracy"]], "test_loss": [record["loss"]]}


def upgrade_metrics_log(path: str) -> None:
    """Rewrite a format-1 metrics.jsonl (scalar values) with per-replica lists, in place."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    if not any(isinstance(r.get("loss"), (int, float)) or "accuracy" in r and r["kind"] == "eval"
               for r in records):
        return
    upgraded = []
    for r in records:
        if r["kind"] == "eval" and "accuracy" in r:
            r = _format1_eval(r)
        elif r["kind"] == "train" and not isinstance(r.get("loss"), list):
            r = {k: ([v] if k in ("loss", "accuracy", "grad_norm") else v) for k, v in r.items()}
        upgraded.append(r)
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in upgraded)
