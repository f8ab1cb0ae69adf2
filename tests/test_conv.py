import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_close, random_input, to64
from h3_jax import ssm


def numpy_causal_conv(u, K, D=None):
    """y[t] = sum_{s<=t} K[t-s] u[s] (+ D u[t]) with numpy's full convolution, in float64."""
    u, K = np.asarray(u, np.float64), np.asarray(K, np.float64)
    L, H = u.shape[-2:]
    y = np.zeros(u.shape)
    for idx in np.ndindex(*u.shape[:-2]):
        for h in range(H):
            y[idx][:, h] = np.convolve(u[idx][:, h], K[h, :L])[:L]
    return y if D is None else y + np.asarray(D, np.float64) * u


@pytest.mark.parametrize("length", [1, 2, 7, 33, 100, 1000])
@pytest.mark.parametrize("taps", ["short", "equal", "long"])
def test_fft_and_direct_conv_equal_numpy(length, taps, maybe_jit):
    kernel_len = {"short": 3, "equal": length, "long": 2 * length + 5}[taps]
    u = random_input(0, (2, length, 3))
    K = random_input(1, (3, kernel_len))
    D = random_input(2, (3,))
    expected = numpy_causal_conv(u, K, D)
    convs = [ssm.causal_conv, ssm.direct_causal_conv]
    if min(kernel_len, length) <= 64:  # its cost grows with the number of taps
        convs.append(ssm.short_causal_conv)
    for conv in convs:
        y = maybe_jit(conv)(u, K, D)
        assert y.shape == u.shape and y.dtype == jnp.float32
        assert_close(y, expected, rtol=1e-5, atol=1e-5 * np.sqrt(length), err_msg=conv.__name__)


def test_fft_conv_equals_direct_conv_at_4096():
    u = random_input(0, (2, 4096, 2))
    K = random_input(1, (2, 4096)) * jnp.exp(-jnp.arange(4096) / 500.0)
    with jax.enable_x64(True):
        u64, K64 = to64(u, K)
        assert_close(ssm.causal_conv(u64, K64), ssm.direct_causal_conv(u64, K64), rtol=0, atol=1e-11)
    assert_close(ssm.causal_conv(u, K), numpy_causal_conv(u, K), rtol=0, atol=1e-4)


@pytest.mark.parametrize("length", [4096, 65536])
def test_fft_conv_float32_tracks_float64(length):
    u = random_input(0, (1, length, 4))
    K = random_input(1, (4, length)) * jnp.exp(-jnp.arange(length) / 2000.0)
    y32 = ssm.causal_conv(u, K)
    with jax.enable_x64(True):
        y64 = ssm.causal_conv(*to64(u, K))
    scale = np.abs(np.asarray(y64)).max()
    assert_close(y32, y64, rtol=0, atol=2e-6 * scale)


