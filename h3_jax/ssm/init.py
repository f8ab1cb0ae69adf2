"""Initializers of the diagonal SSM (S4D) and of the shift SSM, as pure functions of a PRNG key.

N counts complex modes; the real state size of the conjugate-pair system is 2N (H3's d_state).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from h3_jax.ssm._checks import choice, positive_int
from h3_jax.ssm.hippo import legs_normal_eigenvalues

A_INITS = ("lin", "inv", "legs")


def init_A(H: int, N: int, kind: str = "lin", dtype=jnp.complex64) -> Complex[Array, "H N"]:
    """S4D eigenvalues A_n = -1/2 + i w_n, the same for every channel.

    lin (S4D-Lin): w_n = pi n.
    inv (S4D-Inv): w_n = (2N/pi) (2N/(2n+1) - 1), the asymptotics of HiPPO-LegS.
    legs (S4D-LegS, the official H3's "diag-legs"): the eigenvalues of the normal part of
    HiPPO-LegS of size 2N with w > 0 (`hippo.legs_normal_eigenvalues`).
    """
    H = positive_int("init_A", "H", H)
    N = positive_int("init_A", "N", N)
    choice("init_A", "kind", kind, A_INITS)
    n = np.arange(N, dtype=np.float64)
    state = 2 * N
    if kind == "legs":
        A = legs_normal_eigenvalues(N)
    else:
        imag = math.pi * n if kind == "lin" else state / math.pi * (state / (2 * n + 1) - 1)
        A = -0.5 + 1j * imag
    return jnp.asarray(np.broadcast_to(A, (H, N)), dtype)


def init_log_dt(
    key: Array, H: int, dt_min: float = 1e-3, dt_max: float = 1e-1
) -> Float[Array, " H"]:
    """log dt ~ U[log dt_min, log dt_max], one step size per channel."""
    H = positive_int("init_log_dt", "H", H)
    if not 0 < dt_min <= dt_max:
        raise ValueError(f"init_log_dt: need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
    return jax.random.uniform(key, (H,), minval=math.log(dt_min), maxval=math.log(dt_max))


def init_C(key: Array, H: int, N: int) -> Complex[Array, "H N"]:
    """C ~ complex standard normal: real and imaginary parts each N(0, 1/2)."""
    H = positive_int("init_C", "H", H)
    N = positive_int("init_C", "N", N)
    return jax.random.normal(key, (H, N), jnp.complex64)


def init_diag_ssm(
    key: Array,
    H: int,
    N: int,
    *,
    A_init: str = "lin",
    dt_min: float = 1e-3,
    dt_max: float = 1e-1,
) -> dict[str, Array]:
    """All parameters of an S4D-style diagonal SSM: {"A", "B", "C", "log_dt"}, with B = 1."""
    key_dt, key_c = jax.random.split(key)
    return {
        "A": init_A(H, N, A_init),
        "B": jnp.ones((H, N), jnp.complex64),
        "C": init_C(key_c, H, N),
        "log_dt": init_log_dt(key_dt, H, dt_min, dt_max),
    }


def init_shift_ssm(key: Array, H: int, N: int) -> dict[str, Float[Array, "H N"]]:
    """Shift SSM {"B", "C"}: B = e_1 (so the kernel equals C), C ~ U(-1/sqrt(N), 1/sqrt(N))."""
    H = positive_int("init_shift_ssm", "H", H)
    N = positive_int("init_shift_ssm", "N", N)
    bound = 1.0 / math.sqrt(N)
    return {
        "B": jnp.zeros((H, N)).at[:, 0].set(1.0),
        "C": jax.random.uniform(key, (H, N), minval=-bound, maxval=bound),
    }
