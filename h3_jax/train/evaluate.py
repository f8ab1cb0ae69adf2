"""Test-set evaluation of every replica on its own test set: masked accuracy (micro-averaged over
labelled positions) and loss."""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh

from h3_jax import tasks
from h3_jax.train.data import padded_chunks
from h3_jax.train.sharding import shard_batch


def eval_batch_size(requested: int, mesh: Mesh) -> int:
    """`requested` rounded up to a multiple of the device count."""
    n = mesh.devices.size
    return -(-requested // n) * n


class Evaluator:
    """Holds the replicas' test sets on the devices, in equal padded chunks (leaves (R, b, L),
    rows split over the mesh), so the eval step compiles once.

    `eval_step`: (params (R, ...), chunk) -> sums of loss, correct and count, each (R,).
    """

    def __init__(self, eval_step: Callable, tests: list[tasks.Batch], batch_size: int,
                 mesh: Mesh):
        self.eval_step = eval_step
        per_replica = [padded_chunks(test, batch_size) for test in tests]
        self.chunks = [
            shard_batch(tasks.Batch(*(np.stack(leaves) for leaves in zip(*chunks))), mesh, 1)
            for chunks in zip(*per_replica)
        ]

    def __call__(self, params: Any) -> dict[str, list[float]]:
        """{"accuracy": [R floats], "loss": [R floats]}."""
        totals = None
        for chunk in self.chunks:
            out = self.eval_step(params, chunk)
            totals = out if totals is None else jax.tree.map(lambda a, b: a + b, totals, out)
        totals = jax.device_get(totals)
        count = np.maximum(totals["count"], 1.0)
        return {
            "accuracy": (totals["correct"] / count).tolist(),
            "loss": (totals["loss_sum"] / count).tolist(),
        }
