"""The paper's SSM baselines: the S4D block (safari) and Gated State Space (GSS, Mehta et al. 2022)."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Array, Float

from h3_jax.models import diag_ssm as diag
from h3_jax.models.common import check_mode, dense, gelu
from h3_jax.models.config import LMConfig


def _ssm_views(dyn: diag.DiagDynamics, u, mode: str, state):
    """The diagonal SSM (with D) over u (B, L, H) or one step u (B, H) -> (y, new_state)."""
    if mode == "step":
        x, y = diag.diag_ssm_step(dyn, state["diag"], u)
        return y, {"diag": x}
    y = diag.diag_ssm_sequence(dyn, u, "scan" if mode == "scan" else "fft")
    new_state = {"diag": diag.diag_ssm_final_state(dyn, u)} if mode == "prefill" else None
    return y, new_state


def _diag_state(config: LMConfig, batch_size: int, channels: int):
    return {"diag": diag.zero_state((batch_size,), channels, config.n_modes)}


class S4D(nn.Module):
    """safari's S4D block: y = W_o gelu(SSM(u) + D u), one SSM per channel of D.

    A is shared by all channels (n_ssm = 1) and B is folded into C; discretization and A init
    come from the config (ZOH and S4D-Inv by default for this mixer).
    """

    config: LMConfig

    @nn.compact
    def __call__(self, x: Float[Array, "B L D"], *, mode: str = "fft", state=None, **_):
        check_mode(mode)
        c = self.config
        dyn = diag.DiagSSM(
            c.d_model, c.n_modes, c.ssm_discretization, c.ssm_A_init, c.dt_min, c.dt_max,
            shared_A=True, learn_B=False, name="diag_ssm",
        )()
        y, new_state = _ssm_views(dyn, x.astype(jnp.float32), mode, state)
        return dense(c, c.d_model, "output_linear")(gelu(y)), new_state

    @staticmethod
    def init_state(config: LMConfig, batch_size: int, max_len: int) -> dict[str, Array]:
        """Zero complex state (B, D, N)."""
        return _diag_state(config, batch_size, config.d_model)


class GSS(nn.Module):
    """Gated State Space: v = gelu(x W_v), u = gelu(x W_u), y = SSM(u), out = ((y W_c) . v) W_o.

    u and the SSM have width D; the gate v has width gss_expand * D. The inner SSM is the diagonal
    SSM with a trainable B, one per channel.
    """

    config: LMConfig

    @nn.compact
    def __call__(self, x: Float[Array, "B L D"], *, mode: str = "fft", state=None, **_):
        check_mode(mode)
        c = self.config
        width = c.gss_expand * c.d_model
        v = gelu(dense(c, width, "v_proj")(x))
        u = gelu(dense(c, c.d_model, "u_proj")(x)).astype(jnp.float32)
        dyn = diag.DiagSSM(
            c.d_model, c.n_modes, c.ssm_discretization, c.ssm_A_init, c.dt_min, c.dt_max,
            name="diag_ssm",
        )()
        y, new_state = _ssm_views(dyn, u, mode, state)
        gated = dense(c, width, "c_proj")(y) * v
        return dense(c, c.d_model, "output_linear")(gated), new_state

    @staticmethod
    def init_state(config: LMConfig, batch_size: int, max_len: int) -> dict[str, Array]:
        """Zero complex state (B, D, N)."""
        return _diag_state(config, batch_size, config.d_model)
