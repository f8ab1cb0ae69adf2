"""Tasks by spec: a built-in short name, or "package.module:ClassName" for any other, also one in
the user's own file (imported on demand, no edit to h3_jax). `get_task(spec, **overrides)`.

A task is a frozen dataclass of its parameters with the interface of `h3_jax.tasks.base.Task`;
`h3_jax.testing.check_task(spec)` checks it.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from h3_jax.tasks.base import Task

BUILT_IN = {
    "induction_head": "h3_jax.tasks.induction_head:InductionHeadTask",
    "associative_recall": "h3_jax.tasks.associative_recall:AssociativeRecallTask",
    "mqar": "h3_jax.tasks.mqar:MQARTask",
    "selective_copying": "h3_jax.tasks.selective_copying:SelectiveCopyingTask",
}
TASKS = tuple(BUILT_IN)


def task_class(spec: str) -> type:
    """The task class named by `spec`; ValueError naming what is wrong otherwise."""
    path = BUILT_IN.get(spec, spec) if isinstance(spec, str) else ""
    module_name, colon, name = path.partition(":")
    if not colon or not module_name or not name:
        raise ValueError(f"unknown task {spec!r}; choose one of: {', '.join(TASKS)}, or "
                         "'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"task {spec!r}: cannot import {module_name!r} ({err})") from None
    cls = getattr(module, name, None)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)
            and all(hasattr(cls, a) for a in ("dataset", "batch", "labels_per_example"))):
        raise ValueError(f"task {spec!r} is not a task class (a dataclass with dataset, batch "
                         "and labels_per_example; see h3_jax.tasks.base.Task)")
    return cls


def spec_of(task: Any) -> str:
    """The spec that names `task`'s class: its built-in name, else "module:ClassName"."""
    path = f"{type(task).__module__}:{type(task).__qualname__}"
    return next((name for name, built_in in BUILT_IN.items() if built_in == path), path)


def get_task(spec: str, **overrides: Any) -> Task:
    """The task `spec` with its defaults, any field replaced by `overrides`.

    Raises ValueError naming the problem for an unknown task, an unknown field or a bad value.
    """
    cls = task_class(spec)
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(
            f"task '{spec}' has no field {', '.join(map(repr, unknown))}; its fields are: "
            f"{', '.join(fields)}"
        )
    return cls(**overrides)
