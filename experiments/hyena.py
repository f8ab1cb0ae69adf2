"""Hyena (Poli et al. 2023, "Hyena Hierarchy") as a mixer in a user's own file.

    PYTHONPATH=experiments h3-jax train tiny-ar --model.mixer=hyena:Hyena

The operator as the official code computes it, for `order` N (default 2): a projection of the
input to N + 1 sequences of width D, each through a short causal depthwise convolution, split as
(x_0, ..., x_{N-1}, v) with the value last; then, for o = 1 .. N - 1, a gate and a long
convolution,

    z_0 = v,    z_o = h_o * (x_{N-o} . z_{o-1}),    y = out_proj(x_0 . z_{N-1}),

with . the elementwise product and * the causal long convolution of each channel,
(h * z)_t = sum_{s <= t} h[t - s] z_s + b z_t, where b is a learned skip per channel. At N = 2
that is y = x_0 . (h_1 * (x_1 . v)): H3's q . SSM(shift(k) . v) with the SSM kernel replaced by
an implicit long filter and the shift SSM by the short convolution.

The long filters are implicit (`HyenaFilter`): h[t] = MLP(pe(t)) . exp(-a t / max_len), for
t = 0, 1, ..., with positional features pe(t) = [t / M, cos(2 pi k t / M), sin(2 pi k t / M)
for k = 1 .. (emb_dim - 1) / 2], M = max_len, an MLP Dense, sin, Dense, sin, Dense (to
(N - 1) D outputs, one filter per gate and channel) whose sines share a learned frequency per
unit, and a fixed decay a per channel. The features depend on t alone (never on the sequence
length), so a prefix of a sequence sees the same taps as the whole: the same parameters run at
any length, also past max_len (the features then extrapolate).
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

HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class HyenaConfig(MixerConfig):
    """Hyena's settings: the order, the implicit filter's MLP, positional features and decay
    window, and the short convolution. Defaults follow the official code's associative-recall
    run, except max_len, which that run sets to the task's length + 2 (here the official
    filter's default), and short_init."""

    order: int = 2
    """N: the input is projected to N + 1 sequences, N - 1 of them gate a long convolution each,
    one gates the output."""
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
    short_init: str = "shift"
    """Init of the short convolution's taps: "uniform" (the official code's PyTorch default,
    U(+-1/sqrt(taps))), or "shift", H3's: the gate of the first long convolution (x_{N-1}, the
    role of H3's k) starts as a one-step delay, every other channel as the identity, so
    that x_{N-1, t} v_t binds the token before t to token t from the first step. With "shift"
    tiny-ar reaches 99.8-100% in its 500 steps (seeds 0-2), with "uniform" 61-81%."""
    decay_target: float = 1e-2
    """Value of the decay window exp(-a t / M) that each channel reaches at its own fraction of
    max_len, between fast_decay_pct and slow_decay_pct; in (0, 1)."""
    fast_decay_pct: float = 0.3
    """Fraction of max_len at which the fastest channel's window reaches decay_target."""
    slow_decay_pct: float = 1.5
    """Fraction of max_len at which the slowest channel's window reaches decay_target."""

    def __post_init__(self):
        owner = "HyenaConfig"
        validate.positive_int(owner, "order", self.order)
        if self.order < 2:
            raise ValueError(f"{owner}.order: got {self.order!r}; allowed is an int >= 2")
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
        validate.one_of(owner, "short_init", self.short_init, ("shift", "uniform"))
        if self.short_init == "shift" and self.short_filter_len < 2:
            raise ValueError(
                f"{owner}.short_init: 'shift' needs short_filter_len >= 2, got "
                f"{self.short_filter_len}; use 'uniform'"
            )
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


