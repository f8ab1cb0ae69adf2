import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_close
from h3_jax import ssm


def test_s4d_lin_eigenvalues():
    A = ssm.init_A(3, 32, "lin")
    assert A.shape == (3, 32) and A.dtype == jnp.complex64
    assert_close(A.real, -0.5, rtol=0, atol=0)
    assert_close(A.imag, np.broadcast_to(math.pi * np.arange(32), (3, 32)), rtol=1e-7, atol=0)


def test_s4d_inv_eigenvalues():
    N = 32
    A = ssm.init_A(2, N, "inv")
    n = np.arange(N)
    expected = (2 * N) / math.pi * ((2 * N) / (2 * n + 1) - 1)
    assert_close(A.real, -0.5, rtol=0, atol=0)
    assert_close(A.imag[1], expected, rtol=1e-6, atol=0)
    assert np.all(np.diff(np.asarray(A.imag[0])) < 0)  # frequencies fall as 1/n


def test_log_dt_is_log_uniform_in_range(maybe_jit):
    log_dt = maybe_jit(ssm.init_log_dt, "H", "dt_min", "dt_max")(jax.random.key(0), H=20000, dt_min=1e-3, dt_max=1e-1)
    dt = np.exp(np.asarray(log_dt))
    assert dt.min() >= 1e-3 * (1 - 1e-6) and dt.max() <= 1e-1 * (1 + 1e-6)
    # Log-uniform: each decade holds half of the channels (binomial std ~ 0.0035).
    assert abs(np.mean(dt < 1e-2) - 0.5) < 0.02
    assert abs(np.mean(np.asarray(log_dt)) - 0.5 * (math.log(1e-3) + math.log(1e-1))) < 0.03


def test_C_is_complex_standard_normal():
    C = np.asarray(ssm.init_C(jax.random.key(0), 200, 100))
    assert C.dtype == np.complex64
    assert abs(C.real.var() - 0.5) < 0.02 and abs(C.imag.var() - 0.5) < 0.02
    assert abs(np.mean(np.abs(C) ** 2) - 1.0) < 0.03


def test_diag_ssm_init_is_a_pure_function_of_the_key():
    p1 = ssm.init_diag_ssm(jax.random.key(3), 4, 8, A_init="inv", dt_min=1e-2, dt_max=1e-1)
    p2 = ssm.init_diag_ssm(jax.random.key(3), 4, 8, A_init="inv", dt_min=1e-2, dt_max=1e-1)
    p3 = ssm.init_diag_ssm(jax.random.key(4), 4, 8, A_init="inv", dt_min=1e-2, dt_max=1e-1)
    assert set(p1) == {"A", "B", "C", "log_dt"}
    for name in p1:
        assert_close(p1[name], p2[name], rtol=0, atol=0)
    assert not np.allclose(p1["C"], p3["C"])
    assert_close(p1["B"], 1.0, rtol=0, atol=0)
    assert_close(p1["A"], ssm.init_A(4, 8, "inv"), rtol=0, atol=0)


def test_shift_ssm_init(maybe_jit):
    p = maybe_jit(ssm.init_shift_ssm, "H", "N")(jax.random.key(0), 500, 64)
    B, C = np.asarray(p["B"]), np.asarray(p["C"])
    assert np.all(B[:, 0] == 1) and np.all(B[:, 1:] == 0)
    bound = 1 / math.sqrt(64)
    assert C.min() >= -bound and C.max() <= bound
    assert abs(C.var() - bound**2 / 3) < 0.05 * bound**2 / 3  # variance of U(-b, b)


def test_init_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"init_A: argument 'kind' must be one of \('lin', 'inv', 'legs'\), got 'legendre'"):
        ssm.init_A(2, 4, "legendre")
    with pytest.raises(ValueError, match="'N' must be >= 1, got 0"):
        ssm.init_C(jax.random.key(0), 2, 0)
    with pytest.raises(ValueError, match="dt_min <= dt_max"):
        ssm.init_log_dt(jax.random.key(0), 2, dt_min=0.1, dt_max=0.01)
