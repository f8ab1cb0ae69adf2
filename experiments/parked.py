"""A paused cell's resumable state kept beside the study's results, so that another machine,
given only a clone of the repository, continues the cell instead of starting it over.

The work directory (`runs/`: every checkpoint kept, compiled steps) stays out of version control.
When a cell pauses, `park` copies what resuming needs, the run's config, its metrics log and
its latest checkpoint, to `<results>/<study>/paused/<run>/`, which is committed with the
results; `unpark` copies it back into a work directory that holds no later checkpoint; a
finished cell's copy is dropped (`discard`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable

from h3_jax.train.checkpoint import Checkpoints
from h3_jax.train.workdir import CHECKPOINTS, CONFIG, METRICS

PAUSED = "paused"


def parked_path(cell_dir: str, run_dir: str) -> str:
    """Where the run in `run_dir` (a cell's work directory) is parked."""
    return os.path.join(cell_dir, PAUSED, os.path.basename(os.path.normpath(run_dir)))


def latest_step(run_dir: str) -> int | None:
    """The step of the newest complete checkpoint in `run_dir`, or None."""
    directory = os.path.join(run_dir, CHECKPOINTS)
    if not os.path.isdir(directory):
        return None
    checkpoints = Checkpoints(directory, read_only=True)
    try:
        return checkpoints.latest_step()
    finally:
        checkpoints.close()


def park(run_dir: str, cell_dir: str) -> str:
    """Copy the run's config, metrics log and latest checkpoint to its parked path (replacing
    an older copy as a whole: the new one is written beside it, then renamed)."""
    step = latest_step(run_dir)
    if step is None:
        raise FileNotFoundError(f"{run_dir} holds no checkpoint to park")
    target = parked_path(cell_dir, run_dir)
    staging = target + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(os.path.join(run_dir, CHECKPOINTS, str(step)),
                    os.path.join(staging, CHECKPOINTS, str(step)))
    for name in (CONFIG, METRICS):
        shutil.copy2(os.path.join(run_dir, name), os.path.join(staging, name))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


def unpark(cell_dir: str, workdir: str, names: Iterable[str]) -> list[str]:
    """Put each named run parked under `cell_dir` into `workdir` where the work directory has no
    checkpoint as new as the parked one; returns the run directories it wrote. Only the runs a
    process will train, so that studies started side by side never copy the same run at once."""
    root = os.path.join(cell_dir, PAUSED)
    restored = []
    for name in sorted(names):
        parked, run_dir = os.path.join(root, name), os.path.join(workdir, name)
        if not os.path.isdir(parked):
            continue
        step, local = latest_step(parked), latest_step(run_dir)
        if step is None or (local is not None and local >= step):
            continue
        staging = run_dir + ".partial"  # a copy cut short leaves no half-filled run directory
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(parked, staging)
        shutil.rmtree(run_dir, ignore_errors=True)
        os.replace(staging, run_dir)
        restored.append(run_dir)
    return restored


def discard(run_dir: str, cell_dir: str) -> None:
    """Drop the parked copy of a run that has finished."""
    shutil.rmtree(parked_path(cell_dir, run_dir), ignore_errors=True)
