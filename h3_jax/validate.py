"""Checks for the fields of config dataclasses. Each raises ValueError naming `Owner.field`, the
value it got and what is allowed, so a bad setting reads the same wherever it is made."""

from __future__ import annotations

import math
from typing import Any


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(owner: str, name: str, value: Any) -> None:
    if not is_int(value) or value < 1:
        raise ValueError(f"{owner}.{name}: got {value!r}; allowed is an int >= 1")


def non_negative_int(owner: str, name: str, value: Any) -> None:
    if not is_int(value) or value < 0:
        raise ValueError(f"{owner}.{name}: got {value!r}; allowed is an int >= 0")


def one_of(owner: str, name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{owner}.{name}: got {value!r}; allowed are {allowed}")


def positive_float(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and value > 0
    ):
        raise ValueError(f"{owner}.{name}: got {value!r}; allowed is a finite number > 0")


def probability(owner: str, name: str, value: Any) -> None:
    """A dropout rate: a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}.{name}: got {value!r}; allowed is a float in [0, 1)")


def boolean(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{owner}.{name}: got {value!r}; allowed is a bool")


def divides(owner: str, name: str, value: int, d_model: int) -> None:
    if d_model % value:
        raise ValueError(
            f"{owner}.{name}: got {value}, which does not divide d_model={d_model}; "
            "allowed are divisors of d_model"
        )
