"""The settings of a run, in one place: `RunConfig` = task + model + `OptimConfig` +
`TrainConfig`, the `section.field=value` overrides that change them, the checks that keep them
consistent, and their stored form (config.json, the run directory's tag).

The mixer's settings are its own Config (h3_jax.mixers), nested in the model's `LMConfig`; the
task is a frozen dataclass named by its spec (h3_jax.tasks). `fields.py` parses and prints them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any, Literal

from h3_jax import models, tasks
from h3_jax.train.fields import (
    SECTIONS,
    ConfigError,
    from_jsonable,
    non_default_fields,
    parse_override,
    replace_fields,
    to_jsonable,
)
from h3_jax.train.formats import CONFIG_FORMAT, upgrade_config

__all__ = ["SECTIONS", "ConfigError", "OptimConfig", "RunConfig", "TrainConfig"]


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW with two parameter groups (SSM dynamics vs the rest) and a learning-rate schedule."""

    lr: float = 5e-4  # peak learning rate of the main group
    lr_ssm: float | None = None  # peak rate of the SSM dynamics (A, B, dt); None = min(1e-3, lr)
    weight_decay: float = 0.1  # decoupled weight decay of the main group
    # Decoupled weight decay of the SSM dynamics: 0 in the H3 paper. With lr_ssm = lr and this
    # = weight_decay, the two groups are one AdamW over every parameter (Zoology's optimizer).
    weight_decay_ssm: float = 0.0
    b1: float = 0.9  # Adam first-moment decay
    b2: float = 0.999  # Adam second-moment decay
    eps: float = 1e-8  # Adam epsilon
    schedule: Literal["cosine", "linear", "constant"] = "cosine"  # shape after the warmup
    warmup_steps: int = 0  # linear warmup length in steps
    warmup_init_lr: float = 0.0  # learning rate at step 0 of the warmup
    lr_min: float = 0.0  # cosine floor (timm's lr_min), main group; the SSM group scales it
    # Steps the rate is held: the schedule is read every `schedule_every` steps (the steps of
    # one epoch = a schedule stepped per epoch, as Zoology's CosineAnnealingLR).
    schedule_every: int = 1
    clip_norm: float | None = None  # global-norm gradient clipping; None = off


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Length, data, logging, evaluation and checkpoint cadence of a run."""

    steps: int = 31_400  # optimizer steps in the whole run
    batch_size: int = 32  # global batch, split over the devices (must divide by their count)
    data: Literal["fixed", "stream"] = "fixed"  # fixed train set in epochs, or fresh examples
    data_seed: int = 0  # seed of the task's datasets / stream
    seed: int = 0  # seed of parameter init and dropout
    steps_per_call: int = 1  # optimizer steps fused into one compiled call (lax.scan)
    micro_batches: int = 1  # slices of the batch whose gradients each step adds up, one at a time
    seq_shards: int = 1  # devices each sequence's length is split over (sequence parallelism)
    log_every: int = 100  # steps between metric lines (averaged over the window)
    eval_every: int = 1_000  # steps between test-set evaluations (0 = only at the end)
    eval_batch_size: int = 500  # examples per evaluation call (rounded up to the devices)
    checkpoint_every: int = 1_000  # steps between periodic checkpoints
    keep_checkpoints: int = 3  # latest checkpoints kept (the best one is kept besides)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    preset: str  # name of the preset the run started from
    task_name: str  # the task's spec: a built-in name (h3_jax.tasks.TASKS) or "module:ClassName"
    task: Any  # the task dataclass (its fields are the task's parameters)
    model: models.LMConfig
    optim: OptimConfig
    train: TrainConfig


def make_task(spec: str, **fields: Any) -> Any:
    """The task named by `spec` (h3_jax.tasks.get_task); ConfigError naming the problem."""
    try:
        tasks.task_class(spec)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    try:
        return tasks.get_task(spec, **fields)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid task settings for {spec}: {err}") from None


def apply_overrides(config: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply `section.field=value` strings, then re-derive and check the dependent fields.
    `task=SPEC` swaps in that task at its defaults; `task.field=value` items then apply to it."""
    by_section: dict[str, dict[str, str]] = {}
    for item in overrides:
        section, name, value = parse_override(item)
        by_section.setdefault(section, {})[name] = value
    spec = by_section.get("task", {}).pop("", None)
    if spec is not None:
        config = dataclasses.replace(config, task_name=spec, task=make_task(spec))
    model_updates = by_section.get("model", {})
    changed = dict(
        task=replace_fields(config.task, "task", by_section.get("task", {})),
        model=replace_fields(config.model, "model", model_updates),
        optim=replace_fields(config.optim, "optim", by_section.get("optim", {})),
        train=replace_fields(config.train, "train", by_section.get("train", {})),
    )
    config = dataclasses.replace(config, **changed)
    return resolve(config, explicit_model_keys=set(model_updates))


def resolve(config: RunConfig, explicit_model_keys: set[str] = frozenset()) -> RunConfig:
    """Make the model follow the task (vocab, position table) and check every combination."""
    task, model = config.task, config.model
    if "vocab_size" in explicit_model_keys and model.vocab_size != task.vocab_size:
        raise ConfigError(
            f"model.vocab_size={model.vocab_size} differs from the task's vocab_size="
            f"{task.vocab_size}; set task.vocab_size instead"
        )
    updates: dict[str, Any] = {"vocab_size": task.vocab_size}
    # A learned position table (attention presets) grows with the task's sequence length.
    positions = model.max_position_embeddings
    if positions and positions < task.seq_len:
        if "max_position_embeddings" in explicit_model_keys:
            raise ConfigError(
                f"model.max_position_embeddings={positions} is shorter than the task's "
                f"sequence length {task.seq_len}"
            )
        updates["max_position_embeddings"] = task.seq_len
    try:
        model = dataclasses.replace(model, **updates)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid model settings: {err}") from None
    config = dataclasses.replace(config, model=model)
    check(config)
    return config


