"""Hyena (Poli et al. 2023, "Hyena Hierarchy") of order 2, as a mixer in a user's own file.

    PYTHONPATH=experiments h3-jax train tiny-ar --model.mixer=hyena:Hyena \
        --model.mixer.max_len=64 --train.steps=2000

The operator of order N = 2 (Definition 3.1 of the paper): a projection of the input to N + 1 = 3
sequences of width D, each through a short causal depthwise convolution, split as (x1, x2, v)
with the value last (the paper's Algorithm 1, and the official code's `*x, v = split`); then

    z1 = v,    z2 = x1 . (h1 * z1),    z3 = x2 . (h2 * z2),    y = out_proj(z3),

with . the elementwise product and * the causal long convolution of each channel,
(h * z)_t = sum_{s <= t} h[t - s] z_s + b z_t, where b is a learned skip per channel. The
official code's order-2 operator instead has one long filter and gates before it,
y = x0 . (h * (x1 . v)); this file follows the paper's recurrence, with N = 2 filters.

The long filters are implicit (`HyenaFilter`): h[t] = MLP(pe(t)) . exp(-a t / max_len), for
t = 0, 1, ..., with positional features pe(t) = [t / M, cos(2 pi k t / M), sin(2 pi k t / M)
for k = 1 .. (emb_dim - 1) / 2], M = max_len, an MLP Dense, sin, Dense, sin, Dense (to 2D
outputs, h1 and h2) whose sines share a learned frequency per unit, and a fixed decay a per
channel. The features depend on t alone (never on the sequence length), so a prefix of a
sequence sees the same taps as the whole: the same parameters run at any length, also past
max_len (the features then extrapolate).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from h3_jax import validate
from h3_jax.layers.dense import dense, residual_std
from h3_jax.mixers import Mixer, MixerConfig, Shared
from h3_jax.ssm import causal_conv, short_causal_conv

ORDER = 2
"""Number of long convolutions (and of gates): the operator's order N."""
HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class HyenaConfig(MixerConfig):
    """Hyena's settings: the implicit filter's MLP, positional features and decay window, and
    the short convolution. Defaults follow the official code's associative-recall run, except
    max_len, which that run sets to the task's length + 2 (here the official filter's default)."""

    filter_order: int = 64
    """Width of the implicit filter's MLP (the official code's `filter_order`)."""
    emb_dim: int = 5
    """Positional features fed to the filter MLP: t / max_len and (emb_dim - 1) / 2 cosine/sine
    pairs; odd, >= 3."""
    sin_freq: float = 10.0
    """Initial frequency w of the MLP's sin(w x) activations (learned, one per unit)."""
    max_len: int = 1024
    """Length M that normalizes positions in the filter's features and decay window (t / M);
    longer sequences run too. Set it near the training length: at M = 1024 a sequence of 22
    tokens sees features and window that barely change over its length (smooth filters)."""
    short_filter_len: int = 3
    """Taps of the short causal depthwise convolution after the input projection."""
    decay_target: float = 1e-2
    """Value of the decay window exp(-a t / M) that each channel reaches at its own fraction of
    max_len, between fast_decay_pct and slow_decay_pct; in (0, 1)."""
    fast_decay_pct: float = 0.3
    """Fraction of max_len at which the fastest channel's window reaches decay_target."""
    slow_decay_pct: float = 1.5
    """Fraction of max_len at which the slowest channel's window reaches decay_target."""

    def __post_init__(self):
        owner = "HyenaConfig"
        validate.positive_int(owner, "filter_order", self.filter_order)
        validate.positive_int(owner, "emb_dim", self.emb_dim)
        if self.emb_dim < 3 or self.emb_dim % 2 == 0:
            raise ValueError(
                f"{owner}.emb_dim: got {self.emb_dim!r}; allowed is an odd int >= 3 "
                "(t, then cosine/sine pairs)"
            )
        validate.positive_float(owner, "sin_freq", self.sin_freq)
        validate.positive_int(owner, "max_len", self.max_len)
        validate.positive_int(owner, "short_filter_len", self.short_filter_len)
        validate.positive_float(owner, "decay_target", self.decay_target)
        if self.decay_target >= 1:
            raise ValueError(
                f"{owner}.decay_target: got {self.decay_target!r}; allowed is a float in (0, 1)"
            )
        validate.positive_float(owner, "fast_decay_pct", self.fast_decay_pct)
        validate.positive_float(owner, "slow_decay_pct", self.slow_decay_pct)


