"""The mixers against float64 NumPy references written from the official formulas; inits; labels."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from h3_jax import mixers
from h3_jax.mixers import GSS, H3, S4D
from h3_jax.models import LM, LMConfig, param_labels
from test_models_helpers import (  # noqa: F401  (fast_compile is an autouse fixture)
    assert_close,
    fast_compile,
    param_shapes,
    scale,
    small_config,
    trained_like_params,
)


def f64(tree):
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), tree)


def np_dense(p, x):
    return x @ p["kernel"] + p["bias"]


def np_diag_kernel(p, length, method, shared_A=False):
    A = -np.exp(p["inv_A_real"]) + 1j * p["A_imag"]
    dt = np.exp(p["log_dt"])[:, None]
    B = p["B"][..., 0] + 1j * p["B"][..., 1] if "B" in p else np.ones_like(A)
    C = p["C"][..., 0] + 1j * p["C"][..., 1]
    if method == "bilinear":
        dA = (1 + dt * A / 2) / (1 - dt * A / 2)
        dB = B * dt / (1 - dt * A / 2)
    else:
        dA = np.exp(dt * A)
        dB = B * (np.exp(dt * A) - 1) / A
    powers = dA[..., None] ** np.arange(length)  # (H, N, L)
    return 2 * np.einsum("hn,hnl->hl", C * dB, powers).real


def np_causal_conv(u, K):
    """u (L, H), K (H, >= L) -> y[t, h] = sum_{s<=t} K[h, t-s] u[s, h]."""
    L = u.shape[0]
    y = np.zeros_like(u)
    for t in range(L):
        y[t] = np.einsum("sh,hs->h", u[: t + 1], K[:, t::-1])
    return y


def np_h3_inputs(p, x, P):
    """q (L, D) and the inner SSM's input k_shift v^T (L, H, P, P) of the official H3 mixer
    (H3 reference §1, head-major channels), for one sequence x (L, D)."""
    q, k, v = (np_dense(p[n], x) for n in ("q_proj", "k_proj", "v_proj"))
    L, D = x.shape
    Bs, Cs = p["shift_ssm"]["B"], p["shift_ssm"]["C"]
    N = Bs.shape[-1]
    Ks = np.array([[Bs[c] @ np.concatenate([Cs[c, j:], np.zeros(j)]) for j in range(N)] for c in range(D)])
    Ks = np.pad(Ks, ((0, 0), (0, max(0, L - N))))
    k_shift = np_causal_conv(k, Ks) + p["shift_ssm"]["D"] * k
    H = D // P
    return q, np.einsum("lhi,lhj->lhij", k_shift.reshape(L, H, P), v.reshape(L, H, P))


def np_h3_output(p, q, y):
    """The output projection of q contracted with the inner SSM's output y (L, H, P, P)."""
    L, H, P, _ = y.shape
    out = np.einsum("lhi,lhij->lhj", q.reshape(L, H, P), y).reshape(L, H * P)
    return np_dense(p["output_linear"], out)


def np_h3(p, x, P):
    q, kv = np_h3_inputs(p, x, P)
    L, H = kv.shape[:2]
    K = np_diag_kernel(p["diag_ssm"], L, "bilinear")
    y = np.stack([np_causal_conv(kv[:, :, i, j], K) for i in range(P) for j in range(P)], -1)
    y = y.reshape(L, H, P, P) + p["diag_ssm"]["D"][:, None, None] * kv
    return np_h3_output(p, q, y)


