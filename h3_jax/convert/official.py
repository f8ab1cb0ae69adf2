"""from_official / to_official: the official state dict <-> (LMConfig, params), exactly.

The key-by-key correspondence and every convention difference are documented in
h3_jax.convert.keys. Values are never changed, only re-laid out (transpose, drop a unit axis),
so from_official followed by to_official gives back the same arrays bit for bit.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from h3_jax.convert import keys as K
from h3_jax.convert.infer import Structure, infer_structure
from h3_jax.convert.releases import RELEASES, ReleasedModel, find_release, get_release
from h3_jax.mixers import AttentionConfig, H3Config
from h3_jax.models import LMConfig

Params = dict[str, Any]
# Config fields the keys determine; an override of one of them would contradict the weights.
STRUCTURAL_FIELDS = (
    "vocab_size", "d_model", "n_layer", "mixer", "attn_layer_idx", "d_inner",
    "max_position_embeddings",
)
_SHOWN = 12  # keys listed per category in an error message


def from_official(
    state_dict: Mapping[str, Any],
    *,
    preset: str | None = None,
    n_heads: int | None = None,
    rotary_emb_dim: int | None = None,
    **config_overrides: Any,
) -> tuple[LMConfig, Params]:
    """(config, params) of the official H3 state dict `state_dict` (key -> array-like).

    The sizes and attention layers come from the keys. The attention heads and rotary dimension
    come from `n_heads` / `rotary_emb_dim`, else from `preset` (a name in
    h3_jax.convert.RELEASES), else from the released model whose sizes match. Other LMConfig
    fields (dropouts, compute_dtype, ...) may be set through `config_overrides`.

    Params are float32 jax arrays (on the default device) in our layout, ready for
    `LM(config).apply` and h3_jax.generate. Raises ValueError naming the missing, unexpected and
    wrong-shape keys unless every key is consumed and every parameter filled.
    """
    arrays = {str(k): v for k, v in state_dict.items()}
    structure = infer_structure(arrays)
    released = _released(preset, structure)
    config = _config(structure, released, n_heads, rotary_emb_dim, config_overrides)
    _check_official(arrays, config, structure)
    params: Params = {}
    for rule in K.rules(config):
        array = K.to_ours(_float32(arrays[rule.official]), rule.layout)
        _put(params, rule.path, jnp.asarray(array))
    return config, params


def to_official(
    config: LMConfig, params: Mapping[str, Any], *, rotary_inv_freq: bool = False
) -> dict[str, np.ndarray]:
    """The official state dict (key -> float32 array) of our (config, params).

    Includes `lm_head.weight` (a copy of the embedding, as the official model ties them);
    `rotary_inv_freq` adds each attention layer's `rotary_emb.inv_freq` buffer when the config
    has rotary embeddings (older flash-attn versions store it, newer ones do not).
    """
    if config.max_position_embeddings:
        raise ValueError(
            f"LMConfig.max_position_embeddings={config.max_position_embeddings}: the official "
            "H3 models have no position table"
        )
    rules = K.rules(config)
    flat = _flatten(params)
    problems = _mismatches(
        {r.path: r.our_shape for r in rules}, {p: np.shape(a) for p, a in flat.items()},
        name="/".join,
    )
    if problems:
        raise ValueError(f"params do not match {_describe(config)}: {problems}")
    out = {r.official: K.to_official(_float32(flat[r.path]), r.layout) for r in rules}
    out[K.LM_HEAD] = out[K.EMBEDDING].copy()
    rotary = K.rotary_dim_of(config)
    if rotary_inv_freq and rotary:
        for i in config.attn_layer_idx:
            out[K.layer_key(i, K.INV_FREQ)] = K.rotary_inv_freq(rotary)
    return out


def _released(preset: str | None, structure: Structure) -> ReleasedModel | None:
    if preset is None:
        return find_release(structure)
    released = get_release(preset)
    found = (structure.d_model, structure.n_layer)
    if (released.d_model, released.n_layer) != found:
        raise ValueError(
            f"preset {released.name} has d_model={released.d_model}, n_layer={released.n_layer}; "
            f"the state dict has d_model={found[0]}, n_layer={found[1]}"
        )
    return released


def _config(
    structure: Structure,
    released: ReleasedModel | None,
    n_heads: int | None,
    rotary_emb_dim: int | None,
    overrides: dict[str, Any],
) -> LMConfig:
    clash = sorted(set(overrides) & set(STRUCTURAL_FIELDS))
    if clash:
        raise ValueError(f"{clash} are read from the state dict's keys and cannot be overridden")
    if n_heads is None:
        if released is not None:
            n_heads = released.n_heads
        elif structure.attn_layer_idx:
            raise ValueError(
                f"the state dict has attention layers {list(structure.attn_layer_idx)} at "
                f"d_model={structure.d_model}, n_layer={structure.n_layer}, which is no released "
                "H3 model; their head count is not in the weights: pass n_heads (--attn-heads) "
                f"or a preset ({', '.join(RELEASES)})"
            )
        else:
            n_heads = 1
    rotary = _rotary(structure, released, rotary_emb_dim)
    fields = dict(
        vocab_size=structure.vocab_size, d_model=structure.d_model, n_layer=structure.n_layer,
        mixer=H3Config(d_state=structure.d_state, head_dim=structure.head_dim,
                       discretization="bilinear", A_init="lin"),
        attn_layer_idx=structure.attn_layer_idx, d_inner=structure.d_inner,
        attention=AttentionConfig(n_heads=n_heads, rotary_emb_dim=rotary),
        max_position_embeddings=0,
    )
    if released is not None:
        fields["initializer_range"] = released.initializer_range
    fields.update(overrides)
    try:
        return LMConfig(**fields)
    except TypeError as err:  # an unknown override
        raise ValueError(f"config override: {err}") from None


def _rotary(structure: Structure, released: ReleasedModel | None, requested: int | None) -> int:
    rotary = requested
    if rotary is None:
        rotary = released.rotary_emb_dim if released is not None else structure.rotary_emb_dim
    if structure.rotary_emb_dim and rotary != structure.rotary_emb_dim:
        raise ValueError(
            f"rotary_emb_dim={rotary}, but the state dict's rotary buffers imply "
            f"{structure.rotary_emb_dim}"
        )
    if rotary and not structure.attn_layer_idx:
        raise ValueError(f"rotary_emb_dim={rotary}, but the state dict has no attention layers")
    return int(rotary)


def _check_official(arrays: dict[str, Any], config: LMConfig, structure: Structure) -> None:
    expected = {r.official: r.shape for r in K.rules(config)}
    derived = [K.LM_HEAD] + [
        K.layer_key(i, K.INV_FREQ) for i in config.attn_layer_idx if structure.rotary_emb_dim
    ]
    found = {k: tuple(np.shape(v)) for k, v in arrays.items() if k not in derived}
    problems = _mismatches(expected, found, name=str)
    if problems:
        raise ValueError(f"state dict does not match the official layout of {_describe(config)}: "
                         f"{problems}")
    if K.LM_HEAD in arrays and not np.array_equal(
        _float32(arrays[K.LM_HEAD]), _float32(arrays[K.EMBEDDING])
    ):
        raise ValueError(
            f"{K.LM_HEAD} differs from {K.EMBEDDING}; the official model ties them and so does "
            "ours (an untied head is not supported)"
        )


def _mismatches(expected: dict, found: dict, *, name) -> str:
    """'' when equal, else the missing, unexpected and wrong-shape entries, named."""
    missing = [name(k) for k in expected if k not in found]
    unexpected = sorted(name(k) for k in found if k not in expected)
    wrong = [
        f"{name(k)} has shape {found[k]}, expected {expected[k]}"
        for k in expected if k in found and tuple(found[k]) != tuple(expected[k])
    ]
    parts = [
        f"{label} ({len(items)}): {', '.join(items[:_SHOWN])}"
        + (f", ... and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")
        for label, items in (("missing", missing), ("unexpected", unexpected),
                             ("wrong shape", wrong))
        if items
    ]
    return "; ".join(parts)


def _describe(config: LMConfig) -> str:
    h3 = config.mixer
    return (f"vocab_size={config.vocab_size}, d_model={config.d_model}, "
            f"n_layer={config.n_layer}, d_state={h3.d_state}, d_inner={config.mlp_width}, "
            f"head_dim={h3.head_dim}, attention layers {list(config.attn_layer_idx)}")


def _float32(array: Any) -> np.ndarray:
    """A float32 NumPy array (float16 / bfloat16 upcast exactly; torch CPU tensors accepted)."""
    if hasattr(array, "detach"):  # a torch tensor: numpy() cannot take bfloat16
        array = array.detach().cpu().float().numpy()
    return np.asarray(array, dtype=np.float32)


def _put(tree: Params, path: tuple[str, ...], value: np.ndarray) -> None:
    for name in path[:-1]:
        tree = tree.setdefault(name, {})
    tree[path[-1]] = value


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    out = {}
    for name, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, (*prefix, str(name))))
        else:
            out[(*prefix, str(name))] = value
    return out
