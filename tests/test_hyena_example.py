"""experiments/hyena.py, a mixer written in a user's file against the public interface: it keeps
the mixer contract (h3_jax.testing.check_mixer), it computes the order-2 Hyena recurrence of its
docstring (against float64 NumPy), and its settings are checked."""

from __future__ import annotations

import math
import os
import sys

import jax
import numpy as np
import pytest

from h3_jax.mixers import Shared
from h3_jax.testing import TOLERANCES, check_mixer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "experiments"))
import hyena  # noqa: E402


def test_hyena_keeps_the_mixer_contract():
    errors = check_mixer("hyena:Hyena")
    assert set(errors) >= {"prefill_step", "jit", "bfloat16", "causality"}
    for check, error in errors.items():
        assert error <= TOLERANCES[check], check


def test_hyena_keeps_the_contract_past_max_len_with_other_settings():
    # L = 40 > max_len = 32: positions past max_len extrapolate the filter's features. One short
    # tap leaves an empty short-filter state. The other parameter shapes are the defaults', so
    # that the eager initialization compiled above is reused (the kit's time is mostly compiling).
    config = hyena.HyenaConfig(max_len=32, short_filter_len=1, sin_freq=1.0, fast_decay_pct=0.1)
    errors = check_mixer(config, lengths=(40,))
    for check, error in errors.items():
        assert error <= TOLERANCES[check], check


def _reference(params, filters, x):
    """The order-2 recurrence of the module docstring in float64, every convolution a direct
    sum over lags: x (B, L, D), filters (2, D, L) -> y (B, L, D)."""
    f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
    length = x.shape[1]
    projected = f64(x) @ f64(params["in_proj"]["kernel"]) + f64(params["in_proj"]["bias"])
    short = f64(params["short_kernel"])  # (3D, taps): tap j multiplies the input j steps back
    u = np.zeros_like(projected)
    for t in range(length):
        for j in range(min(short.shape[1], t + 1)):
            u[:, t] += short[:, j] * projected[:, t - j]
    u += f64(params["short_bias"])
    x1, x2, v = np.split(u, 3, axis=-1)
    h, b = f64(filters), f64(params["filter_bias"])

    def long_conv(z, h, b):
        out = b * z
        for t in range(length):
            for s in range(t + 1):
                out[:, t] += h[:, t - s] * z[:, s]
        return out

    z2 = x1 * long_conv(v, h[0], b[0])
    z3 = x2 * long_conv(z2, h[1], b[1])
    return z3 @ f64(params["out_proj"]["kernel"]) + f64(params["out_proj"]["bias"])


def _filter_reference(params, config, channels, length):
    """MLP(pe(t)) . exp(-a t / M) in float64, from the docstring's formulas: (channels, L)."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params["implicit_filter"])
    t = np.arange(length)[:, None] / config.max_len
    k = np.arange(1, (config.emb_dim - 1) // 2 + 1)
    features = np.concatenate([t, np.cos(2 * np.pi * k * t), np.sin(2 * np.pi * k * t)], -1)
    hidden = np.sin(p["freq"] * (features @ p["kernel_0"] + p["bias_0"]))
    hidden = np.sin(p["freq"] * (hidden @ p["kernel_1"] + p["bias_1"]))
    fast = math.log(config.decay_target) / config.fast_decay_pct
    slow = math.log(config.decay_target) / config.slow_decay_pct
    rates = np.abs(np.linspace(fast, slow, channels))
    return (hidden @ p["kernel_2"]).T * np.exp(-rates[:, None] * t[:, 0])


def test_the_output_is_the_order_2_recurrence_in_float64():
    # max_len = L, so the features and the decay window span their whole range; a wide init makes
    # the gates and both convolutions matter to the output.
    D, length = 16, 20
    config = hyena.HyenaConfig(max_len=length)
    shared = Shared(d_model=D, initializer_range=0.5)
    module = hyena.Hyena(config, shared)
    x = jax.random.normal(jax.random.key(0), (2, length, D))
    params = module.init(jax.random.key(1), x[:, :8])["params"]
    filters = np.asarray(module.apply({"params": params}, length, method="filters"))
    expected_filters = _filter_reference(params, config, 2 * D, length).reshape(2, D, length)
    np.testing.assert_allclose(filters, expected_filters, rtol=0, atol=1e-5 * np.abs(filters).max())
    # A prefix sees the same taps as the whole sequence.
    prefix = module.apply({"params": params}, 7, method="filters")
    np.testing.assert_allclose(prefix, filters[..., :7], rtol=0, atol=1e-6 * np.abs(filters).max())

    y = np.asarray(jax.jit(module.apply)({"params": params}, x), np.float64)
    expected = _reference(params, filters, x)
    # float32 FFT convolutions against float64 direct sums: round-off ~1e-7 of the scale.
    error = np.abs(y - expected).max() / np.abs(expected).max()
    assert error < 1e-5, error


@pytest.mark.parametrize("field, value", [
    ("filter_order", 0), ("emb_dim", 4), ("emb_dim", 1), ("sin_freq", 0.0), ("max_len", 0),
    ("short_filter_len", 0), ("decay_target", 1.0), ("fast_decay_pct", -0.3),
    ("slow_decay_pct", float("inf")),
])
def test_a_bad_setting_raises_naming_its_field(field, value):
    with pytest.raises(ValueError, match=f"HyenaConfig.{field}:"):
        hyena.HyenaConfig(**{field: value})
