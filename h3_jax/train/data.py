"""Host-side batches, a pure function of the step: resuming at step s replays the same data.

"fixed": the task's fixed train set (the paper protocol), reshuffled every epoch with a
permutation seeded by (data_seed, epoch); the last partial batch of an epoch is dropped so every
batch has the same shape and splits evenly over the devices.
"stream": `task.batch(data_seed, step, batch_size)`, fresh examples for every step.
The test set is always the task's fixed test set.

`labels_per_example` (train) and `test_labels_per_example` bound the labelled positions of a row;
the train and eval steps use them to run the LM head at those positions only. Every train batch
is checked against the bound, since a row with more labels would lose some silently.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from h3_jax import tasks
from h3_jax.train.config import ConfigError


def stack(batches: list[tasks.Batch]) -> tasks.Batch:
    return tasks.Batch(*(np.stack(parts) for parts in zip(*batches)))


class TrainData:
    def __init__(self, task: Any, kind: str, data_seed: int, batch_size: int):
        self.task, self.kind, self.seed, self.batch_size = task, kind, data_seed, batch_size
        self.labels_per_example = int(task.labels_per_example)
        train, self.test = task.dataset(data_seed)
        self.test_labels_per_example = max_labels(self.test)
        self.train = train if kind == "fixed" else None
        self._epoch, self._perm = -1, None
        if self.train is not None:
            n = len(self.train.inputs)
            if n < batch_size:
                raise ConfigError(f"train.batch_size {batch_size} exceeds the {n} training examples")
            self.steps_per_epoch = n // batch_size

    def batch(self, step: int) -> tasks.Batch:
        if self.train is None:
            batch = self.task.batch(self.seed, step, self.batch_size)
        else:
            epoch, within = divmod(step, self.steps_per_epoch)
            if epoch != self._epoch:
                rng = np.random.default_rng([self.seed, epoch])
                self._epoch, self._perm = epoch, rng.permutation(len(self.train.inputs))
            rows = self._perm[within * self.batch_size : (within + 1) * self.batch_size]
            batch = tasks.Batch(*(part[rows] for part in self.train))
        if max_labels(batch) > self.labels_per_example:
            raise ValueError(
                f"{self.task.name}: a train example has {max_labels(batch)} labelled positions, "
                f"more than its labels_per_example={self.labels_per_example}"
            )
        return batch

    def chunk(self, step: int, k: int) -> tasks.Batch:
        """Batches of steps step..step+k-1 stacked: leaves (k, B, L)."""
        return stack([self.batch(s) for s in range(step, step + k)])


def max_labels(batch: tasks.Batch) -> int:
    """The most labelled (mask True) positions in one row of `batch`."""
    return int(batch.mask.sum(axis=-1).max(initial=0))


def padded_chunks(batch: tasks.Batch, size: int) -> list[tasks.Batch]:
    """Split a batch into equal chunks of `size` rows, padding the last with masked-out rows."""
    n = len(batch.inputs)
    total = -(-n // size) * size
    pad = total - n
    if pad:
        batch = tasks.Batch(
            np.concatenate([batch.inputs, np.zeros((pad,) + batch.inputs.shape[1:], np.int32)]),
            np.concatenate([batch.targets, np.zeros((pad,) + batch.targets.shape[1:], np.int32)]),
            np.concatenate([batch.mask, np.zeros((pad,) + batch.mask.shape[1:], bool)]),
        )
    return [
        tasks.Batch(*(part[i : i + size] for part in batch)) for i in range(0, total, size)
    ]
