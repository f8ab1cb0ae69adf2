"""The released H3 checkpoints: what their weights cannot tell (attention heads, rotary).

Sizes (d_model, n_layer) and the attention layers are always read from the keys; a preset adds the
head count, the rotary dimension and the init scale, and is found automatically from (d_model,
n_layer, attention layers), so converting a released file needs no arguments.

Attention layer indices: the sources disagree. safari's training configs put attention at [1, 8]
(125M), [1, 13] (355M, 1.3B) and [10, 21] (2.7B); the H3 README, whose commands load the released
files strictly, gives [6] (125M), [8, 16] (355M, 1.3B), [8, 16, 24] (2.7B) and [10, 21] with
rotary dim 64 (2.7B rotary). The presets record the README's indices, which describe the released
files. Because the indices in the keys are authoritative, they matter only to tell the two 2.7B
checkpoints apart; a 125M/355M/1.3B file with the other indices still finds its preset. All
sources agree on the heads: 12 (d_model 768), 16 (1024, 2048), 20 (2560); vocab 50264 (GPT-2's
50257 padded to a multiple of 8); initializer_range sqrt(2 / (5 d_model)) for 2.7B.
"""

from __future__ import annotations

import dataclasses
import math

from h3_jax.convert.infer import Structure


@dataclasses.dataclass(frozen=True)
class ReleasedModel:
    name: str
    d_model: int
    n_layer: int
    attn_layer_idx: tuple[int, ...]
    n_heads: int
    rotary_emb_dim: int = 0
    initializer_range: float = 0.02
    vocab_size: int = 50264


_2P7B_INIT = math.sqrt(2 / (5 * 2560))

RELEASES: dict[str, ReleasedModel] = {
    p.name: p
    for p in (
        ReleasedModel("H3-125M", 768, 12, (6,), 12),
        ReleasedModel("H3-355M", 1024, 24, (8, 16), 16),
        ReleasedModel("H3-1.3B", 2048, 24, (8, 16), 16),
        ReleasedModel("H3-2.7B", 2560, 32, (8, 16, 24), 20, initializer_range=_2P7B_INIT),
        ReleasedModel(
            "H3-2.7B-rotary", 2560, 32, (10, 21), 20, rotary_emb_dim=64,
            initializer_range=_2P7B_INIT,
        ),
    )
}


def get_release(name: str) -> ReleasedModel:
    """The released model called `name` (case-insensitive); ValueError listing the names otherwise."""
    for preset in RELEASES.values():
        if preset.name.lower() == name.lower():
            return preset
    raise ValueError(f"unknown released model {name!r}; allowed are {sorted(RELEASES)}")


def find_release(structure: Structure) -> ReleasedModel | None:
    """The one released model that fits the structure, or None when none or several fit.

    Only models with attention layers are matched: without attention the heads do not matter.
    """
    if not structure.attn_layer_idx:
        return None
    fits = [
        p for p in RELEASES.values()
        if (p.d_model, p.n_layer) == (structure.d_model, structure.n_layer)
    ]
    if len(fits) > 1:
        # Same sizes (the two 2.7B files): the attention layers, or the rotary buffer, decide.
        fits = [
            p for p in fits
            if p.attn_layer_idx == structure.attn_layer_idx
            or (structure.rotary_emb_dim and p.rotary_emb_dim == structure.rotary_emb_dim)
        ]
    return fits[0] if len(fits) == 1 else None
