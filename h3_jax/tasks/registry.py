"""Task lookup by name: `get_task(name, **overrides)`."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Mapping, Union

from h3_jax.tasks.associative_recall import AssociativeRecallTask
from h3_jax.tasks.induction_head import InductionHeadTask
from h3_jax.tasks.mqar import MQARTask
from h3_jax.tasks.selective_copying import SelectiveCopyingTask

Task = Union[InductionHeadTask, AssociativeRecallTask, MQARTask, SelectiveCopyingTask]

TASKS: Mapping[str, type] = MappingProxyType(
    {
        InductionHeadTask.name: InductionHeadTask,
        AssociativeRecallTask.name: AssociativeRecallTask,
        MQARTask.name: MQARTask,
        SelectiveCopyingTask.name: SelectiveCopyingTask,
    }
)


def get_task(name: str, **overrides: Any) -> Task:
    """The task `name` with its paper defaults, any field replaced by `overrides`.

    Raises ValueError naming the problem for an unknown task, an unknown field or a bad value.
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    cls = TASKS[name]
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(
            f"task '{name}' has no field {', '.join(map(repr, unknown))}; its fields are: {', '.join(fields)}"
        )
    return cls(**overrides)
