import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_close, random_ssm, to64
from h3_jax import ssm


def matrix_power_kernel(dA, dB, C, length):
    """K[l] = C_full A_full^l B_full for the real 2N-state system of conjugate pairs, in float64.

    The state holds each mode and its conjugate, so the kernel is real by construction.
    """
    dA, dB, C = (np.asarray(x, np.complex128) for x in (dA, dB, C))
    K = np.zeros((dA.shape[0], length))
    for h in range(dA.shape[0]):
        A_full = np.diag(np.concatenate([dA[h], dA[h].conj()]))
        state = np.concatenate([dB[h], dB[h].conj()])
        c_full = np.concatenate([C[h], C[h].conj()])
        for l in range(length):
            value = c_full @ state
            assert abs(value.imag) < 1e-9 * max(1.0, abs(value.real))
            K[h, l] = value.real
            state = A_full @ state
    return K


@pytest.mark.parametrize("length", [1, 2, 7, 64, 129, 1000])
@pytest.mark.parametrize("method", ["bilinear", "zoh"])
def test_diag_kernel_equals_matrix_powers_in_float64(length, method, maybe_jit):
    dA, dB, C = random_ssm(0, H=3, N=4, method=method)
    expected = matrix_power_kernel(dA, dB, C, length)
    with jax.enable_x64(True):
        K = maybe_jit(ssm.diag_ssm_kernel, "length")(*to64(dA, dB, C), length)
    assert K.shape == (3, length) and K.dtype == jnp.float64
    assert_close(K, expected, rtol=0, atol=1e-12 * np.abs(expected).max())


@pytest.mark.parametrize("length", [4096, 65536])
def test_diag_kernel_float32_tracks_float64(length):
    """Error grows with l (phase of dA^l), so the bound is stated at L = 65536."""
    dA, dB, C = random_ssm(1, H=8, N=32)
    K32 = ssm.diag_ssm_kernel(dA, dB, C, length)
    with jax.enable_x64(True):
        K64 = ssm.diag_ssm_kernel(*to64(dA, dB, C), length)
    assert K32.dtype == jnp.float32
    assert_close(K32, K64, rtol=0, atol=2e-5 * np.abs(K64).max())


def test_diag_kernel_is_finite_at_a_million_steps():
    """Slowly decaying modes (|dA| close to 1) over 10^6 steps: no overflow, no NaN, right values."""
    A = jnp.asarray([[-1e-4 + 1j, -1e-2 + 100j, -0.5 + 0j]], jnp.complex64)
    dA, dB = ssm.discretize(A, jnp.ones_like(A), jnp.asarray([0.01]))
    C = jnp.ones_like(A)
    length = 1_000_000
    K = ssm.diag_ssm_kernel(dA, dB, C, length)
    assert K.shape == (1, length) and bool(jnp.all(jnp.isfinite(K)))
    with jax.enable_x64(True):
        K64 = np.asarray(ssm.diag_ssm_kernel(*to64(dA, dB, C), length))
    # Sampled exactly in float64 from the closed form.
    ls = np.array([0, 1, 12_345, 999_999])
    exact = 2 * np.real(np.asarray(C * dB, np.complex128)[0] @ (np.asarray(dA, np.complex128)[0, :, None] ** ls))
    assert_close(K64[0, ls], exact, rtol=1e-9, atol=1e-12)
    assert_close(K[0, ls], exact, rtol=0, atol=2e-3 * np.abs(exact).max())


def shift_matrix_kernel(B, C, length):
    """K[j] = C S^j B with S the down-shift, in float64."""
    B, C = np.asarray(B, np.float64), np.asarray(C, np.float64)
    H, N = B.shape
    S = np.eye(N, k=-1)
    K = np.zeros((H, length))
    for h in range(H):
        state = B[h]
        for j in range(length):
            K[h, j] = C[h] @ state
            state = S @ state
    return K


@pytest.mark.parametrize("length", [1, 5, 8, 30])
def test_shift_kernel_equals_shift_matrix_powers(length, maybe_jit):
    rng = np.random.default_rng(0)
    B, C = rng.normal(size=(3, 8)), rng.normal(size=(3, 8))
    with jax.enable_x64(True):
        K = maybe_jit(ssm.shift_ssm_kernel, "length")(jnp.asarray(B), jnp.asarray(C), length)
    assert K.shape == (3, length)
    assert_close(K, shift_matrix_kernel(B, C, length), rtol=1e-13, atol=1e-13)


def test_shift_kernel_with_unit_B_is_C():
    p = ssm.init_shift_ssm(jax.random.key(0), 4, 16)
    K = ssm.shift_ssm_kernel(p["B"], p["C"], 20)
    assert_close(K[:, :16], p["C"], rtol=0, atol=1e-7)  # float32 FFT round-off
    assert_close(K[:, 16:], 0.0, rtol=0, atol=1e-7)


def test_kernel_errors_name_the_argument():
    dA, dB, C = random_ssm(0, 2, 3)
    with pytest.raises(ValueError, match=r"'C' must have shape \(H, N\) with N=3.*\(2, 4\)"):
        ssm.diag_ssm_kernel(dA, dB, jnp.ones((2, 4), jnp.complex64), 8)
    with pytest.raises(ValueError, match="'length' must be >= 1, got 0"):
        ssm.diag_ssm_kernel(dA, dB, C, 0)
    with pytest.raises(TypeError, match="'length' must be a Python int"):
        ssm.diag_ssm_kernel(dA, dB, C, 8.0)
    with pytest.raises(TypeError, match="'dA' must have a complex"):
        ssm.diag_ssm_kernel(dA.real, dB, C, 8)
    with pytest.raises(ValueError, match=r"'C' must have shape \(H, N\).*got shape \(2, 3, 1\)"):
        ssm.shift_ssm_kernel(jnp.ones((2, 3)), jnp.ones((2, 3, 1)), 4)
