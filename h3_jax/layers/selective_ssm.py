"""The selective SSM (Mamba's S6) as a Flax module: its dynamics A and D, and the input-dependent
step size dt and matrices B, C read from a sequence, plus the sequence views.

Parameters follow Mamba's layout: A = -exp(A_log) with the S4D-Real init A[h, n] = -(n + 1);
x_proj (D -> R + 2N; Mamba's has no bias, this one starts at 0) reads a low-rank dt and B, C
from the input; dt_proj (R -> H) and its bias dt_bias lift the low-rank dt to the H channels,
dt = softplus(dt_proj(.) + dt_bias), with dt_bias set so that softplus(dt_bias) is log-uniform
in [dt_min, dt_max] at init; the skip D starts at 1.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from h3_jax import ssm
from h3_jax.layers.dense import Shared, dense

# dt's init is clamped from below here (Mamba's dt_init_floor), so that the inverse softplus
# of the bias stays finite.
DT_FLOOR = 1e-4


class Selection(NamedTuple):
    """What the input selects at each step: dt (..., L, H) > 0, B and C (..., L, N)."""

    dt: Float[Array, "... L H"]
    B: Float[Array, "... L N"]
    C: Float[Array, "... L N"]


class SelectiveSSM(nn.Module):
    """`channels` S6 channels with `d_state` real modes each. `__call__(x)` returns the
    Selection read from x (..., L, D), float32; `A` and `D` are the dynamics."""

    shared: Shared
    channels: int
    d_state: int
    dt_rank: int
    dt_min: float = 1e-3
    dt_max: float = 1e-1

    def setup(self):
        H, N, R = self.channels, self.d_state, self.dt_rank
        self.A_log = self.param(
            "A_log", lambda _: jnp.log(jnp.broadcast_to(jnp.arange(1, N + 1, dtype=jnp.float32),
                                                        (H, N)))
        )
        self.D = self.param("D", nn.initializers.ones, (H,), jnp.float32)
        self.x_proj = dense(self.shared, R + 2 * N, name="x_proj")
        bound = R ** -0.5  # Mamba's dt_proj init: U(-1/sqrt(R), 1/sqrt(R))
        self.dt_proj = self.param(
            "dt_proj",
            lambda k: jax.random.uniform(k, (R, H), jnp.float32, -bound, bound),
        )
        self.dt_bias = self.param("dt_bias", self._dt_bias_init)

    def _dt_bias_init(self, key):
        log_dt = jax.random.uniform(key, (self.channels,), jnp.float32,
                                    math.log(self.dt_min), math.log(self.dt_max))
        dt = jnp.maximum(jnp.exp(log_dt), DT_FLOOR)
        return dt + jnp.log(-jnp.expm1(-dt))  # softplus^-1(dt)

    @property
    def A(self) -> Float[Array, "H N"]:
        return -jnp.exp(self.A_log)

    def __call__(self, x: Float[Array, "... L D"]) -> Selection:
        projected = self.x_proj(x).astype(jnp.float32)
        R, N = self.dt_rank, self.d_state
        dt_low, B, C = jnp.split(projected, (R, R + N), axis=-1)
        dt = jax.nn.softplus(jnp.dot(dt_low, self.dt_proj) + self.dt_bias)
        return Selection(dt, B, C)


def sequence(
    A: Float[Array, "H N"],
    D: Float[Array, " H"],
    sel: Selection,
    u: Float[Array, "... L H"],
    algorithm: str,
    chunk_size: int | None = None,
) -> tuple[Float[Array, "... L H"], Float[Array, "... H N"]]:
    """The S6 over a whole sequence from zero state -> (y, final state): "scan" (associative,
    in chunks of chunk_size if given) or "recurrence" (one step at a time)."""
    if algorithm == "recurrence":
        return ssm.selective_recurrence(u, sel.dt, A, sel.B, sel.C, D)
    return ssm.selective_scan(u, sel.dt, A, sel.B, sel.C, D, chunk_size=chunk_size)


def step(
    A: Float[Array, "H N"],
    D: Float[Array, " H"],
    sel: Selection,
    x: Float[Array, "... H N"],
    u_t: Float[Array, "... H"],
) -> tuple[Float[Array, "... H N"], Float[Array, "... H"]]:
    """One recurrent step with the Selection of one token (dt (..., H), B, C (..., N))."""
    return ssm.selective_step(x, u_t, sel.dt, A, sel.B, sel.C, D)
