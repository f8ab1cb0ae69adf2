"""HiPPO-LegS (Gu et al. 2020): a state of N numbers that holds a signal's whole past as its
first N scaled Legendre coefficients, and the diagonal initialisation derived from it.

The continuous-time system, for a signal f seen on [0, t], is

    d/dt x(t) = (1/t) A x(t) + (1/t) B f(t),

with A, B from `hippo_legs(N)`; then f(s) ~ sum_n x_n(t) sqrt(2n + 1) P_n(2 s / t - 1) for s in
[0, t] (`legendre_reconstruction`), the projection of f's history onto Legendre polynomials
rescaled to the whole window. S4 keeps A up to the 1/t; S4D-LegS keeps the eigenvalues of its
normal part (`legs_normal_eigenvalues`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from h3_jax.ssm._checks import positive_int


def _legs(N: int) -> tuple[np.ndarray, np.ndarray]:
    n = np.arange(N, dtype=np.float64)
    r = np.sqrt(2 * n + 1)
    A = -np.tril(np.outer(r, r), -1) - np.diag(n + 1)
    return A, r


def hippo_legs(N: int, dtype=jnp.float32) -> tuple[Float[Array, "N N"], Float[Array, " N"]]:
    """(A, B) of HiPPO-LegS: A[n, k] = -sqrt(2n+1) sqrt(2k+1) for n > k, -(n+1) for n = k,
    0 for n < k; B[n] = sqrt(2n+1). Built in float64, returned in `dtype` (float64 needs
    `jax.enable_x64`)."""
    A, B = _legs(positive_int("hippo_legs", "N", N))
    return jnp.asarray(A, dtype), jnp.asarray(B, dtype)


def legs_normal_eigenvalues(N: int) -> np.ndarray:
    """The N eigenvalues with positive imaginary part of the normal part of HiPPO-LegS of size
    2N, A + P P^T with P[n] = sqrt(n + 1/2): -1/2 + i w, w ascending (complex128, NumPy).

    A + P P^T = -I/2 + S with S skew-symmetric, so the eigenvalues are -1/2 + i w for the real
    eigenvalues w of the Hermitian -i S (computed by eigh, exact to round-off)."""
    A, _ = _legs(positive_int("legs_normal_eigenvalues", "N", N) * 2)
    P = np.sqrt(np.arange(2 * N) + 0.5)
    S = A + np.outer(P, P) + 0.5 * np.eye(2 * N)
    w = np.linalg.eigvalsh(-1j * S)  # ascending, in +-pairs
    return -0.5 + 1j * w[N:]


def legendre_reconstruction(
    x: Float[Array, "... N"], s: Float[Array, " M"]
) -> Float[Array, "... M"]:
    """f(s t) ~ sum_n x_n sqrt(2n + 1) P_n(2 s - 1): the signal's past at the fractions s in
    [0, 1] of the window [0, t] that the LegS state x (at time t) summarises."""
    z = 2 * jnp.asarray(s, x.dtype) - 1
    N = x.shape[-1]
    previous, current = jnp.ones_like(z), z  # P_0, P_1; then Bonnet's recursion
    total = x[..., :1] * previous
    for n in range(1, N):
        total = total + x[..., n:n + 1] * jnp.sqrt(2.0 * n + 1) * current
        previous, current = current, ((2 * n + 1) * z * current - n * previous) / (n + 1)
    return total

