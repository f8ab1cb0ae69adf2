"""Gated State Space (GSS, Mehta et al. 2022), a baseline of the H3 paper:
v = gelu(x W_v), u = gelu(x W_u), y = SSM(u), out = ((y W_c) . v) W_o."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
from jaxtyping import Array, Float

from h3_jax import validate
from h3_jax.layers import diag_ssm as diag
from h3_jax.layers.dense import Shared, dense, gelu
from h3_jax.mixers.base import Mixer
from h3_jax.mixers.ssm_config import DiagSSMConfig


@dataclasses.dataclass(frozen=True)
class GSSConfig(DiagSSMConfig):
    """GSS's settings: the diagonal SSM's and the gate's width."""

    expand: int = 3
    """Width of the gate branch v as a multiple of d_model (the GSS paper uses 3)."""

    def __post_init__(self):
        super().__post_init__()
        validate.positive_int("GSSConfig", "expand", self.expand)


class GSS(Mixer):
    """u and the SSM have width D, the gate v expand * D; the inner SSM is the diagonal SSM with
    a trainable B, one per channel. Parameters: v_proj, u_proj, diag_ssm, c_proj, output_linear.
    State (B, D, N)."""

    Config = GSSConfig
    ssm_parameters = (
        "diag_ssm/log_dt", "diag_ssm/inv_A_real", "diag_ssm/A_imag", "diag_ssm/B",
    )
    config: GSSConfig

    def setup(self):
        c, s = self.config, self.shared
        D, width = s.d_model, c.expand * s.d_model
        self.v_proj = dense(s, width)
        self.u_proj = dense(s, D)
        self.diag_ssm = diag.DiagSSM(D, c.n_modes, c.discretization, c.A_init, c.dt_min, c.dt_max)
        self.c_proj = dense(s, width)
        self.output_linear = dense(s, D)

    def __call__(self, x: Float[Array, "B L D"], *, train: bool = False) -> Float[Array, "B L D"]:
        v, u = self._branches(x)
        return self._out(diag.sequence(self.diag_ssm(), u, self.config.algorithm), v)

    def prefill(self, x: Float[Array, "B L D"], *, cache_len: int = 0):
        v, u = self._branches(x)
        dyn = self.diag_ssm()
        y = diag.sequence(dyn, u, self.config.algorithm)
        return self._out(y, v), {"diag": diag.final_state(dyn, u)}

    def step(self, x_t: Float[Array, "B D"], state, *, position=None):
        v, u = self._branches(x_t)
        x, y = diag.step(self.diag_ssm(), state["diag"], u)
        return self._out(y, v), {"diag": x}

    @classmethod
    def init_state(cls, config: GSSConfig, shared: Shared, batch_size: int, max_len: int = 0):
        return {"diag": diag.zero_state((batch_size,), shared.d_model, config.n_modes)}

    def _branches(self, x):
        return gelu(self.v_proj(x)), gelu(self.u_proj(x)).astype(jnp.float32)

    def _out(self, y, v):
        return self.output_linear(self.c_proj(y) * v)
