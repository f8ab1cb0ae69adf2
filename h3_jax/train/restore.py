"""Load a finished or running run's checkpoint back: state, params, test accuracy."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax

from h3_jax.train import workdir as wd
from h3_jax.train.checkpoint import Checkpoints
from h3_jax.train.config import ConfigError
from h3_jax.train.loop import Run


def pick_step(checkpoints: Checkpoints, which: str) -> tuple[int, str]:
    """'latest', 'best' or a step number -> (step, description)."""
    steps = checkpoints.steps()
    if not steps:
        raise ConfigError(f"no checkpoint in {checkpoints.directory}")
    if which == "latest":
        return checkpoints.latest_step(), "latest"
    if which == "best":
        best = checkpoints.best_step()
        if best is None:
            raise ConfigError("no checkpoint has an eval accuracy yet; use --checkpoint latest")
        return best, "best"
    if which.isdigit() and int(which) in steps:
        return int(which), "requested"
    raise ConfigError(f"--checkpoint {which!r}: expected latest, best or one of {steps}")


def load_state(workdir: str, which: str = "latest") -> tuple[Run, Any, int, str]:
    """(run, train state (leaves (R, ...)), step, description) of a checkpoint of the run in
    `workdir`."""
    config = wd.read_config(workdir)
    # Any device count reads any checkpoint: the length splits as far as these devices allow.
    shards = math.gcd(config.train.seq_shards, jax.device_count())
    config = dataclasses.replace(config, train=dataclasses.replace(config.train,
                                                                   seq_shards=shards))
    run = Run(config, workdir, *wd.read_seeds(workdir), read_only=True)
    try:
        step, description = pick_step(run.checkpoints, which)
        state, _ = run.restore(step)
    finally:
        run.checkpoints.close()
    return run, state, step, description


def evaluate_checkpoint(
    workdir: str, which: str = "latest"
) -> tuple[int, str, dict[str, list[float]]]:
    """(step, description, {"accuracy", "loss"}) on the task's test set, one value per replica."""
    run, state, step, description = load_state(workdir, which)
    return step, description, run.evaluate(state["params"])
