"""Metric windows, the JSONL log and the terminal progress bar."""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

import numpy as np
from tqdm import tqdm

AVERAGED = ("loss", "accuracy", "grad_norm")


class NonFiniteLoss(RuntimeError):
    def __init__(self, step: int, value: float):
        super().__init__(f"loss is {value} at step {step}")
        self.step, self.value = step, value


class Window:
    """Per-step metrics of R replicas since the window opened, summed on the host in step order.

    Device arrays (leaves (R, k): k steps of R replicas) are kept unread until `flush`, so
    logging does not stall the dispatch queue. A replica whose loss turns NaN or infinite leaves
    NaN in its sums and the others go on; a step at which every replica's loss is non-finite
    raises NonFiniteLoss. `sums` / `Window(sums)` carry an open window through a checkpoint.
    """

    def __init__(self, sums: dict[str, Any] | None = None):
        sums = sums or {}
        self.count = int(sums.get("count", 0))
        self.totals = {name: np.asarray(sums.get(name, 0.0), np.float64) for name in AVERAGED}
        self.last_lr = float(sums.get("lr", 0.0))
        self.pending: list[tuple[int, dict[str, Any]]] = []

    def add(self, first_step: int, metrics: dict[str, Any]) -> None:
        self.pending.append((first_step, metrics))

    def flush(self) -> None:
        """Read pending metrics into the sums; raise NonFiniteLoss naming the first step at
        which no replica has a finite loss."""
        for first_step, metrics in self.pending:
            values = {name: np.asarray(metrics[name], np.float64) for name in metrics}
            dead = ~np.isfinite(values["loss"]).any(axis=0)  # (k,)
            if dead.any():
                index = int(np.argmax(dead))
                raise NonFiniteLoss(first_step + index + 1, float(values["loss"][0, index]))
            for name in AVERAGED:
                for value in values[name].T:  # step by step: the same order as a resumed run
                    self.totals[name] = self.totals[name] + value
            self.count += values["loss"].shape[1]
            self.last_lr = float(values["lr"][0, -1])
        self.pending = []

    def sums(self) -> dict[str, Any]:
        self.flush()
        return {"count": self.count, "lr": self.last_lr,
                **{name: finite_or_none(total) for name, total in self.totals.items()}}

    def means(self) -> dict[str, Any]:
        """{name: [R per-replica means] (None where a replica diverged), "lr": the last rate}."""
        self.flush()
        n = max(self.count, 1)
        return {name: finite_or_none(self.totals[name] / n) for name in AVERAGED} | {
            "lr": self.last_lr}


def finite_or_none(values: Any) -> list[float | None]:
    """A list of floats for JSON, NaN / Inf (a diverged replica) as None."""
    return [float(v) if np.isfinite(v) else None
            for v in np.atleast_1d(np.asarray(values, np.float64))]


class JsonlLog:
    """Append-only JSON lines; on resume, lines past the restored step are dropped first."""

    def __init__(self, path: str, keep_through_step: int | None = None):
        self.path = path
        if keep_through_step is not None and os.path.exists(path):
            with open(path) as f:
                records = [json.loads(line) for line in f if line.strip()]
            kept = [r for r in records if r.get("step", 0) <= keep_through_step]
            with open(path, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in kept)
        self.file = open(path, "a")

    def write(self, record: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                 for k, v in record.items()}
        self.file.write(json.dumps(clean) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def read_jsonl(path: str) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def progress_bar(total: int, initial: int, enabled: bool | None = None) -> tqdm:
    """A bar on stderr when it is a terminal; silent (disabled) otherwise."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(
        total=total, initial=initial, disable=not enabled, unit="step",
        dynamic_ncols=True, mininterval=0.25, file=sys.stderr,
    )
