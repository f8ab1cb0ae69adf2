"""The S4D block of the H3 paper's baselines (safari): y = W_o gelu(SSM(u) + D u)."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
from jaxtyping import Array, Float

from h3_jax.layers import diag_ssm as diag
from h3_jax.layers.dense import Shared, dense, gelu
from h3_jax.mixers.base import Mixer
from h3_jax.mixers.ssm_config import DiagSSMConfig


@dataclasses.dataclass(frozen=True)
class S4DConfig(DiagSSMConfig):
    """safari's S4D block: ZOH and S4D-Inv by default."""

    discretization: str = "zoh"
    A_init: str = "inv"


class S4D(Mixer):
    """One SSM per channel of D; A is shared by all channels (n_ssm = 1) and B is folded into C.
    Parameters: diag_ssm {log_dt, inv_A_real, A_imag, C, D}, output_linear. State (B, D, N)."""

    Config = S4DConfig
    ssm_parameters = ("diag_ssm/log_dt", "diag_ssm/inv_A_real", "diag_ssm/A_imag")
    config: S4DConfig

    def setup(self):
        c, D = self.config, self.shared.d_model
        self.diag_ssm = diag.DiagSSM(
            D, c.n_modes, c.discretization, c.A_init, c.dt_min, c.dt_max,
            shared_A=True, learn_B=False,
        )
        self.output_linear = dense(self.shared, D)

    def __call__(self, x: Float[Array, "B L D"], *, train: bool = False) -> Float[Array, "B L D"]:
        u = x.astype(jnp.float32)
        return self.output_linear(gelu(diag.sequence(self.diag_ssm(), u, self.config.algorithm)))

    def prefill(self, x: Float[Array, "B L D"], *, cache_len: int = 0):
        u = x.astype(jnp.float32)
        return self(x), {"diag": diag.final_state(self.diag_ssm(), u)}

    def step(self, x_t: Float[Array, "B D"], state, *, position=None):
        x, y = diag.step(self.diag_ssm(), state["diag"], x_t.astype(jnp.float32))
        return self.output_linear(gelu(y)), {"diag": x}

    @classmethod
    def init_state(cls, config: S4DConfig, shared: Shared, batch_size: int, max_len: int = 0):
        return {"diag": diag.zero_state((batch_size,), shared.d_model, config.n_modes)}
