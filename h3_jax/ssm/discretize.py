"""Continuous -> discrete time for a diagonal SSM x' = A x + B u (one A, B per channel and mode)."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Complex, Float

from h3_jax.ssm._checks import Signature, choice

METHODS = ("bilinear", "zoh")


def discretize(
    A: Complex[Array, "H N"],
    B: Complex[Array, "H N"],
    dt: Float[Array, " H"],
    method: str = "bilinear",
) -> tuple[Complex[Array, "H N"], Complex[Array, "H N"]]:
    """Discretize with step dt per channel, giving x_t = dA x_{t-1} + dB u_t.

    bilinear: dA = (1 + dt A/2) / (1 - dt A/2),  dB = dt B / (1 - dt A/2)   (H3's default)
    zoh:      dA = exp(dt A),                    dB = B (exp(dt A) - 1) / A
    """
    sig = Signature("discretize")
    sig.array("A", A, "H N", kind="complex")
    sig.array("B", B, "H N", kind="complex")
    sig.array("dt", dt, "H", kind="real")
    choice("discretize", "method", method, METHODS)
    dtA = dt[:, None] * A
    if method == "bilinear":
        inv = 1.0 / (1.0 - dtA / 2)
        return (1.0 + dtA / 2) * inv, dt[:, None] * B * inv
    dA = jnp.exp(dtA)
    # expm1 keeps dB accurate when |dt A| is tiny, where exp(dtA) - 1 would cancel.
    return dA, B * jnp.expm1(dtA) / A
