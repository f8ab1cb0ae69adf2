import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_close, to64
from h3_jax import ssm

# Errors are measured against a float64 NumPy loop, relative to the largest |value| of the
# reference. Measured in float32 over 6-8 seeds, every path (scan, chunked, recurrence):
#   L <= 256, dt in [1e-3, 0.1]: y and x_last at most 4e-7;
#   L = 2^14, dt in [1e-4, 1e-3] (decays remember about as many steps as the sequence has):
#   y at most 1.4e-6, x_last at most 3.3e-5 (exp(dt A) ~ 1 - 1e-4 carries float32 rounding
#   into the products of up to 2^14 factors).
# The bounds leave a margin of 3x to 5x.
TOL_SHORT = 2e-6
TOL_LONG_Y, TOL_LONG_X = 5e-6, 1e-4

scan = jax.jit(ssm.selective_scan, static_argnames="chunk_size")
recurrence = jax.jit(ssm.selective_recurrence)


def selective_inputs(seed: int, Bt: int, L: int, H: int, N: int, dt_range=(1e-3, 1e-1)):
    """float32 (u, dt, A, B, C, D, x0): dt log-uniform in dt_range, A[h, n] ~ -(n + 1)."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((Bt, L, H))
    dt = np.exp(rng.uniform(*np.log(dt_range), (Bt, L, H)))
    A = -np.arange(1, N + 1) * rng.uniform(0.5, 1.5, (H, 1))
    B, C = rng.standard_normal((2, Bt, L, N))
    D = rng.standard_normal(H)
    x0 = rng.standard_normal((Bt, H, N))
    return [jnp.asarray(a, jnp.float32) for a in (u, dt, A, B, C, D, x0)]


def numpy_selective(u, dt, A, B, C, D, x0):
    """The recurrence one step at a time in float64 NumPy -> (y, x_last)."""
    u, dt, A, B, C, D, x = (np.asarray(a, np.float64) for a in (u, dt, A, B, C, D, x0))
    y = np.empty(u.shape)
    for t in range(u.shape[1]):
        dA = np.exp(dt[:, t, :, None] * A)  # (Bt, H, N)
        x = dA * x + (dt[:, t] * u[:, t])[:, :, None] * B[:, t, None, :]
        y[:, t] = np.einsum("bhn,bn->bh", x, C[:, t]) + D * u[:, t]
    return y, x


def assert_relative(actual, expected, tol, err_msg=""):
    expected = np.asarray(expected)
    assert_close(actual, expected, rtol=0, atol=tol * np.abs(expected).max(), err_msg=err_msg)


@pytest.mark.parametrize("Bt, L, H, N, chunk", [(1, 1, 1, 1, 1), (2, 7, 3, 4, 3),
                                                (3, 100, 5, 8, 16), (2, 256, 4, 16, 100)])
def test_paths_match_numpy_float64(Bt, L, H, N, chunk):
    args = selective_inputs(0, Bt, L, H, N)
    y_ref, x_ref = numpy_selective(*args)
    runs = {"scan": scan(*args), "chunked": scan(*args, chunk_size=chunk),
            "recurrence": recurrence(*args)}
    for name, (y, x) in runs.items():
        assert y.shape == (Bt, L, H) and y.dtype == jnp.float32, name
        assert x.shape == (Bt, H, N) and x.dtype == jnp.float32, name
        assert_relative(y, y_ref, TOL_SHORT, name)
        assert_relative(x, x_ref, TOL_SHORT, name)


def test_scan_at_length_2_14_matches_numpy_float64():
    args = selective_inputs(1, 1, 2**14, 2, 4, dt_range=(1e-4, 1e-3))
    y_ref, x_ref = numpy_selective(*args)
    for chunk in (None, 1024):
        y, x = scan(*args, chunk_size=chunk)
        assert_relative(y, y_ref, TOL_LONG_Y, f"chunk_size={chunk}")
        assert_relative(x, x_ref, TOL_LONG_X, f"chunk_size={chunk}")


@pytest.mark.parametrize("L, chunk", [(64, 16), (5, 8), (13, 1)])  # and non-divisors above
def test_chunked_equals_unchunked_equals_sequential(L, chunk):
    args = selective_inputs(2, 2, L, 3, 4)
    y, x = scan(*args)
    for name, (y_other, x_other) in [("chunked", scan(*args, chunk_size=chunk)),
                                     ("recurrence", recurrence(*args))]:
        assert_relative(y_other, y, TOL_SHORT, name)
        assert_relative(x_other, x, TOL_SHORT, name)


def test_defaults_are_no_skip_and_a_zero_state():
    u, dt, A, B, C, D, x0 = selective_inputs(3, 2, 9, 3, 4)
    zero_D, zero_x0 = jnp.zeros_like(D), jnp.zeros_like(x0)
    y, x = scan(u, dt, A, B, C)
    y_zero, x_zero = scan(u, dt, A, B, C, zero_D, zero_x0)
    assert_close(y, y_zero, rtol=0, atol=0)
    assert_close(x, x_zero, rtol=0, atol=0)
    y_rec, x_rec = recurrence(u, dt, A, B, C)
    assert_relative(y_rec, y, TOL_SHORT)
    assert_relative(x_rec, x, TOL_SHORT)


def test_stepping_token_by_token_equals_the_scan():
    u, dt, A, B, C, D, x0 = selective_inputs(4, 2, 20, 3, 4)
    step = jax.jit(ssm.selective_step)
    x, ys = x0, []
    for t in range(20):
        x, y_t = step(x, u[:, t], dt[:, t], A, B[:, t], C[:, t], D)
        ys.append(y_t)
    y_scan, x_scan = scan(u, dt, A, B, C, D, x0)
    assert_relative(jnp.stack(ys, axis=1), y_scan, TOL_SHORT)
    assert_relative(x, x_scan, TOL_SHORT)


def _loss(run, u, dt, A, B, C, D, x0):
    y, x = run(u, dt, A, B, C, D, x0)
    weights = jnp.cos(jnp.arange(y.size, dtype=y.dtype)).reshape(y.shape)
    return jnp.sum(weights * jnp.tanh(y)) + jnp.sum(jnp.sin(x))


def test_gradients_of_scan_and_chunked_equal_the_recurrence_in_float64():
    args = selective_inputs(5, 2, 12, 3, 4)
    argnums = tuple(range(1, 8))  # u, dt, A, B, C, D, x0 (after `run`)
    paths = {"scan": ssm.selective_scan, "recurrence": ssm.selective_recurrence,
             "chunked": lambda *a: ssm.selective_scan(*a, chunk_size=5)}
    with jax.enable_x64(True):
        args64 = to64(*args)
        grads = {name: jax.jit(jax.grad(_loss, argnums=argnums),
                               static_argnums=0)(run, *args64) for name, run in paths.items()}
        y64, _ = ssm.selective_scan(*args64, chunk_size=5)
        assert y64.dtype == jnp.float64
    names = ["u", "dt", "A", "B", "C", "D", "x0"]
    for name, g_ref, g_scan, g_chunked in zip(names, *grads.values()):
        assert g_ref.dtype == jnp.float64 and np.abs(np.asarray(g_ref)).max() > 0, name
        assert_relative(g_scan, g_ref, 1e-12, f"scan d/d{name}")
        assert_relative(g_chunked, g_ref, 1e-12, f"chunked d/d{name}")


def test_shape_errors_name_the_argument():
    u, dt, A, B, C, D, x0 = selective_inputs(6, 2, 8, 3, 4)
    scan_, rec_, step_ = ssm.selective_scan, ssm.selective_recurrence, ssm.selective_step
    seq, any_ = r"\(\.\.\., L, ", r"\(\.\.\., "
    cases = [
        (lambda: scan_(u, dt, A, B[:, :5], C),
         rf"selective_scan: argument 'B' must have shape {seq}N\) with L=8"),
        (lambda: scan_(u, dt[..., :2], A, B, C), rf"argument 'dt' .* {seq}H\) with H=3"),
        (lambda: scan_(u, dt, A, B, C[..., :2]), rf"argument 'C' .* {seq}N\) with N=4"),
        (lambda: scan_(u, dt, A[:2], B, C), r"argument 'A' .* \(H, N\) with H=3"),
        (lambda: scan_(u, dt, A, B, C, D[:2]), r"argument 'D' .* \(H\) with H=3"),
        (lambda: scan_(u, dt, A, B, C, D, x0[..., :3]), rf"argument 'x0' .* {any_}H, N\) with N=4"),
        (lambda: scan_(u, dt, A, B[:1], C), r"argument 'B' .* \(2, L, N\) with the batch axes"),
        (lambda: rec_(u, dt, A, B, C, D, x0[:1]), r"argument 'x0' .* \(2, H, N\) with the batch"),
        (lambda: scan_(u, dt, A, B, C, chunk_size=0), r"argument 'chunk_size' must be >= 1"),
        (lambda: step_(x0, u[:, 0], dt[:, 0], A, B[:, 0, :3], C[:, 0], D),
         rf"selective_step: argument 'B_t' .* {any_}N\) with N=4"),
        (lambda: step_(x0[:, :2], u[:, 0], dt[:, 0], A, B[:, 0], C[:, 0], D),
         rf"selective_step: argument 'x' .* {any_}H, N\) with H=3"),
    ]
    for call, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            call()
