"""What an official state dict's keys and shapes imply: sizes, layer count, attention layers.

Only a few anchor keys are read here; every other key is checked against the full layout that
these sizes imply (h3_jax.convert.check), so a wrong shape anywhere is reported, not absorbed.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping

import numpy as np

from h3_jax.convert import keys as K

_LAYER = re.compile(r"^backbone\.layers\.(\d+)\.(.+)$")
# d_state of a model without any H3 layer (the official default; it then shapes nothing).
DEFAULT_D_STATE = 64


@dataclasses.dataclass(frozen=True)
class Structure:
    """The sizes an official state dict implies. rotary_emb_dim is 0 unless the attention
    layers carry the rotary `inv_freq` buffer."""

    vocab_size: int
    d_model: int
    n_layer: int
    d_state: int
    d_inner: int
    head_dim: int
    attn_layer_idx: tuple[int, ...]
    rotary_emb_dim: int = 0


def layer_suffixes(state_dict: Mapping[str, np.ndarray]) -> dict[int, list[str]]:
    """{layer index: key suffixes after `backbone.layers.{i}.`}."""
    layers: dict[int, list[str]] = {}
    for key in state_dict:
        match = _LAYER.match(key)
        if match:
            layers.setdefault(int(match.group(1)), []).append(match.group(2))
    return layers


def infer_structure(state_dict: Mapping[str, np.ndarray]) -> Structure:
    """Read the sizes off the anchor keys; ValueError naming the key when one is absent or of
    the wrong rank."""
    vocab, d_model = _shape(state_dict, K.EMBEDDING, 2, "vocab_size and d_model")
    layers = layer_suffixes(state_dict)
    if not layers:
        raise ValueError(
            f"state dict has no '{K.LAYER_PREFIX}{{i}}.*' keys; is it an official H3 checkpoint? "
            f"(first keys: {sorted(state_dict)[:5]})"
        )
    n_layer = max(layers) + 1
    attention = tuple(
        i for i in sorted(layers) if any(s.startswith(K.ATTENTION_MARKERS) for s in layers[i])
    )
    ssm_layers = [i for i in range(n_layer) if i not in attention]
    d_state, head_dim = DEFAULT_D_STATE, 1
    if ssm_layers:
        i = ssm_layers[0]
        _, d_state = _shape(
            state_dict, K.layer_key(i, "mixer.ssm_k_kernel.kernel.B"), 2, "d_state"
        )
        (heads,) = _shape(state_dict, K.layer_key(i, "mixer.kernel.kernel.log_dt"), 1, "head_dim")
        if heads < 1 or d_model % heads:
            raise ValueError(
                f"{K.layer_key(i, 'mixer.kernel.kernel.log_dt')} has {heads} heads, which do not "
                f"divide d_model={d_model}"
            )
        head_dim = d_model // heads
    d_inner, _ = _shape(state_dict, K.layer_key(min(layers), "mlp.fc1.weight"), 2, "d_inner")
    return Structure(
        vocab_size=vocab, d_model=d_model, n_layer=n_layer, d_state=d_state, d_inner=d_inner,
        head_dim=head_dim, attn_layer_idx=attention,
        rotary_emb_dim=_rotary_dim(state_dict, attention),
    )


def _rotary_dim(state_dict: Mapping[str, np.ndarray], attention: tuple[int, ...]) -> int:
    """R from the attention layers' `inv_freq` buffers (length R/2); 0 when there are none."""
    dims = {}
    for i in attention:
        key = K.layer_key(i, K.INV_FREQ)
        if key in state_dict:
            (half,) = _shape(state_dict, key, 1, "the rotary dimension")
            dims[key] = 2 * half
            if half < 1 or not np.allclose(
                np.asarray(state_dict[key], np.float32), K.rotary_inv_freq(2 * half),
                rtol=1e-5, atol=0,
            ):
                raise ValueError(f"{key} is not the rotary frequencies of base "
                                 f"{K.ROTARY_BASE:g}; other bases are not supported")
    if len(set(dims.values())) > 1:
        raise ValueError(f"rotary buffers disagree on the rotary dimension: {dims}")
    if dims and len(dims) != len(attention):
        without = [i for i in attention if K.layer_key(i, K.INV_FREQ) not in dims]
        raise ValueError(f"attention layers {without} lack the rotary buffer "
                         f"'{K.INV_FREQ}' that the other attention layers have")
    return next(iter(dims.values()), 0)


def _shape(state_dict: Mapping[str, np.ndarray], key: str, rank: int, what: str) -> tuple[int, ...]:
    if key not in state_dict:
        raise ValueError(f"state dict is missing key {key!r}, needed to infer {what}")
    shape = tuple(np.shape(state_dict[key]))
    if len(shape) != rank:
        raise ValueError(
            f"state dict key {key!r} has shape {shape}; expected {rank} axes (it gives {what})"
        )
    return shape
