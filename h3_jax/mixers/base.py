"""The mixer interface: what every sequence mixer of the LM provides, written down once.

A mixer is a Flax (linen) module that maps a sequence (B, L, D) to (B, L, D), causally. It comes
with its own frozen settings class, `Config`, and it computes three ways that must agree:

    y = mixer(x, train=...)                         the whole sequence, (B, L, D) -> (B, L, D)
    y, state = mixer.prefill(x, cache_len=T)        the same outputs, and the state after x
    y_t, state = mixer.step(x_t, state, position=t) one more token, (B, D) -> (B, D)

`Mixer.init_state(config, shared, B, T)` is the state before any token. The state is any pytree
of arrays; `T` (cache_len / max_len) is how many positions a state may need to hold, used only
by mixers whose state grows with the sequence (`uses_cache = True`, e.g. attention's key/value
cache). How a whole sequence is computed (FFT convolution, scan, ...) is a field of the mixer's
Config, `algorithm`, with the choices `config.algorithms` (by default `Config.ALGORITHMS`): an
algorithm is a setting of the model, not an argument of the call.

`ssm_parameters` names the parameters that are SSM dynamics (paths relative to the mixer, such
as "diag_ssm/log_dt"); the trainer gives them their own optimizer group. A mixer whose parameters
depend on its settings overrides `ssm_parameters_of(config)` instead.

Each module has two fields: `config` (its Config) and `shared` (the LM's `Shared` settings:
d_model, n_layer, initializer_range, compute_dtype). Define parameters in `setup()`, so that all
three methods see the same ones. A subclass that sets `Config` is registered by defining it; the
LM finds it by the spec "package.module:ClassName" (see h3_jax.mixers.registry).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax.linen as nn
from jaxtyping import Array, Float

from h3_jax.layers.dense import Shared

State = Any


@dataclasses.dataclass(frozen=True)
class MixerConfig:
    """Base of every mixer's settings. Subclasses are frozen dataclasses that check their own
    fields in `__post_init__` (raising ValueError naming the field)."""

    ALGORITHMS: ClassVar[tuple[str, ...]] = ()
    """The choices of the `algorithm` field, for mixers with more than one way to run a whole
    sequence; empty for mixers with one."""

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The choices of `algorithm` under these settings (ALGORITHMS unless a subclass says)."""
        return self.ALGORITHMS

    def check_width(self, d_model: int) -> None:
        """Raise ValueError when these settings cannot run at model width d_model."""


class Mixer(nn.Module):
    """Base class of the sequence mixers; see the module docstring for the contract."""

    Config: ClassVar[type[MixerConfig]] = MixerConfig
    ssm_parameters: ClassVar[tuple[str, ...]] = ()
    uses_cache: ClassVar[bool] = False

    config: MixerConfig
    shared: Shared

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "Config" in cls.__dict__:
            from h3_jax.mixers.registry import register

            register(cls)

    @classmethod
    def ssm_parameters_of(cls, config: MixerConfig) -> tuple[str, ...]:
        """The SSM dynamics of a mixer with these settings (`ssm_parameters` unless overridden)."""
        return cls.ssm_parameters

    def __call__(self, x: Float[Array, "B L D"], *, train: bool = False) -> Float[Array, "B L D"]:
        raise NotImplementedError

    def prefill(
        self, x: Float[Array, "B L D"], *, cache_len: int
    ) -> tuple[Float[Array, "B L D"], State]:
        raise NotImplementedError

    def step(
        self, x_t: Float[Array, "B D"], state: State, *, position: Array
    ) -> tuple[Float[Array, "B D"], State]:
        raise NotImplementedError

    @classmethod
    def init_state(cls, config: MixerConfig, shared: Shared, batch_size: int, max_len: int) -> State:
        raise NotImplementedError