def check(config: RunConfig) -> None:
    """Raise ConfigError for settings that cannot work together."""
    t, o = config.train, config.optim
    positive = ("steps", "batch_size", "steps_per_call", "micro_batches", "seq_shards",
                "log_every", "eval_batch_size", "checkpoint_every", "keep_checkpoints")
    for name in positive:
        if getattr(t, name) <= 0:
            raise ConfigError(f"train.{name} must be positive, got {getattr(t, name)}")
    if t.eval_every < 0:
        raise ConfigError(f"train.eval_every must be >= 0, got {t.eval_every}")
    if t.batch_size % t.micro_batches:
        raise ConfigError(
            f"train.batch_size={t.batch_size} is not a multiple of "
            f"train.micro_batches={t.micro_batches}"
        )
    check_seq_shards(config)
    k = t.steps_per_call
    for name in ("steps", "log_every", "eval_every", "checkpoint_every"):
        if getattr(t, name) % k:
            raise ConfigError(
                f"train.{name}={getattr(t, name)} is not a multiple of train.steps_per_call={k}"
            )
    for name in ("lr", "lr_ssm", "weight_decay", "weight_decay_ssm", "b1", "b2", "eps",
                 "warmup_init_lr", "lr_min", "clip_norm"):
        value = getattr(o, name)
        if value is not None and not math.isfinite(value):
            raise ConfigError(f"optim.{name}={value} must be a finite number")
    if o.lr <= 0 or (o.lr_ssm is not None and o.lr_ssm <= 0):
        raise ConfigError("optim.lr and optim.lr_ssm must be positive")
    for name in ("weight_decay", "weight_decay_ssm", "warmup_init_lr", "lr_min"):
        if getattr(o, name) < 0:
            raise ConfigError(f"optim.{name}={getattr(o, name)} must be >= 0")
    for name in ("b1", "b2"):
        if not 0 <= getattr(o, name) < 1:
            raise ConfigError(f"optim.{name}={getattr(o, name)} must lie in [0, 1)")
    if o.eps <= 0:
        raise ConfigError(f"optim.eps={o.eps} must be positive")
    if not 0 <= o.warmup_steps <= t.steps:
        raise ConfigError(
            f"optim.warmup_steps={o.warmup_steps} must lie in [0, train.steps={t.steps}]"
        )
    if isinstance(o.schedule_every, bool) or not isinstance(o.schedule_every, int) or not (
        1 <= o.schedule_every <= max(t.steps, 1)
    ):
        raise ConfigError(
            f"optim.schedule_every={o.schedule_every!r} must be an int in [1, train.steps={t.steps}]"
        )
    if o.lr_min > o.lr:
        raise ConfigError(f"optim.lr_min={o.lr_min} exceeds optim.lr={o.lr}")
    if o.clip_norm is not None and o.clip_norm <= 0:
        raise ConfigError(f"optim.clip_norm must be positive or none, got {o.clip_norm}")


def check_seq_shards(config: RunConfig) -> None:
    """Each device's stretch of the sequence must be whole and at least as long as the shift
    SSM's filter (its halo comes from the previous device only)."""
    S, L = config.train.seq_shards, config.task.seq_len
    if S == 1:
        return
    if L % S:
        raise ConfigError(f"train.seq_shards={S} does not divide task.seq_len={L}")
    from h3_jax.mixers import H3Config  # the one built-in mixer with a shift SSM

    taps = config.model.mixer.d_state if isinstance(config.model.mixer, H3Config) else 0
    if L // S < taps:
        raise ConfigError(f"train.seq_shards={S} leaves {L // S} steps per device, fewer than "
                          f"the shift SSM's {taps} taps (model.mixer.d_state)")


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    return {
        "format": CONFIG_FORMAT,
        "preset": config.preset,
        "task_name": config.task_name,
        "task": to_jsonable(config.task),
        "model": to_jsonable(config.model),
        "optim": to_jsonable(config.optim),
        "train": to_jsonable(config.train),
    }


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """A RunConfig from `config_to_dict` output of this or an earlier format."""
    data = upgrade_config(data)
    task = make_task(data["task_name"])
    task = from_jsonable(type(task), data["task"])
    return RunConfig(
        preset=data["preset"],
        task_name=data["task_name"],
        task=task,
        model=from_jsonable(models.LMConfig, data["model"]),
        optim=from_jsonable(OptimConfig, data["optim"]),
        train=from_jsonable(TrainConfig, data["train"]),
    )


def load_config(path: str) -> RunConfig:
    with open(path) as f:
        return config_from_dict(json.load(f))


def config_tag(config: RunConfig, *extra: Any) -> str:
    """Ten hex digits that name a run's directory: a hash of the config's non-default fields
    and of `extra` (seeds, stopping rule). A field added to the package later, at its default,
    keeps the tag, so a paused run still finds its checkpoints."""
    text = json.dumps([non_default_fields(config), to_jsonable(list(extra))], sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]
