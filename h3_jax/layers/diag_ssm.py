"""The diagonal (S4D) SSM as a Flax module that owns its parameters, plus the sequence views.

Parameters follow the official H3 layout: A = -exp(inv_A_real) + i A_imag, complex B and C stored
as (..., 2) real arrays of (real, imaginary) parts, log_dt, and the skip term D.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Complex, Float

from h3_jax import ssm
from h3_jax.layers import seq_mesh

# Up to this length the diagonal convolution runs as one Toeplitz matmul per channel; beyond it,
# by FFT. The crossover, forward + backward at B L = 32768, H = 64, lies between L = 128 and 256:
# Toeplitz 3.5x faster at 128, FFT 1.9x faster at 256 on a 2-core AMD EPYC; 1.3x and 1.6x on one
# core of a Xeon 6/207 (experiments/results/bench_ssm_toeplitz.md).
SHORT_CONV_MAX_LEN = 128


class DiagDynamics(NamedTuple):
    """The discretized SSM: x_t = dA x_{t-1} + dB u_t, y_t = 2 Re(C x_t) + D u_t."""

    dA: Complex[Array, "H N"]
    dB: Complex[Array, "H N"]
    C: Complex[Array, "H N"]
    D: Float[Array, " H"]


def as_complex(pair: Float[Array, "... 2"]) -> Complex[Array, "..."]:
    return jax.lax.complex(pair[..., 0], pair[..., 1])


def as_pair(z: Complex[Array, "..."]) -> Float[Array, "... 2"]:
    return jnp.stack([z.real, z.imag], axis=-1)


class DiagSSM(nn.Module):
    """Parameters of `channels` diagonal SSMs with `n_modes` complex modes each; returns DiagDynamics.

    shared_A: one A for all channels (safari's S4D block, n_ssm = 1); else one per channel.
    learn_B: a trainable B (H3, init 1); else B is folded into C at init (safari's S4D block,
    random B normalised as there) and dB is computed with B = 1.
    """

    channels: int
    n_modes: int
    discretization: str = "bilinear"
    A_init: str = "lin"
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    shared_A: bool = False
    learn_B: bool = True

    @nn.compact
    def __call__(self) -> DiagDynamics:
        H, N = self.channels, self.n_modes
        a_rows = 1 if self.shared_A else H
        A0 = ssm.init_A(a_rows, N, self.A_init)
        inv_A_real = self.param("inv_A_real", lambda _: jnp.log(-A0.real))
        A_imag = self.param("A_imag", lambda _: A0.imag)
        log_dt = self.param("log_dt", lambda k: ssm.init_log_dt(k, H, self.dt_min, self.dt_max))
        if self.learn_B:
            B = as_complex(self.param("B", lambda _: as_pair(jnp.ones((H, N), jnp.complex64))))
            C = as_complex(self.param("C", lambda k: as_pair(ssm.init_C(k, H, N))))
        else:
            B = jnp.ones((H, N), jnp.complex64)
            C = as_complex(self.param("C", lambda k: as_pair(_s4d_C_init(k, A0, H, N))))
        D = self.param("D", nn.initializers.normal(1.0), (H,), jnp.float32)
        A = jnp.broadcast_to(jax.lax.complex(-jnp.exp(inv_A_real), A_imag), (H, N))
        dA, dB = ssm.discretize(A, B, jnp.exp(log_dt), self.discretization)
        return DiagDynamics(dA, dB, C, D)


def _s4d_C_init(key, A0, H: int, N: int):
    """safari's S4D: C ~ CN(0, 1) times a random B shared by the channels, normalised so that
    2 sum_n |B_n / A_n|^2 = 1 (unit variance of the kernel's integral for random C)."""
    key_b, key_c = jax.random.split(key)
    B = jax.random.normal(key_b, A0.shape, jnp.complex64)
    zeta = 2 * jnp.sum(jnp.abs(B / A0) ** 2, axis=-1, keepdims=True)
    return ssm.init_C(key_c, H, N) * (B / jnp.sqrt(zeta))


def diag_conv(u: Float[Array, "... L H"], K: Float[Array, "H L"], D: Float[Array, " H"]):
    """Causal convolution by the cheaper method for this length (see SHORT_CONV_MAX_LEN)."""
    if u.shape[-2] <= SHORT_CONV_MAX_LEN:
        return ssm.short_causal_conv(u, K, D)
    return ssm.causal_conv(u, K, D)


def sequence(
    dyn: DiagDynamics, u: Float[Array, "... L H"], algorithm: str
) -> Float[Array, "... L H"]:
    """The SSM over a whole sequence from zero state: "fft" (kernel + convolution) or "scan".
    Under a mesh with a `seq` axis each device runs its own stretch of the sequence and the
    devices pass the state on (see h3_jax.ssm.seq_parallel)."""
    if seq_mesh.seq_shards() > 1:
        return seq_mesh.over_length(partial(_length_shard, algorithm=algorithm), dyn, u)
    return _whole(dyn, u, algorithm)


def _length_shard(dyn: DiagDynamics, u: Float[Array, "... T H"], algorithm: str):
    """This device's output: its chunk from zero state plus the free response of the state the
    earlier devices' chunks leave."""
    y = _whole(dyn, u, algorithm)
    x_last = final_state(dyn, u)
    x_in = ssm.seq_parallel.incoming_state(dyn.dA, x_last, u.shape[-2], seq_mesh.SEQ_AXIS)
    return y + ssm.diag_ssm_state_output(dyn.dA, dyn.C, x_in, u.shape[-2]).astype(y.dtype)


def _whole(dyn: DiagDynamics, u: Float[Array, "... L H"], algorithm: str):
    if algorithm == "scan":
        y, _ = ssm.diag_ssm_scan(dyn.dA, dyn.dB, dyn.C, u)
        return y + dyn.D * u
    K = ssm.diag_ssm_kernel(dyn.dA, dyn.dB, dyn.C, u.shape[-2])
    return diag_conv(u, K, dyn.D)


def final_state(dyn: DiagDynamics, u: Float[Array, "... L H"]) -> Complex[Array, "... H N"]:
    """The state after the sequence u from zero state (for prefill)."""
    return ssm.diag_ssm_final_state(dyn.dA, dyn.dB, u)


def step(
    dyn: DiagDynamics, x: Complex[Array, "... H N"], u_t: Float[Array, "... H"]
) -> tuple[Complex[Array, "... H N"], Float[Array, "... H"]]:
    """One recurrent step -> (new state, y_t) including the D term."""
    x, y = ssm.diag_ssm_step(dyn.dA, dyn.dB, dyn.C, x, u_t)
    return x, y + dyn.D * u_t


def zero_state(batch_shape: tuple[int, ...], channels: int, n_modes: int):
    return jnp.zeros((*batch_shape, channels, n_modes), jnp.complex64)
