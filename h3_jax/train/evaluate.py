"""Test-set evaluation: masked accuracy (micro-averaged over labelled positions) and loss."""

from __future__ import annotations

from typing import Any, Callable

import jax
from jax.sharding import Mesh

from h3_jax import tasks
from h3_jax.train.data import padded_chunks
from h3_jax.train.sharding import shard_batch


def eval_batch_size(requested: int, mesh: Mesh) -> int:
    """`requested` rounded up to a multiple of the device count."""
    n = mesh.devices.size
    return -(-requested // n) * n


class Evaluator:
    """Holds the test set on the devices, in equal padded chunks, so the eval step compiles once."""

    def __init__(self, eval_step: Callable, test: tasks.Batch, batch_size: int, mesh: Mesh):
        self.eval_step = eval_step
        self.chunks = [shard_batch(c, mesh) for c in padded_chunks(test, batch_size)]

    def __call__(self, params: Any) -> dict[str, float]:
        totals = None
        for chunk in self.chunks:
            out = self.eval_step(params, chunk)
            totals = out if totals is None else jax.tree.map(lambda a, b: a + b, totals, out)
        totals = jax.device_get(totals)
        count = max(float(totals["count"]), 1.0)
        return {
            "accuracy": float(totals["correct"]) / count,
            "loss": float(totals["loss_sum"]) / count,
        }
