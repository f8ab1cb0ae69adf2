"""Sequence mixers, one file each, behind one interface (`base.py`) and one registry.

Built in: "h3" (H3), "s4d" (S4D), "gss" (GSS), "attention" (Attention). Any other mixer, also one
in the user's own file, is named by its import path, "package.module:ClassName": see
`registry.py`, and `h3_jax.testing.check_mixer` for the checks a mixer must pass.
"""

from h3_jax.layers.dense import Shared
from h3_jax.mixers.attention import Attention, AttentionConfig
from h3_jax.mixers.base import Mixer, MixerConfig
from h3_jax.mixers.gss import GSS, GSSConfig
from h3_jax.mixers.h3 import H3, H3Config
from h3_jax.mixers.registry import BUILT_IN, default_config, mixer_class, mixer_of, spec_of
from h3_jax.mixers.s4d import S4D, S4DConfig
from h3_jax.mixers.ssm_config import DiagSSMConfig

__all__ = [
    "Attention",
    "AttentionConfig",
    "BUILT_IN",
    "DiagSSMConfig",
    "GSS",
    "GSSConfig",
    "H3",
    "H3Config",
    "Mixer",
    "MixerConfig",
    "S4D",
    "S4DConfig",
    "Shared",
    "default_config",
    "mixer_class",
    "mixer_of",
    "spec_of",
]
