"""The files of a run's work directory."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
from typing import Any

import jax

import h3_jax
from h3_jax.train.run_config import RunConfig, config_to_dict, load_config

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"


def path(workdir: str, name: str) -> str:
    return os.path.join(workdir, name)


def versions() -> dict[str, str]:
    found = {"h3_jax": h3_jax.__version__, "python": platform.python_version()}
    for dist in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "missing"
    return found


def environment() -> dict[str, Any]:
    return {
        "versions": versions(),
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "process_count": jax.process_count(),
    }


def write_json(file: str, data: dict[str, Any]) -> None:
    """Write via a temporary file and rename, so a killed run never leaves half a file."""
    tmp = file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, file)


def write_config(workdir: str, config: RunConfig) -> None:
    write_json(path(workdir, CONFIG), config_to_dict(config) | {"environment": environment()})


def read_config(workdir: str) -> RunConfig:
    return load_config(path(workdir, CONFIG))


def has_run(workdir: str) -> bool:
    return os.path.exists(path(workdir, CONFIG))
