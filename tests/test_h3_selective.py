"""H3 with the selective inner SSM (S6): against a float64 NumPy loop written from Mamba's
formulas, through check_mixer (scan == recurrence, prefill + step, causality, jit, bf16), in
chunks, its init, its optimizer groups and its config errors."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from h3_jax.mixers import H3, H3Config
from h3_jax.models import LMConfig, param_labels
from h3_jax.testing import check_mixer
from test_mixers import f64, np_dense, np_h3_inputs, np_h3_output
from test_models_helpers import (  # noqa: F401  (fast_compile is an autouse fixture)
    assert_close,
    fast_compile,
    param_shapes,
    scale,
    small_config,
    trained_like_params,
)

S6 = dict(mixer="h3", inner_ssm="s6", algorithm="scan", selective_d_state=4, dt_rank=3)


def np_h3_s6(p, x, P):
    """H3 with S6 on k_shift v^T for one sequence x (L, D): dt, B, C read from x, then
    x_t = exp(dt_t A) x_{t-1} + dt_t B_t u_t, y_t = C_t x_t + D u_t, one step at a time."""
    q, kv = np_h3_inputs(p, x, P)
    s = p["selective_ssm"]
    R = s["dt_proj"].shape[0]
    N = s["A_log"].shape[-1]
    projected = np_dense(s["x_proj"], x)
    dt_low, B, C = projected[:, :R], projected[:, R:R + N], projected[:, R + N:]
    dt = np.log1p(np.exp(dt_low @ s["dt_proj"] + s["dt_bias"]))  # softplus, (L, H)
    A = -np.exp(s["A_log"])  # (H, N)
    state = np.zeros((*kv.shape[1:], N))  # (H, P, P, N)
    y = np.zeros_like(kv)
    for t in range(x.shape[0]):
        decay = np.exp(dt[t][:, None] * A)[:, None, None, :]
        state = decay * state + (dt[t][:, None, None] * kv[t])[..., None] * B[t]
        y[t] = state @ C[t] + s["D"][:, None, None] * kv[t]
    return np_h3_output(p, q, y)


@pytest.mark.parametrize("head_dim", [1, 2])
@pytest.mark.parametrize("algorithm, chunk_size", [("scan", 0), ("scan", 5), ("recurrence", 0)])
def test_h3_s6_equals_float64_reference(head_dim, algorithm, chunk_size):
    config = small_config("h3", **{**S6, "algorithm": algorithm, "chunk_size": chunk_size},
                          head_dim=head_dim)
    params = trained_like_params(config)["layers_0"]["mixer"]
    mixer = H3(config.mixer, config.shared)
    x = np.random.default_rng(0).standard_normal((2, 23, config.d_model)).astype(np.float32)
    y = jax.jit(lambda p, x: mixer.apply({"params": p}, x))(params, x)
    expected = np.stack([np_h3_s6(f64(params), xb, head_dim) for xb in x.astype(np.float64)])
    # float32 against float64 over 23 steps: round-off ~1e-6 of the output's scale.
    assert_close(y, expected, rtol=0, atol=1e-5 * scale(expected))


def test_h3_s6_keeps_the_mixer_contract():
    # head_dim 2 runs every reshape between heads and S6 channels (head_dim 1 runs none).
    config = H3Config(inner_ssm="s6", algorithm="scan", head_dim=2, d_state=8,
                      selective_d_state=4, chunk_size=10)
    errors = check_mixer(config, lengths=(24,))
    assert errors["algorithms"] <= 1e-4 and errors["prefill_step"] <= 1e-4


def test_h3_s6_init_follows_mamba():
    config = small_config("h3", inner_ssm="s6", algorithm="scan", dt_min=1e-3, dt_max=1e-1)
    params = jax.jit(lambda: H3(config.mixer, config.shared).init(
        jax.random.key(0), jnp.zeros((1, 4, config.d_model)))["params"])()
    s = params["selective_ssm"]
    H, N = config.d_model, config.mixer.selective_d_state
    assert s["A_log"].shape == (H, N) and N == 16
    np.testing.assert_allclose(-np.exp(s["A_log"]), -np.broadcast_to(np.arange(1, N + 1), (H, N)),
                               rtol=1e-6)
    dt = np.log1p(np.exp(np.asarray(s["dt_bias"], np.float64)))
    assert np.all(dt >= 1e-3 * (1 - 1e-5)) and np.all(dt <= 1e-1 * (1 + 1e-5))
    R = math.ceil(config.d_model / 16)
    assert s["dt_proj"].shape == (R, H) and np.all(np.abs(s["dt_proj"]) <= R ** -0.5)
    assert s["x_proj"]["kernel"].shape == (config.d_model, R + 2 * N)
    np.testing.assert_array_equal(s["D"], np.ones(H))


def test_h3_s6_dynamics_get_the_ssm_group():
    config = LMConfig(vocab_size=8, d_model=16, n_layer=2,
                      mixer=H3Config(inner_ssm="s6", algorithm="scan"))
    labels = param_labels(param_shapes(config), config)
    ssm = {"/".join(str(k.key) for k in path[1:]) for path, label in
           jax.tree_util.tree_flatten_with_path(labels)[0] if label == "ssm"}
    assert ssm == {f"mixer/{name}" for name in
                   ("shift_ssm/B", "selective_ssm/A_log", "selective_ssm/dt_bias")}


def test_h3_s6_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"H3Config.algorithm: got 'fft' with inner_ssm='s6'"):
        H3Config(inner_ssm="s6")
    with pytest.raises(ValueError, match="H3Config.inner_ssm"):
        H3Config(inner_ssm="s5")
    with pytest.raises(ValueError, match="H3Config.algorithm"):
        H3Config(algorithm="recurrence")  # S4D runs by FFT or scan
    with pytest.raises(ValueError, match="H3Config.selective_d_state"):
        H3Config(inner_ssm="s6", algorithm="scan", selective_d_state=0)
    assert H3Config(inner_ssm="s6", algorithm="recurrence").algorithms == ("scan", "recurrence")
    assert dataclasses.replace(H3Config(), algorithm="scan").algorithms == ("fft", "scan")
