"""Flax (linen) modules: the H3 mixer, its baselines, attention, and the language model.

Modules own parameters and call the pure functions of h3_jax.ssm. Parameters are a plain nested
dict, `LM(config).init(key, tokens)["params"]`, laid out one-to-one with the official H3 state dict.
"""

from h3_jax.models.attention import CausalSelfAttention
from h3_jax.models.baselines import GSS, S4D
from h3_jax.models.config import LMConfig
from h3_jax.models.diag_ssm import DiagDynamics, DiagSSM
from h3_jax.models.h3 import H3
from h3_jax.models.labels import param_labels
from h3_jax.models.lm import LM, MIXER_MODULES
from h3_jax.models.shift_ssm import ShiftFilter, ShiftSSM

__all__ = [
    "CausalSelfAttention",
    "DiagDynamics",
    "DiagSSM",
    "GSS",
    "H3",
    "LM",
    "LMConfig",
    "MIXER_MODULES",
    "S4D",
    "ShiftFilter",
    "ShiftSSM",
    "param_labels",
]