def _shift_init(order: int, width: int):
    """Short taps (channels, taps): 1 at lag 1 for the gate x_{N-1} (channels (N - 1) D to
    N D), 1 at lag 0 for every other channel; 0 elsewhere."""

    def init(key, shape, dtype=jnp.float32):
        gate = (jnp.arange(shape[0]) // width) == order - 1
        lag = jnp.where(gate, 1, 0)
        return (jnp.arange(shape[1]) == lag[:, None]).astype(dtype)

    return init


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
    projected: Float[Array, "B L W"],
    short_kernel: Float[Array, "W Lk"],
    short_bias: Float[Array, " W"],
    filters: Float[Array, "O D L"],
    filter_bias: Float[Array, "O D"],
) -> tuple[Float[Array, "B L D"], Float[Array, "O B L D"]]:
    """The recurrence after the input projection (W = (N + 1) D channels, O = N - 1 long
    filters) -> (x_0 . z_{N-1}, the inputs of the O long convolutions).

    u = short filter of the projection, split (x_0, ..., x_{N-1}, v); z_0 = v;
    z_o = h_o * (x_{N-o} . z_{o-1}) + b_o (x_{N-o} . z_{o-1}), each by FFT (causal_conv).
    """
    u = short_causal_conv(projected, short_kernel) + short_bias
    *x, z = jnp.split(u, filters.shape[0] + 2, axis=-1)
    conv_inputs = []
    for o, gate in enumerate(reversed(x[1:])):
        z = gate * z
        conv_inputs.append(z)
        z = causal_conv(z, filters[o], filter_bias[o])
    return x[0] * z, jnp.stack(conv_inputs)


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
    """Hyena of order N. Parameters: in_proj (D -> (N + 1) D), short_kernel ((N + 1) D,
    short_filter_len; tap j multiplies the input j steps back) and short_bias ((N + 1) D),
    implicit_filter (HyenaFilter, (N - 1) D channels, filter by filter), filter_bias (N - 1, D)
    (the skip b of each long convolution, N(0, 1) as in the official code), out_proj (D -> D,
    with the residual-rescaled init of the official LM).

    Everything between the two projections runs in float32. State: the last short_filter_len - 1
    rows of the projection (B, short_filter_len - 1, (N + 1) D), and the inputs of each long
    convolution so far, (N - 1, B, D, T) for T = cache_len positions: like attention's
    key/value cache, a step is the exact convolution over the cache, O(T D) per filter.
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
        D, width = s.d_model, (c.order + 1) * s.d_model
        self.in_proj = dense(s, width)
        init = _uniform(c.short_filter_len)
        kernel_init = init if c.short_init == "uniform" else _shift_init(c.order, D)
        self.short_kernel = self.param("short_kernel", kernel_init, (width, c.short_filter_len))
        self.short_bias = self.param("short_bias", init, (width,))
        self.implicit_filter = HyenaFilter(c, (c.order - 1) * D)
        self.filter_bias = self.param("filter_bias", nn.initializers.normal(1.0),
                                      (c.order - 1, D))
        self.out_proj = dense(s, D, std=residual_std(s))

    def filters(self, length: int) -> Float[Array, "O D L"]:
        """The long filters h_1 .. h_{N-1} at lags 0 .. length - 1 (without the skip b)."""
        return self.implicit_filter(length).reshape(self.config.order - 1, self.shared.d_model,
                                                    length)

    def __call__(self, x: Float[Array, "B L D"], *, train: bool = False) -> Float[Array, "B L D"]:
        return self._sequence(x)[0]

    def prefill(self, x: Float[Array, "B L D"], *, cache_len: int):
        length = x.shape[-2]
        if cache_len is None or cache_len < length:
            raise ValueError(
                f"cache_len: got {cache_len!r}; prefill of a Hyena layer needs the cache "
                f"length, an int >= the prompt length {length}"
            )
        y, projected, conv_inputs = self._sequence(x)
        empty = Hyena.init_state(self.config, self.shared, x.shape[0], cache_len)
        keep = self.config.short_filter_len - 1
        padded = jnp.pad(projected, ((0, 0), (keep, 0), (0, 0)))  # zeros before the first token
        state = {
            "short": padded[:, padded.shape[1] - keep:],
            "conv_inputs": empty["conv_inputs"].at[..., :length].set(
                jnp.swapaxes(conv_inputs, -1, -2)),
        }
        return y, state

    def step(self, x_t: Float[Array, "B D"], state, *, position):
        projected = self.in_proj(x_t).astype(jnp.float32)
        window = jnp.concatenate([state["short"], projected[:, None]], axis=1)  # oldest first
        u = jnp.einsum("bkh,hk->bh", window, self.short_kernel[:, ::-1], precision=HIGHEST)
        *x, z = jnp.split(u + self.short_bias, self.config.order + 1, axis=-1)
        caches = state["conv_inputs"]
        taps = self._taps_at(position, caches.shape[-1])
        for o, gate in enumerate(reversed(x[1:])):
            z = gate * z
            # One update of the whole cache, in place in a generation loop (a slice of it
            # updated and stacked back would copy every cache at every step).
            caches = jax.lax.dynamic_update_slice(caches, z[None, :, :, None], (o, 0, 0, position))
            z = self._conv_step(caches[o], z, taps[o], self.filter_bias[o])
        state = {"short": window[:, 1:], "conv_inputs": caches}
        return self.out_proj(x[0] * z), state

    @classmethod
    def init_state(cls, config: HyenaConfig, shared: Shared, batch_size: int, max_len: int):
        """Empty caches for max_len positions, float32."""
        D = shared.d_model
        return {
            "short": jnp.zeros((batch_size, config.short_filter_len - 1, (config.order + 1) * D),
                               jnp.float32),
            "conv_inputs": jnp.zeros((config.order - 1, batch_size, D, max_len), jnp.float32),
        }

    def _sequence(self, x):
        """(y, the projection before the short filter, the long convolutions' inputs)."""
        projected = self.in_proj(x).astype(jnp.float32)
        out, conv_inputs = hyena_recurrence(projected, self.short_kernel, self.short_bias,
                                            self.filters(x.shape[-2]), self.filter_bias)
        return self.out_proj(out), projected, conv_inputs

    def _taps_at(self, position, cache_len: int) -> Float[Array, "O D T"]:
        """taps[o, :, s] = h_o[position - s] for cached positions s <= position, else 0: a
        slice of the reversed filters with zeros after them (both independent of the step, so
        a generation loop computes them once), not a gather."""
        h = self.filters(cache_len)[..., ::-1]
        padded = jnp.concatenate([h, jnp.zeros_like(h)], axis=-1)
        return jax.lax.dynamic_slice_in_dim(padded, cache_len - 1 - position, cache_len, axis=-1)

    @staticmethod
    def _conv_step(cache, z_t, taps, skip):
        """(h * z)_t from the cached inputs z_0 .. z_t: sum_s h[t - s] z_s + b z_t. The cache is
        (B, D, T), lags minor like the taps, so the product reads it in place. With a (B, T, D)
        cache, taps gathered by lag and the caches stacked back, a generated token took 2.8x
        (batch 8) to 11x (batch 1) longer on CPU at T = 1024, 2 layers of D = 64."""
        return jnp.einsum("bdt,dt->bd", cache, taps, precision=HIGHEST) + skip * z_t
