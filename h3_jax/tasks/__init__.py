"""Synthetic tasks: H3's induction head and associative recall, Zoology's MQAR, selective copying.

Tasks are named by spec: a built-in name or "package.module:ClassName" (see `registry.py`).
Each task is a frozen dataclass of its parameters (paper defaults) with `vocab_size`, `seq_len`,
`dataset(seed) -> (train, test)` and `batch(seed, index, batch_size)`, all returning `Batch`es
whose `mask` marks the positions that count for loss and accuracy.
"""

from h3_jax.tasks.associative_recall import AssociativeRecallTask
from h3_jax.tasks.base import Batch, DrawnTask, Task
from h3_jax.tasks.induction_head import InductionHeadTask
from h3_jax.tasks.mqar import MQARTask
from h3_jax.tasks.registry import BUILT_IN, TASKS, get_task, spec_of, task_class
from h3_jax.tasks.selective_copying import SelectiveCopyingTask
from h3_jax.tasks.vocab import SafariVocab

__all__ = [
    "BUILT_IN",
    "TASKS",
    "AssociativeRecallTask",
    "Batch",
    "DrawnTask",
    "InductionHeadTask",
    "MQARTask",
    "SafariVocab",
    "SelectiveCopyingTask",
    "Task",
    "get_task",
    "spec_of",
    "task_class",
]
