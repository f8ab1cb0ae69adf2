"""HiPPO-LegS: the matrices against their closed form, the continuous-time system's memory
(the signal's past read back from the state), and S4D-LegS against a direct eigendecomposition."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from h3_jax import ssm


def test_hippo_legs_is_the_closed_form():
    N = 7
    with jax.enable_x64(True):
        A, B = ssm.hippo_legs(N, dtype=jnp.float64)
        assert A.dtype == jnp.float64
        A, B = np.asarray(A), np.asarray(B)
    for n in range(N):
        assert B[n] == np.sqrt(2 * n + 1)
        for k in range(N):
            expected = (-np.sqrt(2 * n + 1) * np.sqrt(2 * k + 1) if n > k
                        else -(n + 1) if n == k else 0.0)
            assert A[n, k] == expected, (n, k)
    assert ssm.hippo_legs(3)[0].dtype == jnp.float32


def test_the_legs_state_remembers_the_signals_past():
    # d/dt x = (A x + B f) / t from t = 0 (where x = -A^-1 B f(0)) to t = 1 by bilinear steps;
    # the state at t = 1 then gives back f on all of [0, 1] through Legendre polynomials.
    N, steps = 32, 20_000
    f = lambda s: np.sin(6 * s) + 0.5 * np.cos(15 * s**2)  # noqa: E731
    with jax.enable_x64(True):
        A, B = (np.asarray(m) for m in ssm.hippo_legs(N, dtype=jnp.float64))
        x = -np.linalg.solve(A, B) * f(0.0)
        dt, eye = 1 / steps, np.eye(N)
        for k in range(1, steps):
            t = (k + 0.5) * dt  # the midpoint of step k
            x = np.linalg.solve(eye - dt / (2 * t) * A,
                                (eye + dt / (2 * t) * A) @ x + dt / t * B * f(t))
        s = np.linspace(0, 1, 401)
        past = np.asarray(ssm.legendre_reconstruction(jnp.asarray(x), jnp.asarray(s)))
    # 32 Legendre coefficients of a smooth signal: measured 8e-6 of its scale.
    error = np.abs(past - f(s)).max() / np.abs(f(s)).max()
    assert error < 1e-4, error
    # Fewer coefficients keep a coarser past: the truncation error shows.
    coarse = np.asarray(ssm.legendre_reconstruction(jnp.asarray(x[:8]), jnp.asarray(s)))
    assert np.abs(coarse - f(s)).max() / np.abs(f(s)).max() > 10 * error


@pytest.mark.parametrize("N", [1, 4, 32])
def test_s4d_legs_is_the_normal_part_of_hippo_legs(N):
    size = 2 * N
    n = np.arange(size)
    r = np.sqrt(2 * n + 1)
    A = -np.tril(np.outer(r, r), -1) - np.diag(n + 1)
    P = np.sqrt(n + 0.5)
    eig = np.linalg.eig(A + np.outer(P, P)).eigenvalues
    expected = np.sort(eig[eig.imag > 0].imag)
    legs = np.asarray(ssm.init_A(3, N, "legs"))
    assert legs.shape == (3, N) and legs.dtype == np.complex64
    np.testing.assert_allclose(legs.real, -0.5, rtol=0, atol=1e-5)
    np.testing.assert_allclose(legs.imag, np.broadcast_to(expected, (3, N)), rtol=1e-5, atol=1e-5)
