"""The H3 mixer: out = W_o (q . SSM(SSM_shift(k) (x) v)), with P x P heads.

Channels are head-major: channel c = h * P + i. For head_dim P = 1 the outer product is the
elementwise k . v; for P > 1 each head's SSM filters the P x P matrix k_t v_t^T and q_t
contracts its first index. The SSM part always runs in float32 / complex64.

The inner SSM is the diagonal S4D of the paper ("s4d", time-invariant: FFT or scan), or the
selective S6 of Mamba ("s6"), whose dt, B and C are read from the block's input x at every step
(scan or recurrence only); the Mamba paper's Table 1 compares the two inside H3.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax.numpy as jnp
from jaxtyping import Array, Float

from h3_jax import validate
from h3_jax.layers import diag_ssm as diag
from h3_jax.layers import selective_ssm as selective
from h3_jax.layers import shift_ssm as shift
from h3_jax.layers.dense import DenseParams, Shared, dense, fused_dense
from h3_jax.mixers.base import Mixer
from h3_jax.mixers.ssm_config import DiagSSMConfig


@dataclasses.dataclass(frozen=True)
class H3Config(DiagSSMConfig):
    """H3's settings: the inner SSM, the diagonal SSM's (d_state, discretization, A_init, dt
    range, algorithm), the head dimension, and the selective SSM's. Defaults follow the official
    H3 (S4D, bilinear, S4D-Lin); those of "s6" follow Mamba (N = 16, R = ceil(D / 16))."""

    ALGORITHMS: ClassVar[tuple[str, ...]] = ("fft", "scan", "recurrence")
    SELECTIVE_ALGORITHMS: ClassVar[tuple[str, ...]] = ("scan", "recurrence")

    head_dim: int = 1
    """Head dimension P: the inner SSM runs per head on P x P outer products, H = D / P."""
    inner_ssm: str = "s4d"
    """"s4d" (the diagonal SSM: d_state, discretization, A_init) or "s6" (selective: dt, B, C
    from the input; selective_d_state, dt_rank, chunk_size). dt_min, dt_max serve both. With
    "s6", `algorithm` is "scan" (associative) or "recurrence" (sequential): no FFT exists for
    an SSM that changes at every step. The shift SSM keeps d_state taps either way."""
    selective_d_state: int = 16
    """S6 only: real modes N per channel (Mamba's d_state)."""
    dt_rank: int = 0
    """S6 only: rank R of dt's projection from the input; 0 means ceil(D / 16), Mamba's."""
    chunk_size: int = 0
    """S6 with algorithm "scan" only: steps per chunk of the associative scan (the state is
    carried between chunks and each chunk's intermediates exist one at a time); 0 runs the
    whole sequence as one scan."""

    def __post_init__(self):
        owner = "H3Config"
        validate.one_of(owner, "inner_ssm", self.inner_ssm, ("s4d", "s6"))
        if self.inner_ssm == "s6" and self.algorithm == "fft":
            raise ValueError(
                f"{owner}.algorithm: got 'fft' with inner_ssm='s6'; a selective SSM has no "
                f"convolution form, allowed are {self.SELECTIVE_ALGORITHMS}"
            )
        super().__post_init__()
        validate.positive_int(owner, "head_dim", self.head_dim)
        validate.positive_int(owner, "selective_d_state", self.selective_d_state)
        validate.non_negative_int(owner, "dt_rank", self.dt_rank)
        validate.non_negative_int(owner, "chunk_size", self.chunk_size)

    @property
    def algorithms(self) -> tuple[str, ...]:
        return self.SELECTIVE_ALGORITHMS if self.inner_ssm == "s6" else DiagSSMConfig.ALGORITHMS

    def rank_of_dt(self, d_model: int) -> int:
        """R: dt_rank, or ceil(d_model / 16) when it is 0."""
        return self.dt_rank or math.ceil(d_model / 16)

    def check_width(self, d_model: int) -> None:
        validate.divides("H3Config", "head_dim", self.head_dim, d_model)


class H3(Mixer):
    """H3. Parameters: q_proj, k_proj, v_proj, shift_ssm {B, C, D} (one per channel of D),
    output_linear, and the inner SSM, one per head: diag_ssm {log_dt, inv_A_real, A_imag, B, C,
    D} for "s4d", selective_ssm {A_log, D, x_proj, dt_proj, dt_bias} for "s6".

    State: "shift", the shift SSM's last d_state inputs (B, D, d_state), and the inner SSM's
    state, (B, H, N) for head_dim 1 and (B, P, P, H, N) otherwise: "diag" (complex) for "s4d",
    "selective" (real) for "s6".
    """

    Config = H3Config
    ssm_parameters = (
        "shift_ssm/B", "diag_ssm/log_dt", "diag_ssm/inv_A_real", "diag_ssm/A_imag", "diag_ssm/B",
    )
    selective_ssm_parameters = ("shift_ssm/B", "selective_ssm/A_log", "selective_ssm/dt_bias")
    config: H3Config

    @classmethod
    def ssm_parameters_of(cls, config: H3Config) -> tuple[str, ...]:
        return cls.selective_ssm_parameters if config.inner_ssm == "s6" else cls.ssm_parameters

    def setup(self):
        c, s = self.config, self.shared
        D, H = s.d_model, s.d_model // c.head_dim
        self.q_proj, self.k_proj, self.v_proj = (DenseParams(s, D) for _ in range(3))
        self.shift_ssm = shift.ShiftSSM(D, c.d_state)
        if c.inner_ssm == "s6":
            self.selective_ssm = selective.SelectiveSSM(
                s, H, c.selective_d_state, c.rank_of_dt(D), c.dt_min, c.dt_max
            )
        else:
            self.diag_ssm = diag.DiagSSM(
                H, c.n_modes, c.discretization, c.A_init, c.dt_min, c.dt_max
            )
        self.output_linear = dense(s, D)

    def __call__(self, x: Float[Array, "B L D"], *, train: bool = False) -> Float[Array, "B L D"]:
        return self._sequence(x)[0]

    def prefill(self, x: Float[Array, "B L D"], *, cache_len: int = 0):
        y, k, inner_state = self._sequence(x, with_state=True)
        return y, {"shift": shift.final_state(k, self.config.d_state), self._inner: inner_state}

    def step(self, x_t: Float[Array, "B D"], state, *, position=None):
        P = self.config.head_dim
        q, k, v = self.qkv(x_t)
        shift_state, k_shifted = shift.step(self.shift_ssm(), state["shift"], k)
        kv = _outer_step(k_shifted, v, P)
        if self.config.inner_ssm == "s6":
            sel, A, D = self._selection(x_t, P)
            flat, y = selective.step(A, D, sel, _flat_state(state["selective"], P),
                                     _flat_step(kv, P))
            inner, y = _unflat_state(flat, P), _unflat_step(y, P)
        else:
            inner, y = diag.step(self.diag_ssm(), state["diag"], kv)
        y = self.output_linear(_contract_step(q, y, P))
        return y, {"shift": shift_state, self._inner: inner}

    @classmethod
    def init_state(cls, config: H3Config, shared: Shared, batch_size: int, max_len: int = 0):
        D, P = shared.d_model, config.head_dim
        heads = () if P == 1 else (P, P)
        shift_state = jnp.zeros((batch_size, D, config.d_state), jnp.float32)
        if config.inner_ssm == "s6":
            shape = (batch_size, *heads, D // P, config.selective_d_state)
            return {"shift": shift_state, "selective": jnp.zeros(shape, jnp.float32)}
        return {"shift": shift_state,
                "diag": diag.zero_state((batch_size, *heads), D // P, config.n_modes)}

    @property
    def _inner(self) -> str:
        """The state's key of the inner SSM."""
        return "selective" if self.config.inner_ssm == "s6" else "diag"

    def qkv(self, x: Float[Array, "... D"]) -> list[Float[Array, "... D"]]:
        """[q, k, v], the three input projections (one fused matmul), in float32."""
        projections = fused_dense(self.shared, x, (self.q_proj, self.k_proj, self.v_proj))
        return [p.astype(jnp.float32) for p in projections]

    def _selection(self, x, P: int):
        """The S6's Selection read from x, and A, D, with every head's dt, A and D repeated
        over its P x P channels (the flat channel order of _flat)."""
        s6 = self.selective_ssm
        sel = s6(x)
        A = _repeat_heads(s6.A.T, P).T  # (P P H, N)
        return sel._replace(dt=_repeat_heads(sel.dt, P)), A, _repeat_heads(s6.D, P)

    def _sequence(self, x, with_state: bool = False):
        """(y, k, the inner SSM's state after x, or None) of a whole sequence."""
        c, P = self.config, self.config.head_dim
        q, k, v = self.qkv(x)
        kv = head_outer(shift.sequence(self.shift_ssm(), k), v, P)
        if c.inner_ssm == "s6":
            sel, A, D = self._selection(x, P)
            y, last = selective.sequence(A, D, sel, _flat(kv, P), c.algorithm,
                                         c.chunk_size or None)
            y, state = _unflat(y, P), _unflat_state(last, P)
        else:
            dyn = self.diag_ssm()
            y = diag.sequence(dyn, kv, c.algorithm)
            state = diag.final_state(dyn, kv) if with_state else None
        return self.output_linear(head_contract(q, y, P)), k, state


def head_outer(k: Float[Array, "B L D"], v: Float[Array, "B L D"], P: int) -> Array:
    """k . v (B, L, D) for P = 1, else each head's k_t v_t^T, (B, P, P, L, H): the input of
    the inner SSM."""
    if P == 1:
        return k * v
    k, v = _heads(k, P), _heads(v, P)
    return jnp.einsum("blhi,blhj->bijlh", k, v)


def head_contract(q: Float[Array, "B L D"], y: Array, P: int) -> Float[Array, "B L D"]:
    """The inner SSM's output y read out by q: q . y for P = 1, else
    out[b, l, h P + j] = sum_i q[b, l, h P + i] y[b, i, j, l, h]."""
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


# The S6 reads B_t and C_t once per token, for all channels, so a head's P x P channels join
# the H heads on the channel axis: flat channel (i P + j) H + h, channels-last.


def _flat(u, P: int):
    """(B, L, H) for P = 1; (B, P, P, L, H) -> (B, L, P P H)."""
    if P == 1:
        return u
    u = jnp.moveaxis(u, -2, 1)
    return u.reshape(*u.shape[:2], -1)


def _unflat(y, P: int):
    if P == 1:
        return y
    y = y.reshape(*y.shape[:2], P, P, -1)
    return jnp.moveaxis(y, 1, -2)


def _flat_step(u, P: int):
    """(B, H) for P = 1; (B, P, P, H) -> (B, P P H)."""
    return u if P == 1 else u.reshape(u.shape[0], -1)


def _unflat_step(y, P: int):
    return y if P == 1 else y.reshape(y.shape[0], P, P, -1)


def _flat_state(x, P: int):
    """(B, H, N) for P = 1; (B, P, P, H, N) -> (B, P P H, N)."""
    return x if P == 1 else x.reshape(x.shape[0], -1, x.shape[-1])


def _unflat_state(x, P: int):
    return x if P == 1 else x.reshape(x.shape[0], P, P, -1, x.shape[-1])


def _repeat_heads(a, P: int):
    """(..., H) -> (..., P P H), each head's value on its P x P channels."""
    if P == 1:
        return a
    return jnp.broadcast_to(a[..., None, None, :], (*a.shape[:-1], P, P, a.shape[-1])).reshape(
        *a.shape[:-1], -1
    )