def positional_features(length: int, config: HyenaConfig) -> Float[Array, "L E"]:
    """pe(t) for t = 0 .. length - 1, E = emb_dim features: [t / M, cos(2 pi k t / M),
    sin(2 pi k t / M)] for k = 1 .. (E - 1) / 2. The official code starts its bands at frequency
    ~0, a constant feature that the first layer's bias already gives; here every band varies."""
    t = jnp.arange(length, dtype=jnp.float32)[:, None] / config.max_len
    k = jnp.arange(1, (config.emb_dim - 1) // 2 + 1, dtype=jnp.float32)
    angle = 2 * math.pi * k * t
    return jnp.concatenate([t, jnp.cos(angle), jnp.sin(angle)], axis=-1)


def decay_window(length: int, channels: int, config: HyenaConfig) -> Float[Array, "H L"]:
    """exp(-a_h t / M): channel h reaches decay_target at t = pct_h M, pct_h spread from
    fast_decay_pct to slow_decay_pct (the official ExponentialModulation; the rates are fixed)."""
    log_target = math.log(config.decay_target)
    rates = jnp.abs(jnp.linspace(log_target / config.fast_decay_pct,
                                 log_target / config.slow_decay_pct, channels))
    t = jnp.arange(length, dtype=jnp.float32) / config.max_len
    return jnp.exp(-rates[:, None] * t)


def _uniform(fan_in: int):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default init of linear and conv layers,
    which the official code uses for the filter MLP and the short convolution."""
    bound = 1 / math.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
        key, shape, dtype, -bound, bound
    )


# The math between the projections is jitted so that it compiles as one program also when Flax
# runs the module eagerly (init), instead of op by op; inside a jitted caller it is inlined.


@functools.partial(jax.jit, static_argnames=("config", "length"))
def implicit_filters(weights: dict, config: HyenaConfig, length: int) -> Float[Array, "H L"]:
    """h[channel, t] = MLP(pe(t)) . exp(-a t / M) for t < length, from HyenaFilter's weights:
    sin(w (pe W0 + b0)), sin(w (. W1 + b1)), then W2 (no bias), one row per channel."""
    w = weights
    h = jnp.sin(w["freq"] * (jnp.dot(positional_features(length, config), w["kernel_0"],
                                     precision=HIGHEST) + w["bias_0"]))
    h = jnp.sin(w["freq"] * (jnp.dot(h, w["kernel_1"], precision=HIGHEST) + w["bias_1"]))
    h = jnp.dot(h, w["kernel_2"], precision=HIGHEST).T
    return h * decay_window(length, h.shape[0], config)


@jax.jit
def hyena_recurrence(
    projected: Float[Array, "B L H"],
    short_kernel: Float[Array, "H Lk"],
    short_bias: Float[Array, " H"],
    filters: Float[Array, "2 D L"],
    filter_bias: Float[Array, "2 D"],
) -> tuple[Float[Array, "B L D"], Float[Array, "B L D"], Float[Array, "B L D"]]:
    """The order-2 recurrence after the input projection (H = 3D channels): (z3, v, z2).

    u = short filter of the projection, split (x1, x2, v); z2 = x1 . (h1 * v + b1 v);
    z3 = x2 . (h2 * z2 + b2 z2), each long convolution by FFT (causal_conv).
    """
    u = short_causal_conv(projected, short_kernel) + short_bias
    x1, x2, v = jnp.split(u, ORDER + 1, axis=-1)
    z2 = x1 * causal_conv(v, filters[0], filter_bias[0])
    z3 = x2 * causal_conv(z2, filters[1], filter_bias[1])
    return z3, v, z2


class HyenaFilter(nn.Module):
    """The implicit long filters, `channels` = N D of them, float32 (they depend on the
    parameters alone, not on the input). Parameters (F = filter_order): kernel_0 (emb_dim, F),
    bias_0 (F), kernel_1 (F, F), bias_1 (F), kernel_2 (F, channels), and freq (F), the learned
    frequency of both sines (shared, as in the official code)."""

    config: HyenaConfig
    channels: int

    WEIGHTS: ClassVar[tuple[str, ...]] = (
        "kernel_0", "bias_0", "kernel_1", "bias_1", "kernel_2", "freq",
    )

    def setup(self):
        c, width = self.config, self.config.filter_order
        self.kernel_0 = self.param("kernel_0", _uniform(c.emb_dim), (c.emb_dim, width))
        self.bias_0 = self.param("bias_0", _uniform(c.emb_dim), (width,))
        self.kernel_1 = self.param("kernel_1", _uniform(width), (width, width))
        self.bias_1 = self.param("bias_1", _uniform(width), (width,))
        self.kernel_2 = self.param("kernel_2", _uniform(width), (width, self.channels))
        self.freq = self.param("freq", nn.initializers.constant(c.sin_freq), (width,))

    def __call__(self, length: int) -> Float[Array, "H L"]:
        """Taps h[channel, lag] for lags 0 .. length - 1."""
        weights = {name: getattr(self, name) for name in self.WEIGHTS}
        return implicit_filters(weights, self.config, length)


class Hyena(Mixer):
    """Hyena of order 2. Parameters: in_proj (D -> 3D), short_kernel (3D, short_filter_len; tap
    j multiplies the input j steps back) and short_bias (3D), implicit_filter (HyenaFilter, 2D
    channels: h1 then h2), filter_bias (2, D) (the skip b of each long convolution, N(0, 1) as in
    the official code), out_proj (D -> D, with the residual-rescaled init of the official LM).

    Everything between the two projections runs in float32. State: the last short_filter_len - 1
    rows of the projection (B, short_filter_len - 1, 3D), and the inputs of each long
    convolution so far, `v` and `z2`, (B, T, D) each for T = cache_len positions: like
    attention's key/value cache, a step is the exact convolution over the cache, O(T D).
    """

    Config = HyenaConfig
    # The filter MLP sets the long convolutions' kernels, the role of SSM dynamics: the official
    # code trains it at its own rate without weight decay (wd=0, lr=optimizer lr in its
    # associative-recall run), which the trainer's "ssm" group gives. The skip b and the short
    # filter stay in the main group, as there.
    ssm_parameters = tuple(f"implicit_filter/{name}" for name in HyenaFilter.WEIGHTS)
    uses_cache = True
    config: HyenaConfig

    def setup(self):
        c, s = self.config, self.shared
        D, width = s.d_model, (ORDER + 1) * s.d_model
        self.in_proj = dense(s, width)
        init = _uniform(c.short_filter_len)
        self.short_kernel = self.param("short_kernel", init, (width, c.short_filter_len))
        self.short_bias = self.param("short_bias", init, (width,))
        self.implicit_filter = HyenaFilter(c, ORDER * D)
        self.filter_bias = self.param("filter_bias", nn.initializers.normal(1.0), (ORDER, D))
        self.out_proj = dense(s, D, std=residual_std(s))

    def filters(self, length: int) -> Float[Array, "2 D L"]:
        """The long filters h1, h2 at lags 0 .. length - 1 (without the skip b)."""
        return self.implicit_filter(length).reshape(ORDER, self.shared.d_model, length)

    def __call__(self, x: Float[Array, "B L D"], *, train: bool = False) -> Float[Array, "B L D"]:
        return self._sequence(x)[0]

    def prefill(self, x: Float[Array, "B L D"], *, cache_len: int):
        length = x.shape[-2]
        if cache_len is None or cache_len < length:
            raise ValueError(
                f"cache_len: got {cache_len!r}; prefill of a Hyena layer needs the cache "
                f"length, an int >= the prompt length {length}"
            )
        y, projected, v, z2 = self._sequence(x)
        empty = Hyena.init_state(self.config, self.shared, x.shape[0], cache_len)
        keep = self.config.short_filter_len - 1
        padded = jnp.pad(projected, ((0, 0), (keep, 0), (0, 0)))  # zeros before the first token
        state = {
            "short": padded[:, padded.shape[1] - keep:],
            "v": empty["v"].at[:, :length].set(v),
            "z2": empty["z2"].at[:, :length].set(z2),
        }
        return y, state

    def step(self, x_t: Float[Array, "B D"], state, *, position):
        projected = self.in_proj(x_t).astype(jnp.float32)
        window = jnp.concatenate([state["short"], projected[:, None]], axis=1)  # oldest first
        u = jnp.einsum("bkh,hk->bh", window, self.short_kernel[:, ::-1], precision=HIGHEST)
        x1, x2, v = jnp.split(u + self.short_bias, ORDER + 1, axis=-1)
        taps = self._taps_at(position, state["v"].shape[1])
        v_cache = jax.lax.dynamic_update_slice_in_dim(state["v"], v[:, None], position, 1)
        z2 = x1 * self._conv_step(v_cache, v, taps[0], self.filter_bias[0])
        z2_cache = jax.lax.dynamic_update_slice_in_dim(state["z2"], z2[:, None], position, 1)
        z3 = x2 * self._conv_step(z2_cache, z2, taps[1], self.filter_bias[1])
        return self.out_proj(z3), {"short": window[:, 1:], "v": v_cache, "z2": z2_cache}

    @classmethod
    def init_state(cls, config: HyenaConfig, shared: Shared, batch_size: int, max_len: int):
        """Empty caches for max_len positions, float32."""
        D = shared.d_model
        return {
            "short": jnp.zeros((batch_size, config.short_filter_len - 1, (ORDER + 1) * D),
                               jnp.float32),
            "v": jnp.zeros((batch_size, max_len, D), jnp.float32),
            "z2": jnp.zeros((batch_size, max_len, D), jnp.float32),
        }

    def _sequence(self, x):
        """(y, the projection before the short filter, v, z2) of a whole sequence."""
        projected = self.in_proj(x).astype(jnp.float32)
        z3, v, z2 = hyena_recurrence(projected, self.short_kernel, self.short_bias,
                                     self.filters(x.shape[-2]), self.filter_bias)
        return self.out_proj(z3), projected, v, z2

    def _taps_at(self, position, cache_len: int) -> Float[Array, "2 D T"]:
        """taps[o, :, s] = h_o[position - s] for cached positions s <= position, else 0."""
        h = self.filters(cache_len)
        lag = position - jnp.arange(cache_len)
        return jnp.where(lag >= 0, h[..., jnp.clip(lag, 0, cache_len - 1)], 0.0)

    @staticmethod
    def _conv_step(cache, z_t, taps, skip):
        """(h * z)_t from the cached inputs z_0 .. z_t: sum_s h[t - s] z_s + b z_t."""
        return jnp.einsum("btd,dt->bd", cache, taps, precision=HIGHEST) + skip * z_t
