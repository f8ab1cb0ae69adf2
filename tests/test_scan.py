import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_close, random_input, random_ssm, to64
from h3_jax import ssm

LENGTHS = [1, 2, 7, 64, 100, 257]


def fft_path(dA, dB, C, u):
    return ssm.causal_conv(u, ssm.diag_ssm_kernel(dA, dB, C, u.shape[-2]))


# Eager associative scans dispatch op by op, so eager mode is covered at short lengths only.
@pytest.mark.parametrize("length, jit", [(n, True) for n in LENGTHS] + [(1, False), (7, False)])
def test_scan_recurrence_and_fft_agree(length, jit):
    maybe_jit = jax.jit if jit else (lambda f: f)
    dA, dB, C = random_ssm(0, H=3, N=4)
    u = random_input(1, (2, length, 3))
    with jax.enable_x64(True):
        y_ref, x_ref = ssm.diag_ssm_recurrence(*to64(dA, dB, C, u))
    y_scan, x_scan = maybe_jit(ssm.diag_ssm_scan)(dA, dB, C, u)
    y_seq, x_seq = maybe_jit(ssm.diag_ssm_recurrence)(dA, dB, C, u)
    y_fft = maybe_jit(fft_path)(dA, dB, C, u)
    scale = np.abs(np.asarray(y_ref)).max()
    for name, y in [("scan", y_scan), ("sequential", y_seq), ("fft", y_fft)]:
        assert y.shape == u.shape and y.dtype == jnp.float32
        assert_close(y, y_ref, rtol=0, atol=2e-5 * scale, err_msg=name)
    for x in (x_scan, x_seq):
        assert x.shape == (2, 3, 4) and x.dtype == jnp.complex64
        assert_close(x, x_ref, rtol=0, atol=2e-5 * np.abs(np.asarray(x_ref)).max())


def test_scan_plus_skip_equals_conv_with_skip():
    dA, dB, C = random_ssm(0, H=3, N=4)
    u = random_input(1, (2, 50, 3))
    D = random_input(2, (3,))
    y_scan, _ = jax.jit(ssm.diag_ssm_scan)(dA, dB, C, u)
    y_conv = ssm.causal_conv(u, ssm.diag_ssm_kernel(dA, dB, C, 50), D)
    assert_close(y_scan + D * u, y_conv, rtol=0, atol=1e-5 * np.abs(np.asarray(y_conv)).max())


