import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from conftest import assert_close
from h3_jax import ssm


def _continuous(seed, H=3, N=5):
    rng = np.random.default_rng(seed)
    A = -rng.uniform(0.1, 2.0, (H, N)) + 1j * rng.uniform(-5, 5, (H, N))
    B = rng.normal(size=(H, N)) + 1j * rng.normal(size=(H, N))
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), H))
    return A, B, dt


@pytest.mark.parametrize("method", ["bilinear", "zoh"])
def test_matches_closed_form_in_float64(method, maybe_jit):
    A, B, dt = _continuous(0)
    with jax.enable_x64(True):
        dA, dB = maybe_jit(ssm.discretize, "method")(jnp.asarray(A), jnp.asarray(B), jnp.asarray(dt), method)
    dtA = dt[:, None] * A
    if method == "bilinear":
        expected = ((1 + dtA / 2) / (1 - dtA / 2), dt[:, None] * B / (1 - dtA / 2))
    else:
        expected = (np.exp(dtA), B * (np.exp(dtA) - 1) / A)
    assert_close(dA, expected[0], rtol=1e-13, atol=0)
    assert_close(dB, expected[1], rtol=1e-12, atol=0)


def test_zoh_is_the_exact_solution_of_the_ode():
    """With u held constant over a step, x(t + dt) = expm(A dt) x + A^-1 (expm(A dt) - I) B u."""
    A, B, dt = _continuous(1, H=1, N=4)
    with jax.enable_x64(True):
        dA, dB = ssm.discretize(jnp.asarray(A), jnp.asarray(B), jnp.asarray(dt), "zoh")
    A_mat = np.diag(A[0])
    expA = scipy.linalg.expm(A_mat * dt[0])
    assert_close(dA[0], np.diag(expA), rtol=1e-12, atol=0)
    assert_close(dB[0], np.linalg.solve(A_mat, (expA - np.eye(4)) @ B[0]), rtol=1e-10, atol=0)


def test_zoh_input_matrix_is_accurate_for_tiny_steps():
    A = jnp.full((1, 1), -1e-4 + 1e-4j, jnp.complex64)
    dA, dB = ssm.discretize(A, jnp.ones_like(A), jnp.asarray([1e-4]), "zoh")
    assert_close(dB, [[1e-4]], rtol=1e-5, atol=0)  # dB ~ dt for dt*|A| << 1


def test_float32_agrees_with_float64():
    A, B, dt = _continuous(2)
    for method in ("bilinear", "zoh"):
        got = ssm.discretize(jnp.asarray(A, jnp.complex64), jnp.asarray(B, jnp.complex64),
                             jnp.asarray(dt, jnp.float32), method)
        with jax.enable_x64(True):
            ref = ssm.discretize(jnp.asarray(A), jnp.asarray(B), jnp.asarray(dt), method)
        for g, r in zip(got, ref):
            assert g.dtype == jnp.complex64
            assert_close(g, r, rtol=2e-6, atol=1e-7)


def test_bad_arguments_name_the_argument():
    A = jnp.ones((3, 4), jnp.complex64)
    with pytest.raises(ValueError, match="method.*'bilinear', 'zoh'.*'euler'"):
        ssm.discretize(A, A, jnp.ones(3), "euler")
    with pytest.raises(ValueError, match=r"'dt' must have shape \(H\) with H=3.*got shape \(4,\)"):
        ssm.discretize(A, A, jnp.ones(4))
    with pytest.raises(ValueError, match=r"'B' must have shape \(H, N\).*got shape \(3, 5\)"):
        ssm.discretize(A, jnp.ones((3, 5), jnp.complex64), jnp.ones(3))
    with pytest.raises(TypeError, match="'A' must have a complex"):
        ssm.discretize(jnp.ones((3, 4)), A, jnp.ones(3))
