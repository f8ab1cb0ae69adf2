"""The language model: `LMConfig`, `LM` (Flax linen), and the optimizer labels of its parameters.

Modules own parameters and call the pure functions of h3_jax.ssm. Parameters are a plain nested
dict, `LM(config).init(key, tokens)["params"]`, laid out one-to-one with the official H3 state dict.
The mixers live in h3_jax.mixers.
"""

from h3_jax.models.config import LMConfig
from h3_jax.models.labels import param_labels, ssm_parameter_paths
from h3_jax.models.lm import LM, MLP, Block

__all__ = ["LM", "LMConfig", "MLP", "Block", "param_labels", "ssm_parameter_paths"]