def test_paths_agree_at_4096_in_float64_and_float32():
    dA, dB, C = random_ssm(3, H=4, N=8)
    u = random_input(4, (1, 4096, 4))
    chunked_scan = jax.jit(ssm.diag_ssm_scan, static_argnames="chunk_size")
    with jax.enable_x64(True):
        args64 = to64(dA, dB, C, u)
        y_ref, x_ref = jax.jit(ssm.diag_ssm_recurrence)(*args64)
        y_scan, x_scan = chunked_scan(*args64, chunk_size=1000)
        y_fft = jax.jit(fft_path)(*args64)
    scale = np.abs(np.asarray(y_ref)).max()
    assert_close(y_scan, y_ref, rtol=0, atol=1e-12 * scale)
    assert_close(y_fft, y_ref, rtol=0, atol=1e-12 * scale)
    assert_close(x_scan, x_ref, rtol=0, atol=1e-12 * np.abs(np.asarray(x_ref)).max())
    assert_close(jax.jit(fft_path)(dA, dB, C, u), y_ref, rtol=0, atol=1e-5 * scale)
    assert_close(chunked_scan(dA, dB, C, u, chunk_size=512)[0], y_ref, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize(
    "length, chunk, jit", [(64, 16, True), (100, 16, True), (7, 3, True), (5, 8, True), (257, 1, True), (7, 3, False)]
)
def test_chunked_scan_equals_unchunked(length, chunk, jit):
    maybe_jit = (lambda f, *static: jax.jit(f, static_argnames=static)) if jit else (lambda f, *static: f)
    dA, dB, C = random_ssm(0, H=3, N=4)
    u = random_input(1, (2, length, 3))
    x0 = jax.random.normal(jax.random.key(2), (2, 3, 4), jnp.complex64)
    y, x = jax.jit(ssm.diag_ssm_scan)(dA, dB, C, u, x0)
    y_c, x_c = maybe_jit(ssm.diag_ssm_scan, "chunk_size")(dA, dB, C, u, x0, chunk_size=chunk)
    assert_close(y_c, y, rtol=0, atol=1e-5 * np.abs(np.asarray(y)).max())
    assert_close(x_c, x, rtol=0, atol=1e-5 * np.abs(np.asarray(x)).max())


def test_iterated_step_equals_scan_from_a_nonzero_state(maybe_jit):
    dA, dB, C = random_ssm(0, H=3, N=4)
    u = random_input(1, (2, 30, 3))
    x = x0 = jax.random.normal(jax.random.key(2), (2, 3, 4), jnp.complex64)
    step = maybe_jit(ssm.diag_ssm_step)
    ys = []
    for t in range(30):
        x, y_t = step(dA, dB, C, x, u[:, t])
        ys.append(y_t)
    y_scan, x_scan = jax.jit(ssm.diag_ssm_scan)(dA, dB, C, u, x0)
    scale = np.abs(np.asarray(y_scan)).max()
    assert_close(jnp.stack(ys, axis=1), y_scan, rtol=0, atol=1e-5 * scale)
    assert_close(x, x_scan, rtol=0, atol=1e-5 * np.abs(np.asarray(x_scan)).max())


def test_vmap_over_batch():
    dA, dB, C = random_ssm(0, H=3, N=4)
    u = random_input(1, (4, 20, 3))
    y, x = jax.jit(ssm.diag_ssm_scan)(dA, dB, C, u)
    y_v, x_v = jax.jit(jax.vmap(ssm.diag_ssm_scan, in_axes=(None, None, None, 0)))(dA, dB, C, u)
    assert_close(y_v, y, rtol=1e-6, atol=1e-6)
    assert_close(x_v, x, rtol=1e-6, atol=1e-6)
    step = jax.vmap(ssm.diag_ssm_step, in_axes=(None, None, None, 0, 0))
    x1, y1 = step(dA, dB, C, jnp.zeros((4, 3, 4), jnp.complex64), u[:, 0])
    assert_close(y1, y[:, 0], rtol=1e-6, atol=1e-6)


def _layer_loss(path, params, u):
    """A scalar loss of one S4D layer (discretize + SSM + skip) computed along `path`."""
    dA, dB = ssm.discretize(params["A"], params["B"], jnp.exp(params["log_dt"]))
    if path == "fft":
        y = ssm.causal_conv(u, ssm.diag_ssm_kernel(dA, dB, params["C"], u.shape[-2]), params["D"])
    else:
        y = ssm.diag_ssm_scan(dA, dB, params["C"], u, chunk_size=16)[0] + params["D"] * u
    return jnp.sum(jnp.sin(y) * jnp.arange(u.shape[-2])[:, None])


def test_gradients_agree_between_fft_and_scan():
    params = ssm.init_diag_ssm(jax.random.key(0), 3, 4)
    params["B"] = params["B"] + 0.3j
    params["D"] = random_input(5, (3,))
    u = random_input(1, (2, 40, 3))
    grads = {}
    for path in ("fft", "scan"):
        grads[path] = jax.jit(jax.grad(_layer_loss, argnums=(1, 2)), static_argnums=0)(path, params, u)
    for name in params:
        g_fft, g_scan = grads["fft"][0][name], grads["scan"][0][name]
        assert_close(g_fft, g_scan, rtol=0, atol=1e-4 * np.abs(np.asarray(g_scan)).max(), err_msg=name)
        assert np.abs(np.asarray(g_scan)).max() > 0, name
    assert_close(grads["fft"][1], grads["scan"][1], rtol=0,
                 atol=1e-4 * np.abs(np.asarray(grads["scan"][1])).max())


@pytest.mark.parametrize("path", ["scan", "chunked", "recurrence"])
def test_scan_paths_are_causal_by_gradient(path):
    dA, dB, C = random_ssm(0, H=2, N=3)
    run = {
        "scan": lambda u: ssm.diag_ssm_scan(dA, dB, C, u)[0],
        "chunked": lambda u: ssm.diag_ssm_scan(dA, dB, C, u, chunk_size=5)[0],
        "recurrence": lambda u: ssm.diag_ssm_recurrence(dA, dB, C, u)[0],
    }[path]
    u = random_input(1, (12, 2))
    jac = np.asarray(jax.jit(jax.jacobian(run))(u)).transpose(0, 2, 1, 3)  # (t, s, H, H)
    t, s = np.meshgrid(np.arange(12), np.arange(12), indexing="ij")
    assert np.all(jac[s > t] == 0.0) and np.abs(jac[s <= t]).max() > 0


def test_scan_errors_name_the_argument():
    dA, dB, C = random_ssm(0, H=3, N=4)
    u = jnp.ones((2, 8, 3))
    with pytest.raises(ValueError, match=r"diag_ssm_scan: argument 'u' must have shape \(\.\.\., L, H\) with H=3"):
        ssm.diag_ssm_scan(dA, dB, C, jnp.ones((2, 8, 5)))
    with pytest.raises(ValueError, match=r"'x0' must have shape \(\.\.\., H, N\) with N=4"):
        ssm.diag_ssm_scan(dA, dB, C, u, jnp.ones((2, 3, 5), jnp.complex64))
    with pytest.raises(ValueError, match="'chunk_size' must be >= 1"):
        ssm.diag_ssm_scan(dA, dB, C, u, chunk_size=0)
    with pytest.raises(ValueError, match=r"diag_ssm_step: argument 'u_t' must have shape \(\.\.\., H\) with H=3"):
        ssm.diag_ssm_step(dA, dB, C, jnp.zeros((2, 3, 4), jnp.complex64), jnp.ones((2, 4)))
    with pytest.raises(TypeError, match="diag_ssm_step: argument 'x' must have a complex"):
        ssm.diag_ssm_step(dA, dB, C, jnp.zeros((2, 3, 4)), jnp.ones((2, 3)))


def test_chunked_scan_float32_tracks_float64_at_65536():
    """The recurrence accumulates rounding over L steps; the bound is stated at L = 65536."""
    dA, dB, C = random_ssm(5, H=2, N=4)
    u = random_input(6, (1, 65536, 2))
    scan = jax.jit(ssm.diag_ssm_scan, static_argnames="chunk_size")
    y32, x32 = scan(dA, dB, C, u, chunk_size=4096)
    with jax.enable_x64(True):
        y64, x64 = jax.jit(ssm.diag_ssm_recurrence)(*to64(dA, dB, C, u))
    assert_close(y32, y64, rtol=0, atol=2e-5 * np.abs(np.asarray(y64)).max())
    assert_close(x32, x64, rtol=0, atol=2e-5 * np.abs(np.asarray(x64)).max())
