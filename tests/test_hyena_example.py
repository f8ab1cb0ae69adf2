"""experiments/hyena.py, a mixer written in a user's file against the public interface: it keeps
the mixer contract (h3_jax.testing.check_mixer), it computes the Hyena recurrence of its
docstring (against float64 NumPy) at orders 2 and 3, and its settings are checked."""

from __future__ import annotations

import math
import os
import sys

import jax
import jax.numpy as jnp
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
    # Order 3 (two long convolutions in a row); L = 40 > max_len = 32: positions past max_len
    # extrapolate the filter's features. One short tap leaves an empty short-filter state.
    config = hyena.HyenaConfig(order=3, max_len=32, short_filter_len=1, short_init="uniform",
                               sin_freq=1.0, fast_decay_pct=0.1)
    errors = check_mixer(config, lengths=(40,))
    for check, error in errors.items():
        assert error <= TOLERANCES[check], check


def _reference(params, filters, x, order):
    """The recurrence of the module docstring in float64, every convolution a direct sum over
    lags: x (B, L, D), filters (order - 1, D, L) -> y (B, L, D)."""
    f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
    length = x.shape[1]
    projected = f64(x) @ f64(params["in_proj"]["kernel"]) + f64(params["in_proj"]["bias"])
    short = f64(params["short_kernel"])  # ((N + 1) D, taps): tap j multiplies the input j back
    u = np.zeros_like(projected)
    for t in range(length):
        for j in range(min(short.shape[1], t + 1)):
            u[:, t] += short[:, j] * projected[:, t - j]
    u += f64(params["short_bias"])
    *gates, z = np.split(u, order + 1, axis=-1)
    h, b = f64(filters), f64(params["filter_bias"])

    def long_conv(z, h, b):
        out = b * z
        for t in range(length):
            for s in range(t + 1):
                out[:, t] += h[:, t - s] * z[:, s]
        return out

    for o in range(1, order):  # z_o = h_o * (x_{N-o} . z_{o-1})
        z = long_conv(gates[order - o] * z, h[o - 1], b[o - 1])
    y = gates[0] * z
    return y @ f64(params["out_proj"]["kernel"]) + f64(params["out_proj"]["bias"])


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


@pytest.mark.parametrize("order", [2, 3])
def test_the_output_is_the_recurrence_in_float64(order):
    # max_len = L, so the features and the decay window span their whole range; a wide init makes
    # the gates and the convolutions matter to the output; random short taps test all of them.
    D, length = 16, 20
    config = hyena.HyenaConfig(order=order, max_len=length, short_init="uniform")
    shared = Shared(d_model=D, initializer_range=0.5)
    module = hyena.Hyena(config, shared)
    x = jax.random.normal(jax.random.key(0), (2, length, D))
    params = module.init(jax.random.key(1), x[:, :8])["params"]
    filters = np.asarray(module.apply({"params": params}, length, method="filters"))
    expected_filters = _filter_reference(params, config, (order - 1) * D, length).reshape(
        order - 1, D, length)
    np.testing.assert_allclose(filters, expected_filters, rtol=0, atol=1e-5 * np.abs(filters).max())
    # A prefix sees the same taps as the whole sequence.
    prefix = module.apply({"params": params}, 7, method="filters")
    np.testing.assert_allclose(prefix, filters[..., :7], rtol=0, atol=1e-6 * np.abs(filters).max())

    y = np.asarray(jax.jit(module.apply)({"params": params}, x), np.float64)
    expected = _reference(params, filters, x, order)
    # float32 FFT convolutions against float64 direct sums: round-off ~1e-7 of the scale.
    error = np.abs(y - expected).max() / np.abs(expected).max()
    assert error < 1e-5, error


def test_the_shift_init_delays_the_first_gate_by_one_step():
    D, order = 4, 3
    module = hyena.Hyena(hyena.HyenaConfig(order=order), Shared(d_model=D))
    x = jnp.zeros((1, 5, D))
    taps = np.asarray(module.init(jax.random.key(0), x)["params"]["short_kernel"])
    expected = np.zeros(((order + 1) * D, 3))
    expected[:, 0] = 1  # x_0, x_1 and v pass through
    expected[(order - 1) * D:order * D] = [0, 1, 0]  # x_2 (x_{N-1}) is the token before
    np.testing.assert_array_equal(taps, expected)
    with pytest.raises(ValueError, match="HyenaConfig.short_init: 'shift' needs short_filter_len"):
        hyena.HyenaConfig(short_filter_len=1)


@pytest.mark.parametrize("field, value", [
    ("order", 1), ("short_init", "zeros"), ("filter_order", 0), ("emb_dim", 4), ("emb_dim", 1), ("sin_freq", 0.0), ("max_len", 0),
    ("short_filter_len", 0), ("decay_target", 1.0), ("fast_decay_pct", -0.3),
    ("slow_decay_pct", float("inf")),
])
def test_a_bad_setting_raises_naming_its_field(field, value):
    with pytest.raises(ValueError, match=f"HyenaConfig.{field}:"):
        hyena.HyenaConfig(**{field: value})
