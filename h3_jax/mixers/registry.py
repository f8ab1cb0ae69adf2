"""Mixers by name: the built-in short names, and "package.module:ClassName" for any other.

A spec is resolved by importing its module: a mixer in the user's own file is found with no edit
to h3_jax (`--model.mixer=my_mixers:Gated` with my_mixers importable). Defining a `Mixer`
subclass with a `Config` registers it, so a config instance always knows its mixer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from h3_jax.mixers.base import Mixer, MixerConfig

BUILT_IN = {
    "h3": "h3_jax.mixers.h3:H3",
    "s4d": "h3_jax.mixers.s4d:S4D",
    "gss": "h3_jax.mixers.gss:GSS",
    "attention": "h3_jax.mixers.attention:Attention",
}
_BY_CONFIG: dict[type, type] = {}


def register(mixer: type[Mixer]) -> None:
    """Record `mixer` as the module of its Config class (called when the class is defined)."""
    _BY_CONFIG[mixer.Config] = mixer


def mixer_class(spec: str) -> type[Mixer]:
    """The Mixer class named by `spec`: a built-in name or "package.module:ClassName"."""
    from h3_jax.mixers.base import Mixer

    path = BUILT_IN.get(spec, spec)
    module_name, colon, name = path.partition(":") if isinstance(path, str) else ("", "", "")
    if not colon or not module_name or not name:
        raise ValueError(
            f"mixer: got {spec!r}; allowed are {tuple(BUILT_IN)} or 'package.module:ClassName'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"mixer: cannot import {module_name!r} for {spec!r} ({err})") from None
    cls = getattr(module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Mixer) and "Config" in vars(cls)):
        raise ValueError(
            f"mixer: {spec!r} is not a Mixer subclass with its own Config (h3_jax.mixers.Mixer)"
        )
    return cls


def default_config(spec: str) -> MixerConfig:
    """The default settings of the mixer named by `spec`."""
    return mixer_class(spec).Config()


def mixer_of(config: MixerConfig) -> type[Mixer]:
    """The Mixer class whose Config `config` is."""
    try:
        return _BY_CONFIG[type(config)]
    except KeyError:
        raise ValueError(
            f"mixer: {type(config).__name__} is not the Config of any Mixer subclass; define "
            "one with `Config = ...` (h3_jax.mixers.Mixer)"
        ) from None


def spec_of(config: MixerConfig) -> str:
    """The spec that names `config`'s mixer: its built-in name, else "module:ClassName"."""
    cls = mixer_of(config)
    path = f"{cls.__module__}:{cls.__qualname__}"
    return next((name for name, built_in in BUILT_IN.items() if built_in == path), path)
