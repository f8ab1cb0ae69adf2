"""Optimizer groups: "ssm" for the SSM dynamics each mixer declares (`Mixer.ssm_parameters`:
A, dt, B of the diagonal SSM; B of the shift SSM), trained at their own rate and by default
without weight decay; "rest" for everything else."""

from __future__ import annotations

from typing import Any

import jax

from h3_jax.mixers import mixer_of
from h3_jax.models.config import LMConfig

SSM = "ssm"
REST = "rest"


def ssm_parameter_paths(config: LMConfig) -> set[tuple[str, ...]]:
    """Every parameter path of the SSM dynamics of an LM with this config."""
    paths = set()
    for i in range(config.n_layer):
        mixer_config = config.layer_mixer(i)
        for name in mixer_of(mixer_config).ssm_parameters_of(mixer_config):
            paths.add((f"layers_{i}", "mixer", *name.split("/")))
    return paths


def param_labels(params: Any, config: LMConfig) -> Any:
    """A pytree of "ssm" / "rest" strings with the structure of params (for optax.partition).

    Raises ValueError when a declared SSM parameter matches nothing in params: the mixer's
    declaration and its parameters have diverged, and the parameter would silently be decayed.
    """
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    if not flat:
        raise ValueError("param_labels: params has no leaves")
    present = {_names(path) for path, _ in flat}
    declared = ssm_parameter_paths(config)
    missing = sorted("/".join(p) for p in declared - present)
    if missing:
        raise ValueError(
            f"param_labels: declared SSM parameters {missing} match nothing in params; the "
            "mixer's ssm_parameters and its parameters have diverged"
        )
    return jax.tree_util.tree_map_with_path(
        lambda path, _: SSM if _names(path) in declared else REST, params
    )


def _names(path) -> tuple[str, ...]:
    return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)
