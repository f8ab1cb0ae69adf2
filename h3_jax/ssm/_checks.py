"""Trace-time argument checks with messages that name the argument and both shapes."""

from __future__ import annotations

import jax.numpy as jnp


class Signature:
    """Binds axis letters to sizes across the arguments of one call.

    `Signature("diag_ssm_scan").array("dA", dA, "H N", kind="complex")` binds H and N from dA;
    a later argument whose H differs raises `ValueError` that names both shapes.
    A spec may start with "..." to allow any leading batch axes.
    """

    def __init__(self, fn: str, **known: int):
        self.fn = fn
        self.dims: dict[str, int] = dict(known)

    def array(self, name: str, x, spec: str, *, kind: str | None = None):
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise TypeError(f"{self.fn}: argument '{name}' must be an array, got {type(x).__name__}")
        if kind is not None:
            _check_kind(self.fn, name, x, kind)
        letters = spec.split()
        batched = letters[:1] == ["..."]
        if batched:
            letters = letters[1:]
        shape = tuple(x.shape)
        expected = "(" + ", ".join((["..."] if batched else []) + letters) + ")"
        if len(shape) < len(letters) or (not batched and len(shape) != len(letters)):
            raise ValueError(
                f"{self.fn}: argument '{name}' must have shape {expected}, got shape {shape}"
            )
        tail = shape[len(shape) - len(letters):]
        for letter, size in zip(letters, tail):
            bound = self.dims.setdefault(letter, size)
            if bound != size:
                raise ValueError(
                    f"{self.fn}: argument '{name}' must have shape {expected} with "
                    f"{letter}={bound} (from the other arguments), got shape {shape}"
                )
        return x

    def diag_ssm(self, dA, dB, C=None) -> None:
        """The discretized diagonal SSM: dA, dB (and C) complex (H, N)."""
        self.array("dA", dA, "H N", kind="complex")
        self.array("dB", dB, "H N", kind="complex")
        if C is not None:
            self.array("C", C, "H N", kind="complex")

    def conv(self, u, K, D=None) -> None:
        """A causal convolution's u (..., L, H), K (H, Lk) and optional D (H,)."""
        self.array("u", u, "... L H", kind="real")
        self.array("K", K, "H Lk", kind="real")
        if D is not None:
            self.array("D", D, "H", kind="real")

    def batch_shape(self, name: str, x, spec: str) -> tuple[int, ...]:
        """The leading batch axes of `x` under a "... X Y" spec."""
        return tuple(x.shape[: x.ndim - (len(spec.split()) - 1)])


def _check_kind(fn: str, name: str, x, kind: str) -> None:
    dtype = jnp.dtype(x.dtype)
    ok = {
        "complex": jnp.issubdtype(dtype, jnp.complexfloating),
        "real": jnp.issubdtype(dtype, jnp.floating),
        "float": jnp.issubdtype(dtype, jnp.floating),
        "numeric": jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.complexfloating),
    }[kind]
    if not ok:
        raise TypeError(f"{fn}: argument '{name}' must have a {kind} floating dtype, got {dtype}")


def positive_int(fn: str, name: str, value) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{fn}: argument '{name}' must be a Python int, got {type(value).__name__}")
    value = value.__index__()
    if value < 1:
        raise ValueError(f"{fn}: argument '{name}' must be >= 1, got {value}")
    return value


def choice(fn: str, name: str, value, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{fn}: argument '{name}' must be one of {allowed}, got {value!r}")
    return value
