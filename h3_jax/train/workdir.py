"""The files of a run's work directory."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
from typing import Any

import jax

import h3_jax
from h3_jax.train.config import RunConfig, config_to_dict, load_config

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


def source_commit() -> str | None:
    """The git commit of the h3_jax source in use ("+dirty" if it has uncommitted changes to
    tracked files), or None outside a git checkout: results name the code that made them."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(h3_jax.__file__)))
    git = ["git", "-C", root]
    try:
        top, commit = subprocess.run([*git, "rev-parse", "--show-toplevel", "HEAD"],
                                     capture_output=True, text=True, timeout=10,
                                     check=True).stdout.splitlines()
        if os.path.realpath(top) != os.path.realpath(root):  # installed inside another repo
            return None
        changes = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return commit + ("+dirty" if changes.strip() else "")


# Vector extensions that change XLA:CPU's speed several-fold between machines.
_VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")


def cpu(cpuinfo: str = "/proc/cpuinfo") -> dict[str, Any]:
    """The processor behind a timing: its name, family / model, core count and vector
    extensions, read from the first processor's block of `cpuinfo` where it exists (Linux)."""
    fields: dict[str, str] = {}
    try:
        with open(cpuinfo) as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = set(fields.get("flags", "").split())
    return {
        "name": fields.get("model name") or platform.processor() or platform.machine(),
        "family_model": f"{fields.get('cpu family', '?')}/{fields.get('model', '?')}",
        "cores": os.cpu_count(),
        "vector_extensions": [f for f in _VECTOR_FLAGS if f in flags],
    }


def environment() -> dict[str, Any]:
    return {
        "versions": versions(),
        "source_commit": source_commit(),
        "cpu": cpu(),
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
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


def write_config(workdir: str, config: RunConfig, seeds: list[int], data_seeds: list[int]
                 ) -> None:
    """config.json: the run's config, its replicas' seeds and the environment it started in."""
    replicas = {"seeds": list(seeds), "data_seeds": list(data_seeds)}
    write_json(path(workdir, CONFIG),
               config_to_dict(config) | replicas | {"environment": environment()})


def read_seeds(workdir: str) -> tuple[list[int], list[int]]:
    """(seeds, data seeds) of the run's replicas; one replica of the config's seeds for a run
    that predates replicas."""
    with open(path(workdir, CONFIG)) as f:
        data = json.load(f)
    if "seeds" in data:
        return data["seeds"], data["data_seeds"]
    train = data["train"]
    return [train["seed"]], [train["data_seed"]]


def read_config(workdir: str) -> RunConfig:
    return load_config(path(workdir, CONFIG))


def has_run(workdir: str) -> bool:
    return os.path.exists(path(workdir, CONFIG))
