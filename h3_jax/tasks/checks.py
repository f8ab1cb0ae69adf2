"""Parameter validation shared by the task dataclasses; every failure is a one-line ValueError."""

from __future__ import annotations

import numbers


def fail(task: str, field: str, problem: str) -> None:
    """Raise the ValueError that names the task, the field and what is allowed."""
    raise ValueError(f"task '{task}': {field} {problem}")


def require_int(task: str, field: str, value: object, minimum: int, why: str = "") -> None:
    """`value` must be an int (not a bool) and at least `minimum`; `why` explains the minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        fail(task, field, f"must be an integer, got {value!r}")
    if value < minimum:
        reason = f" ({why})" if why else ""
        fail(task, field, f"must be >= {minimum}{reason}, got {value}")


def require_bool(task: str, field: str, value: object) -> None:
    if not isinstance(value, bool):
        fail(task, field, f"must be true or false, got {value!r}")


def require_positive_float(task: str, field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        fail(task, field, f"must be a number > 0, got {value!r}")


def require_choice(task: str, field: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        fail(task, field, f"must be one of {', '.join(allowed)}, got {value!r}")


def require_seed(name: str, value: object) -> None:
    """Seeds, stream indices and batch sizes: non-negative integers."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def require_batch_size(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"batch_size must be a positive integer, got {value!r}")