def np_gelu(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def np_s4d(p, x):
    K = np_diag_kernel(p["diag_ssm"], x.shape[0], "zoh")
    y = np_causal_conv(x, K) + p["diag_ssm"]["D"] * x
    return np_dense(p["output_linear"], np_gelu(y))


def np_gss(p, x):
    v = np_gelu(np_dense(p["v_proj"], x))
    u = np_gelu(np_dense(p["u_proj"], x))
    K = np_diag_kernel(p["diag_ssm"], x.shape[0], "bilinear")
    y = np_causal_conv(u, K) + p["diag_ssm"]["D"] * u
    return np_dense(p["output_linear"], np_dense(p["c_proj"], y) * v)


CASES = [
    ("h3", H3, lambda p, x: np_h3(p, x, 1)),
    ("h3_head_dim_2", H3, lambda p, x: np_h3(p, x, 2)),
    ("s4d", S4D, np_s4d),
    ("gss", GSS, np_gss),
]


@pytest.mark.parametrize("name, module, reference", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("algorithm", ["fft", "scan"])
@pytest.mark.parametrize("length", [12, 140])  # below and above the shift SSM's 8 taps and the
def test_mixer_equals_float64_reference(name, module, reference, algorithm, length):  # short conv
    config = small_config(name)
    params = trained_like_params(config)["layers_0"]["mixer"]
    mixer = module(small_config(name, algorithm=algorithm).mixer, config.shared)
    x = np.random.default_rng(0).standard_normal((2, length, config.d_model)).astype(np.float32)
    y = jax.jit(lambda p, x: mixer.apply({"params": p}, x))(params, x)
    assert y.shape == x.shape and y.dtype == jnp.float32
    expected = np.stack([reference(f64(params), xb) for xb in x.astype(np.float64)])
    assert_close(y, expected, rtol=0, atol=1e-4 * scale(expected))


@pytest.fixture(scope="module")
def big_hybrid():
    config = LMConfig(vocab_size=64, d_model=128, n_layer=2, attn_layer_idx=(1,),
                      attention=mixers.AttentionConfig(n_heads=4))
    tokens = jnp.zeros((1, 8), jnp.int32)
    return config, jax.jit(LM(config).init)(jax.random.key(0), tokens)["params"]


def test_h3_init(big_hybrid):
    config, params = big_hybrid
    mixer = params["layers_0"]["mixer"]
    diag, shift = mixer["diag_ssm"], mixer["shift_ssm"]
    H, N = config.d_model, config.mixer.n_modes
    # S4D-Lin: A_n = -1/2 + i pi n, stored as inv_A_real = log(1/2) and A_imag = pi n.
    assert diag["inv_A_real"].shape == (H, N) and diag["A_imag"].shape == (H, N)
    assert_close(-np.exp(diag["inv_A_real"]), np.full((H, N), -0.5), rtol=1e-6, atol=0)
    assert_close(diag["A_imag"], np.tile(np.pi * np.arange(N), (H, 1)), rtol=1e-6, atol=1e-6)
    assert_close(diag["B"], np.stack([np.ones((H, N)), np.zeros((H, N))], -1), rtol=0, atol=0)
    # C ~ CN(0, 1): real and imaginary parts each of variance 1/2.
    assert diag["C"].shape == (H, N, 2)
    assert abs(np.var(np.asarray(diag["C"])) - 0.5) < 0.05
    # dt log-uniform on [1e-3, 1e-1].
    dt = np.exp(np.asarray(diag["log_dt"]))
    assert dt.shape == (H,) and dt.min() >= 1e-3 * (1 - 1e-6) and dt.max() <= 1e-1 * (1 + 1e-6)
    assert dt.min() < 2e-3 and dt.max() > 5e-2
    log_dt = np.asarray(diag["log_dt"])
    assert abs(log_dt.mean() - math.log(1e-2)) < 0.4  # mean of U[log 1e-3, log 1e-1] is log 1e-2
    # Shift SSM: B = e_1, C ~ U(+-1/sqrt(N_taps)), D ~ N(0, 1).
    taps = config.mixer.d_state
    assert_close(shift["B"], np.tile(np.eye(taps)[0], (H, 1)), rtol=0, atol=0)
    bound = 1 / math.sqrt(taps)
    assert np.abs(shift["C"]).max() <= bound and np.abs(shift["C"]).max() > 0.9 * bound
    assert abs(np.std(np.asarray(shift["C"])) - bound / math.sqrt(3)) < 0.05 * bound
    both_D = np.concatenate([np.asarray(shift["D"]), np.asarray(diag["D"])])
    assert abs(both_D.std() - 1) < 0.2 and abs(both_D.mean()) < 0.25


def test_linear_and_embedding_init(big_hybrid):
    config, params = big_hybrid
    std, residual = config.initializer_range, config.initializer_range / math.sqrt(2 * config.n_layer)
    h3, attention = params["layers_0"]["mixer"], params["layers_1"]["mixer"]
    expected = {
        "embedding": (params["embedding"], std),
        "q_proj": (h3["q_proj"]["kernel"], std),
        "output_linear": (h3["output_linear"]["kernel"], std),
        "Wqkv": (attention["Wqkv"]["kernel"], std),
        "out_proj": (attention["out_proj"]["kernel"], residual),
        "fc1": (params["layers_0"]["mlp"]["fc1"]["kernel"], std),
        "fc2": (params["layers_1"]["mlp"]["fc2"]["kernel"], residual),
    }
    for name, (weight, target) in expected.items():
        measured = float(np.std(np.asarray(weight)))
        assert abs(measured - target) < 0.05 * target, (name, measured, target)
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        keys = [str(getattr(k, "key", k)) for k in path]
        if keys[-1] == "bias" and "norm" not in "".join(keys[-2:]) and keys[-2] != "ln_f":
            assert not np.asarray(leaf).any(), keys
    assert attention["Wqkv"]["kernel"].shape == (128, 3 * 128)


def test_s4d_init_shares_A_and_uses_inverse_law():
    config = LMConfig(vocab_size=8, d_model=16, n_layer=1, mixer="s4d")
    params = jax.jit(LM(config).init)(jax.random.key(0), jnp.zeros((1, 4), jnp.int32))["params"]
    diag = params["layers_0"]["mixer"]["diag_ssm"]
    N = config.mixer.n_modes
    assert diag["inv_A_real"].shape == (1, N) and "B" not in diag
    n = np.arange(N)
    inverse = 2 * N / np.pi * (2 * N / (2 * n + 1) - 1)
    assert_close(diag["A_imag"][0], inverse, rtol=1e-5, atol=1e-4)
    assert diag["C"].shape == (16, N, 2) and diag["log_dt"].shape == (16,)


SSM_PARAMS = {
    "h3": {"diag_ssm/log_dt", "diag_ssm/inv_A_real", "diag_ssm/A_imag", "diag_ssm/B", "shift_ssm/B"},
    "s4d": {"diag_ssm/log_dt", "diag_ssm/inv_A_real", "diag_ssm/A_imag"},
    "gss": {"diag_ssm/log_dt", "diag_ssm/inv_A_real", "diag_ssm/A_imag", "diag_ssm/B"},
    "attention": set(),
}


@pytest.mark.parametrize("mixer", list(SSM_PARAMS))
def test_param_labels(mixer):
    config = LMConfig(vocab_size=8, d_model=16, n_layer=3, mixer=mixer, attn_layer_idx=(1,) if mixer == "h3" else ())
    shapes = param_shapes(config)
    labels = param_labels(shapes, config)
    assert jax.tree_util.tree_structure(labels) == jax.tree_util.tree_structure(shapes)
    ssm = set()
    for path, label in jax.tree_util.tree_flatten_with_path(labels)[0]:
        keys = [str(getattr(k, "key", k)) for k in path]
        assert label in ("ssm", "rest")
        if label == "ssm":
            assert keys[1] == "mixer", keys
            ssm.add("/".join(keys[-2:]))
    assert ssm == SSM_PARAMS[mixer]
    n_ssm_layers = 2 if mixer == "h3" else (0 if mixer == "attention" else 3)
    assert len([x for x in jax.tree_util.tree_leaves(labels) if x == "ssm"]) == n_ssm_layers * len(SSM_PARAMS[mixer])


def test_param_labels_fail_loudly_when_a_declared_name_matches_nothing():
    config = LMConfig(vocab_size=8, d_model=16)
    shapes = param_shapes(config)
    diag = dict(shapes["layers_0"]["mixer"]["diag_ssm"])
    diag["dt_log"] = diag.pop("log_dt")
    renamed = {**shapes, "layers_0": {**shapes["layers_0"], "mixer": {**shapes["layers_0"]["mixer"], "diag_ssm": diag}}}
    with pytest.raises(ValueError, match="layers_0/mixer/diag_ssm/log_dt"):
        param_labels(renamed, config)
    with pytest.raises(ValueError, match="no leaves"):
        param_labels({}, config)
