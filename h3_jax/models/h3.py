"""The H3 mixer: out = W_o (q . SSM_diag(SSM_shift(k) (x) v)), with P x P heads.

Channels are head-major: channel c = h * P + i. For head_dim P = 1 the outer product is the
elementwise k . v; for P > 1 each head's diagonal SSM filters the P x P matrix k_t v_t^T and q_t
contracts its first index. The SSM part always runs in float32 / complex64.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Array, Float

from h3_jax.models import diag_ssm as diag
from h3_jax.models import shift_ssm as shift
from h3_jax.models.common import check_mode, dense, fused_dense
from h3_jax.models.config import LMConfig


class H3(nn.Module):
    """H3 mixer. `__call__(x, mode, state) -> (y, state)`; x (B, L, D), or (B, D) when mode="step".

    Parameters: q_proj, k_proj, v_proj, shift_ssm {B, C, D} (one per channel of D), diag_ssm
    {log_dt, inv_A_real, A_imag, B, C, D} (one per head), output_linear.
    """

    config: LMConfig

    @nn.compact
    def __call__(self, x: Float[Array, "B L D"], *, mode: str = "fft", state=None, **_):
        check_mode(mode)
        c = self.config
        D, P = c.d_model, c.head_dim
        H = D // P
        projections = fused_dense(c, x, D, ("q_proj", "k_proj", "v_proj"))
        q, k, v = (p.astype(jnp.float32) for p in projections)
        filt = shift.ShiftSSM(D, c.d_state, name="shift_ssm")()
        dyn = diag.DiagSSM(
            H, c.n_modes, c.ssm_discretization, c.ssm_A_init, c.dt_min, c.dt_max, name="diag_ssm"
        )()
        if mode == "step":
            shift_state, k_shifted = shift.shift_step(filt, state["shift"], k)
            diag_state, y = diag.diag_ssm_step(dyn, state["diag"], _outer_step(k_shifted, v, P))
            out = _contract_step(q, y, P)
            new_state = {"shift": shift_state, "diag": diag_state}
        else:
            k_shifted = shift.shift_sequence(filt, k)
            kv = _outer(k_shifted, v, P)
            out = _contract(q, diag.diag_ssm_sequence(dyn, kv, "scan" if mode == "scan" else "fft"), P)
            new_state = None
            if mode == "prefill":
                new_state = {
                    "shift": shift.shift_final_state(k, c.d_state),
                    "diag": diag.diag_ssm_final_state(dyn, kv),
                }
        return dense(c, D, "output_linear")(out), new_state

    @staticmethod
    def init_state(config: LMConfig, batch_size: int, max_len: int) -> dict[str, Array]:
        """Zero state: the shift SSM's last d_state inputs (B, D, d_state) and the diagonal
        SSM's complex state, (B, H, N) for head_dim 1 and (B, P, P, H, N) otherwise."""
        D, P = config.d_model, config.head_dim
        heads = () if P == 1 else (P, P)
        return {
            "shift": jnp.zeros((batch_size, D, config.d_state), jnp.float32),
            "diag": diag.zero_state((batch_size, *heads), D // P, config.n_modes),
        }


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
