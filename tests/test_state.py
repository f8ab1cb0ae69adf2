import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_close, random_input, random_ssm, to64
from h3_jax import ssm


@pytest.mark.parametrize("length, chunk", [(64, 16), (100, 32), (7, 3), (5, 8), (4096, 1000)])
def test_state_passing_equals_one_pass(length, chunk):
    dA, dB, C = random_ssm(0, H=3, N=4)
    u = random_input(1, (2, length, 3))
    D = random_input(2, (3,))
    x0 = jax.random.normal(jax.random.key(3), (2, 3, 4), jnp.complex64)
    passing = jax.jit(ssm.diag_ssm_state_passing, static_argnames="chunk_size")
    with jax.enable_x64(True):
        dA64, dB64, C64, u64, D64, x064 = to64(dA, dB, C, u, D, x0)
        y_ref, x_ref = jax.jit(ssm.diag_ssm_recurrence)(dA64, dB64, C64, u64, x064)
        y_ref = y_ref + D64 * u64
        y64, x64 = passing(dA64, dB64, C64, u64, D64, chunk_size=chunk, x0=x064)
    scale, state_scale = np.abs(np.asarray(y_ref)).max(), np.abs(np.asarray(x_ref)).max()
    assert_close(y64, y_ref, rtol=0, atol=1e-12 * scale)
    assert_close(x64, x_ref, rtol=0, atol=1e-12 * state_scale)
    y, x = passing(dA, dB, C, u, D, chunk_size=chunk, x0=x0)
    assert y.dtype == jnp.float32 and x.dtype == jnp.complex64
    assert_close(y, y_ref, rtol=0, atol=2e-5 * scale)
    assert_close(x, x_ref, rtol=0, atol=2e-5 * state_scale)


def test_state_passing_without_initial_state_equals_fft_path(maybe_jit):
    dA, dB, C = random_ssm(0, H=3, N=4)
    u = random_input(1, (50, 3))
    y, _ = maybe_jit(ssm.diag_ssm_state_passing, "chunk_size")(dA, dB, C, u, chunk_size=16)
    y_fft = ssm.causal_conv(u, ssm.diag_ssm_kernel(dA, dB, C, 50))
    assert_close(y, y_fft, rtol=0, atol=1e-5 * np.abs(np.asarray(y_fft)).max())


@pytest.mark.parametrize("length", [1, 2, 31, 1000])
def test_final_state_equals_recurrence(length, maybe_jit):
    dA, dB, C = random_ssm(0, H=3, N=4)
    u = random_input(1, (2, length, 3))
    x0 = jax.random.normal(jax.random.key(3), (2, 3, 4), jnp.complex64)
    with jax.enable_x64(True):
        args64 = to64(dA, dB, C, u, x0)
        _, x_ref = jax.jit(ssm.diag_ssm_recurrence)(*args64)
        x64 = ssm.diag_ssm_final_state(args64[0], args64[1], args64[3], args64[4])
    assert_close(x64, x_ref, rtol=0, atol=1e-12 * np.abs(np.asarray(x_ref)).max())
    x = maybe_jit(ssm.diag_ssm_final_state)(dA, dB, u, x0)
    assert x.shape == (2, 3, 4) and x.dtype == jnp.complex64
    assert_close(x, x_ref, rtol=0, atol=1e-5 * np.abs(np.asarray(x_ref)).max())


def test_state_output_is_the_free_response(maybe_jit):
    """With zero input, the recurrence from x0 emits exactly diag_ssm_state_output."""
    dA, dB, C = random_ssm(0, H=3, N=4)
    x0 = jax.random.normal(jax.random.key(3), (2, 3, 4), jnp.complex64)
    y_ref, _ = jax.jit(ssm.diag_ssm_recurrence)(dA, dB, C, jnp.zeros((2, 40, 3)), x0)
    y = maybe_jit(ssm.diag_ssm_state_output, "length")(dA, C, x0, 40)
    assert y.shape == (2, 40, 3)
    assert_close(y, y_ref, rtol=0, atol=1e-5 * np.abs(np.asarray(y_ref)).max())


def test_state_passing_is_causal_by_gradient():
    dA, dB, C = random_ssm(0, H=2, N=3)
    run = jax.jit(jax.jacobian(lambda u: ssm.diag_ssm_state_passing(dA, dB, C, u, chunk_size=4)[0]))
    jac = np.asarray(run(random_input(1, (12, 2)))).transpose(0, 2, 1, 3)  # (t, s, H, H)
    t, s = np.meshgrid(np.arange(12), np.arange(12), indexing="ij")
    # Within a chunk the FFT leaks rounding only; across chunks the future is exactly absent.
    assert np.abs(jac[s > t]).max() <= 1e-6 * np.abs(jac[s <= t]).max()
    assert np.all(jac[(s // 4) > (t // 4)] == 0.0)


def test_state_passing_errors_name_the_argument():
    dA, dB, C = random_ssm(0, H=3, N=4)
    with pytest.raises(ValueError, match="'chunk_size' must be >= 1"):
        ssm.diag_ssm_state_passing(dA, dB, C, jnp.ones((8, 3)), chunk_size=0)
    with pytest.raises(ValueError, match=r"diag_ssm_final_state: argument 'u' must have shape \(\.\.\., L, H\) with H=3"):
        ssm.diag_ssm_final_state(dA, dB, jnp.ones((8, 2)))
    with pytest.raises(ValueError, match=r"diag_ssm_state_output: argument 'x0' must have shape \(\.\.\., H, N\) with N=4"):
        ssm.diag_ssm_state_output(dA, C, jnp.ones((3, 5), jnp.complex64), 8)


def test_state_passing_float32_tracks_float64_at_65536():
    dA, dB, C = random_ssm(5, H=2, N=4)
    u = random_input(6, (1, 65536, 2))
    passing = jax.jit(ssm.diag_ssm_state_passing, static_argnames="chunk_size")
    y32, x32 = passing(dA, dB, C, u, chunk_size=8192)
    with jax.enable_x64(True):
        y64, x64 = jax.jit(ssm.diag_ssm_recurrence)(*to64(dA, dB, C, u))
    assert_close(y32, y64, rtol=0, atol=2e-5 * np.abs(np.asarray(y64)).max())
    assert_close(x32, x64, rtol=0, atol=2e-5 * np.abs(np.asarray(x64)).max())