def test_conv_is_linear_not_circular():
    """An impulse at the last step must not wrap around to the first outputs."""
    u = jnp.zeros((1, 16, 1)).at[0, -1, 0].set(1.0)
    y = ssm.causal_conv(u, jnp.ones((1, 16)))
    assert_close(y[0, :-1, 0], 0.0, rtol=0, atol=1e-6)
    assert_close(y[0, -1, 0], 1.0, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype, atol", [(jnp.bfloat16, 0.1), (jnp.float16, 0.01)])
def test_half_precision_in_half_precision_out(dtype, atol):
    u = random_input(0, (2, 50, 3))
    K = random_input(1, (3, 50)) / 5
    y = ssm.causal_conv(u.astype(dtype), K)
    assert y.dtype == dtype
    assert_close(y.astype(jnp.float32), ssm.causal_conv(u.astype(dtype).astype(jnp.float32), K),
                 rtol=2e-2, atol=atol)


def test_any_leading_axes_and_vmap():
    u = random_input(0, (2, 3, 20, 4))
    K = random_input(1, (4, 20))
    y = ssm.causal_conv(u, K)
    assert_close(y[1, 2], ssm.causal_conv(u[1, 2], K), rtol=1e-6, atol=1e-6)
    assert_close(jax.vmap(ssm.causal_conv, in_axes=(0, None))(u, K), y, rtol=1e-6, atol=1e-6)


def future_and_past_sensitivity(fn, u):
    """Largest |d y[t] / d u[s]| over s > t, and over s <= t, for fn: (L, H) -> (L, H)."""
    jac = np.asarray(jax.jacobian(fn)(u)).transpose(0, 2, 1, 3)  # (t, s, H, H)
    t, s = np.meshgrid(np.arange(u.shape[0]), np.arange(u.shape[0]), indexing="ij")
    return np.abs(jac[s > t]).max(), np.abs(jac[s <= t]).max()


@pytest.mark.parametrize("conv", [ssm.short_causal_conv, ssm.direct_causal_conv])
def test_direct_convs_are_causal_by_gradient(conv):
    """d y[t] / d u[s] is exactly zero for every s > t."""
    K = random_input(1, (2, 12))
    future, past = future_and_past_sensitivity(lambda u: conv(u, K, jnp.ones(2)), random_input(0, (12, 2)))
    assert future == 0.0 and past > 0


def test_fft_conv_is_causal_by_gradient():
    """Through the FFT, the future leaks only rounding: <= 1e-6 of the past in float32, 1e-14 in float64."""
    K = random_input(1, (2, 12))
    u = random_input(0, (12, 2))
    future, past = future_and_past_sensitivity(lambda u: ssm.causal_conv(u, K, jnp.ones(2)), u)
    assert future <= 1e-6 * past
    with jax.enable_x64(True):
        K64, u64 = to64(K, u)
        future, past = future_and_past_sensitivity(lambda u: ssm.causal_conv(u, K64, jnp.ones(2)), u64)
    assert future <= 1e-14 * past


def test_fft_length_is_smooth_and_large_enough():
    for n in [1, 2, 3, 7, 11, 97, 1000, 4097, 131072]:
        m = ssm.fft_length(n)
        assert m >= n
        rest = m
        for p in (2, 3, 5):
            while rest % p == 0:
                rest //= p
        assert rest == 1
        assert m <= 2 * n


def test_conv_errors_name_the_argument():
    u = jnp.ones((2, 8, 3))
    with pytest.raises(ValueError, match=r"causal_conv: argument 'K' must have shape \(H, Lk\) with H=3.*\(4, 8\)"):
        ssm.causal_conv(u, jnp.ones((4, 8)))
    with pytest.raises(ValueError, match=r"'u' must have shape \(\.\.\., L, H\), got shape \(8,\)"):
        ssm.causal_conv(jnp.ones(8), jnp.ones((3, 8)))
    with pytest.raises(ValueError, match=r"'D' must have shape \(H\) with H=3"):
        ssm.causal_conv(u, jnp.ones((3, 8)), jnp.ones(2))
    with pytest.raises(TypeError, match="'u' must have a real floating dtype, got int32"):
        ssm.causal_conv(jnp.ones((2, 8, 3), jnp.int32), jnp.ones((3, 8)))


@pytest.mark.parametrize("length, taps", [(10, 4), (100, 64), (40, 40)])
def test_gradients_agree_across_convolutions(length, taps):
    u = random_input(0, (2, length, 3))
    K = random_input(1, (3, taps))
    D = random_input(2, (3,))
    weights = random_input(3, (2, length, 3))

    def grads(conv):
        loss = lambda u, K, D: jnp.sum(conv(u, K, D) * weights)  # noqa: E731
        return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(u, K, D)

    expected = grads(ssm.direct_causal_conv)
    for conv in (ssm.causal_conv, ssm.short_causal_conv):
        for got, want in zip(grads(conv), expected):
            assert_close(got, want, rtol=0, atol=2e-5 * np.abs(np.asarray(want)).max(), err_msg=conv.__name__)
