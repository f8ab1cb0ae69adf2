"""The H3 mixer: out = W_o (q . SSM_diag(SSM_shift(k) (x) v)), with P x P heads.

Channels are head-major: channel c = h * P + i. For head_dim P = 1 the outer product is the
elementwise k . v; for P > 1 each head's diagonal SSM filters the P x P matrix k_t v_t^T and q_t
contracts its first index. The SSM part always runs in float32 / complex64.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
from jaxtyping import Array, Float

from h3_jax import validate
from h3_jax.layers import diag_ssm as diag
from h3_jax.layers import shift_ssm as shift
from h3_jax.layers.dense import DenseParams, Shared, dense, fused_dense
from h3_jax.mixers.base import Mixer
from h3_jax.mixers.ssm_config import DiagSSMConfig


@dataclasses.dataclass(frozen=True)
class H3Config(DiagSSMConfig):
    """H3's settings: the diagonal SSM's (d_state, discretization, A_init, dt range, algorithm)
    and the head dimension. Defaults follow the official H3 (bilinear, S4D-Lin)."""

    head_dim: int = 1
    """Head dimension P: the diagonal SSM runs per head on P x P outer products, H = D / P."""

    def __post_init__(self):
        super().__post_init__()
        validate.positive_int("H3Config", "head_dim", self.head_dim)

    def check_width(self, d_model: int) -> None:
        validate.divides("H3Config", "head_dim", self.head_dim, d_model)


class H3(Mixer):
    """H3. Parameters: q_proj, k_proj, v_proj, shift_ssm {B, C, D} (one per channel of D),
    diag_ssm {log_dt, inv_A_real, A_imag, B, C, D} (one per head), output_linear.

    State: the shift SSM's last d_state inputs (B, D, d_state) and the diagonal SSM's complex
    state, (B, H, N) for head_dim 1 and (B, P, P, H, N) otherwise.
    """

    Config = H3Config
    ssm_parameters = (
        "shift_ssm/B", "diag_ssm/log_dt", "diag_ssm/inv_A_real", "diag_ssm/A_imag", "diag_ssm/B",
    )
    config: H3Config

    def setup(self):
        c, s = self.config, self.shared
        D = s.d_model
        self.q_proj, self.k_proj, self.v_proj = (DenseParams(s, D) for _ in range(3))
        self.shift_ssm = shift.ShiftSSM(D, c.d_state)
        self.diag_ssm = diag.DiagSSM(
            D // c.head_dim, c.n_modes, c.discretization, c.A_init, c.dt_min, c.dt_max
        )
        self.output_linear = dense(s, D)

    def __call__(self, x: Float[Array, "B L D"], *, train: bool = False) -> Float[Array, "B L D"]:
        return self._sequence(x)[0]

    def prefill(self, x: Float[Array, "B L D"], *, cache_len: int = 0):
        y, k, kv, dyn = self._sequence(x)
        state = {
            "shift": shift.final_state(k, self.config.d_state),
            "diag": diag.final_state(dyn, kv),
        }
        return y, state

    def step(self, x_t: Float[Array, "B D"], state, *, position=None):
        P = self.config.head_dim
        q, k, v = self._qkv(x_t)
        shift_state, k_shifted = shift.step(self.shift_ssm(), state["shift"], k)
        diag_state, y = diag.step(self.diag_ssm(), state["diag"], _outer_step(k_shifted, v, P))
        return self.output_linear(_contract_step(q, y, P)), {"shift": shift_state, "diag": diag_state}

    @classmethod
    def init_state(cls, config: H3Config, shared: Shared, batch_size: int, max_len: int = 0):
        D, P = shared.d_model, config.head_dim
        heads = () if P == 1 else (P, P)
        return {
            "shift": jnp.zeros((batch_size, D, config.d_state), jnp.float32),
            "diag": diag.zero_state((batch_size, *heads), D // P, config.n_modes),
        }

    def _qkv(self, x):
        projections = fused_dense(self.shared, x, (self.q_proj, self.k_proj, self.v_proj))
        return [p.astype(jnp.float32) for p in projections]

    def _sequence(self, x):
        """(y, k, the diagonal SSM's input, its dynamics) of a whole sequence."""
        P = self.config.head_dim
        q, k, v = self._qkv(x)
        dyn = self.diag_ssm()
        kv = _outer(shift.sequence(self.shift_ssm(), k), v, P)
        y = diag.sequence(dyn, kv, self.config.algorithm)
        return self.output_linear(_contract(q, y, P)), k, kv, dyn


def _outer(k, v, P: int):
    """k (B, L, D), v (B, L, D) -> k . v (B, L, D) for P = 1, else per-head k v^T (B, P, P, L, H)."""
    if P == 1:
        return k * v
    k, v = _heads(k, P), _heads(v, P)
    return jnp.einsum("blhi,blhj->bijlh", k, v)


def _contract(q, y, P: int):
    """q . y for P = 1; else out[b, l, h P + j] = sum_i q[b, l, h P + i] y[b, i, j, l, h]."""
    if P == 1:
        return q * y
    out = jnp.einsum("blhi,bijlh->blhj", _heads(q, P), y)
    return out.reshape(*out.shape[:-2], -1)


def _outer_step(k, v, P: int):
    if P == 1:
        return k * v
    return jnp.einsum("bhi,bhj->bijh", _heads(k, P), _heads(v, P))


def _contract_step(q, y, P: int):
    if P == 1:
        return q * y
    out = jnp.einsum("bhi,bijh->bhj", _heads(q, P), y)
    return out.reshape(*out.shape[:-2], -1)


def _heads(x, P: int):
    return x.reshape(*x.shape[:-1], x.shape[-1] // P, P)
