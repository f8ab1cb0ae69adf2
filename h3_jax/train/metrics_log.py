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
    """Per-step metrics since the last log line, summed on the host in step order.

    Device arrays are kept unread until `flush`, so logging does not stall the dispatch queue
    between log lines. `sums` / `from_sums` carry an open window through a checkpoint.
    """

    def __init__(self, sums: dict[str, float] | None = None):
        sums = sums or {}
        self.count = int(sums.get("count", 0))
        self.totals = {name: float(sums.get(name, 0.0)) for name in AVERAGED}
        self.last_lr = float(sums.get("lr", 0.0))
        self.pending: list[tuple[int, dict[str, Any]]] = []

    def add(self, first_step: int, metrics: dict[str, Any]) -> None:
        self.pending.append((first_step, metrics))

    def flush(self) -> None:
        """Read pending metrics into the sums; raise NonFiniteLoss naming the first bad step."""
        for first_step, metrics in self.pending:
            values = {name: np.asarray(metrics[name], np.float64) for name in metrics}
            finite = np.isfinite(values["loss"])
            if not finite.all():
                index = int(np.argmin(finite))
                raise NonFiniteLoss(first_step + index + 1, float(values["loss"][index]))
            for name in AVERAGED:
                for value in values[name]:  # one by one: the same order as a resumed run
                    self.totals[name] += float(value)
            self.count += len(values["loss"])
            self.last_lr = float(values["lr"][-1])
        self.pending = []

    def sums(self) -> dict[str, float]:
        self.flush()
        return {"count": self.count, "lr": self.last_lr, **self.totals}

    def means(self) -> dict[str, float]:
        self.flush()
        n = max(self.count, 1)
        return {name: self.totals[name] / n for name in AVERAGED} | {"lr": self.last_lr}


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
