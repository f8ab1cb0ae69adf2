"""Synthetic tasks: H3's induction head and associative recall, Zoology's MQAR, selective copying.

Each task is a frozen dataclass of its parameters (paper defaults) with `vocab_size`, `seq_len`,
`dataset(seed) -> (train, test)` and `batch(seed, index, batch_size)`, all returning `Batch`es
whose `mask` marks the positions that count for loss and accuracy.
"""

from h3_jax.tasks.associative_recall import AssociativeRecallTask
from h3_jax.tasks.base import Batch
from h3_jax.tasks.induction_head import InductionHeadTask
from h3_jax.tasks.mqar import MQARTask
from h3_jax.tasks.registry import TASKS, Task, get_task
from h3_jax.tasks.selective_copying import SelectiveCopyingTask
from h3_jax.tasks.vocab import SafariVocab

__all__ = [
    "TASKS",
    "AssociativeRecallTask",
    "Batch",
    "InductionHeadTask",
    "MQARTask",
    "SafariVocab",
    "SelectiveCopyingTask",
    "Task",
    "get_task",
]
