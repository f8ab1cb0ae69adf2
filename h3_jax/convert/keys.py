"""The official state dict key by key: its shape and where it lives in our params.

Every official key maps to exactly one of our parameters by one of three exact layouts (no
arithmetic on values, so the conversion is lossless in both directions):

| official key (`L.` = `backbone.layers.{i}.`) | official shape | ours (`l/` = `layers_{i}/`)       | layout  |
|----------------------------------------------|----------------|-----------------------------------|---------|
| `backbone.embeddings.word_embeddings.weight` | (V, D)         | `embedding`                       | same    |
| `lm_head.weight`                             | (V, D)         | tied to `embedding`               | tied    |
| `L.norm{1,2}.weight`, `backbone.ln_f.weight` | (D,)           | `l/norm{1,2}/scale`, `ln_f/scale` | same    |
| `L.norm{1,2}.bias`, `backbone.ln_f.bias`     | (D,)           | `l/norm{1,2}/bias`, `ln_f/bias`   | same    |
| `L.mlp.fc1.weight`, `.bias`                  | (F, D), (F,)   | `l/mlp/fc1/kernel` (D, F), `bias` | linear  |
| `L.mlp.fc2.weight`, `.bias`                  | (D, F), (D,)   | `l/mlp/fc2/kernel` (F, D), `bias` | linear  |
| `L.mixer.{q,k,v}_proj.weight`, `.bias`       | (D, D), (D,)   | `l/mixer/{q,k,v}_proj/kernel`     | linear  |
| `L.mixer.output_linear.weight`, `.bias`      | (D, D), (D,)   | `l/mixer/output_linear/kernel`    | linear  |
| `L.mixer.ssm_k_kernel.kernel.B`              | (D, N)         | `l/mixer/shift_ssm/B`             | same    |
| `L.mixer.ssm_k_kernel.kernel.C`              | (1, D, N)      | `l/mixer/shift_ssm/C` (D, N)      | lead1   |
| `L.mixer.ssm_k_D`                            | (D,)           | `l/mixer/shift_ssm/D`             | same    |
| `L.mixer.kernel.kernel.log_dt`               | (H,)           | `l/mixer/diag_ssm/log_dt`         | same    |
| `L.mixer.kernel.kernel.inv_A_real`           | (H, N/2)       | `l/mixer/diag_ssm/inv_A_real`     | same    |
| `L.mixer.kernel.kernel.A_imag`               | (H, N/2)       | `l/mixer/diag_ssm/A_imag`         | same    |
| `L.mixer.kernel.kernel.B`                    | (H, N/2, 2)    | `l/mixer/diag_ssm/B`              | same    |
| `L.mixer.kernel.kernel.C`                    | (1, H, N/2, 2) | `l/mixer/diag_ssm/C` (H, N/2, 2)  | lead1   |
| `L.mixer.D`                                  | (H,)           | `l/mixer/diag_ssm/D`              | same    |
| `L.mixer.Wqkv.weight`, `.bias` (attention)   | (3D, D), (3D,) | `l/mixer/Wqkv/kernel` (D, 3D)     | linear  |
| `L.mixer.out_proj.weight`, `.bias`           | (D, D), (D,)   | `l/mixer/out_proj/kernel`         | linear  |
| `L.mixer.rotary_emb.inv_freq` (optional)     | (R/2,)         | gives `rotary_emb_dim` = R        | derived |

Layouts and conventions:
- same: identical array. Both sides store the diagonal SSM's A as `A = -exp(inv_A_real) +
  i A_imag` (the real part through its log, so it stays negative), dt as `log_dt`, and complex B
  and C as real arrays whose last axis holds (real, imaginary) parts; our model reads them
  exactly as the official one does.
- linear: PyTorch `Linear.weight` is (out, in) and computes `x @ W.T + b`; a Flax `Dense.kernel`
  is (in, out) and computes `x @ K + b`, so K = W.T. Biases are identical. The fused `Wqkv`
  output axis splits as (3, heads, D / heads) on both sides, so its transpose needs no reordering.
- lead1: the official C arrays carry a leading axis of size 1 (one copy of C per "channel group");
  ours drop it.
- LayerNorm: PyTorch calls the multiplier `weight`, Flax calls it `scale`; both use eps 1e-5 and
  the biased variance.
- tied: the official LM head is tied to the token embedding, so `lm_head.weight` must equal the
  embedding; it is checked, not stored twice (files that drop the duplicate are accepted).
- derived: the rotary `inv_freq` buffer is a function of its length (base 10000), so it is
  checked and gives `rotary_emb_dim`; it is written back only on request.
- Heads (head_dim P > 1, never used by a released model): channels are head-major,
  channel = h P + i, as in the official fused kernel.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from h3_jax.mixers import spec_of
from h3_jax.models import LMConfig

EMBEDDING = "backbone.embeddings.word_embeddings.weight"
LM_HEAD = "lm_head.weight"
LAYER_PREFIX = "backbone.layers."
ATTENTION_MARKERS = ("mixer.Wqkv.", "mixer.out_proj.", "mixer.rotary_emb.")
INV_FREQ = "mixer.rotary_emb.inv_freq"
ROTARY_BASE = 10000.0

LAYOUTS = ("same", "linear", "lead1")


@dataclasses.dataclass(frozen=True)
class Rule:
    """One official key, its official shape, our parameter path and the layout between them."""

    official: str
    shape: tuple[int, ...]
    path: tuple[str, ...]
    layout: str

    @property
    def our_shape(self) -> tuple[int, ...]:
        if self.layout == "linear":
            return self.shape[::-1]
        if self.layout == "lead1":
            return self.shape[1:]
        return self.shape


def to_ours(array: np.ndarray, layout: str) -> np.ndarray:
    if layout == "linear":
        return np.ascontiguousarray(array.T)
    if layout == "lead1":
        return np.ascontiguousarray(array[0])
    return np.array(array)


def to_official(array: np.ndarray, layout: str) -> np.ndarray:
    if layout == "linear":
        return np.ascontiguousarray(array.T)
    if layout == "lead1":
        return np.ascontiguousarray(array[None])
    return np.array(array)


def layer_key(i: int, suffix: str) -> str:
    return f"{LAYER_PREFIX}{i}.{suffix}"


def rules(config: LMConfig) -> list[Rule]:
    """Every official key of `config`, in the official module order (lm_head and the rotary
    buffer excluded: they are derived, not stored, see the module docstring)."""
    D, V, F = config.d_model, config.vocab_size, config.mlp_width
    if not F:
        raise ValueError("LMConfig.d_inner: got 0 (no MLP); official H3 blocks always have one")
    out = [Rule(EMBEDDING, (V, D), ("embedding",), "same")]
    for i in range(config.n_layer):
        layer = f"layers_{i}"

        def add(suffix, shape, path, layout="same", layer=layer, i=i):
            out.append(Rule(layer_key(i, suffix), shape, (layer, *path), layout))

        def linear(name, n_out, n_in, path):
            add(f"{name}.weight", (n_out, n_in), (*path, "kernel"), "linear")
            add(f"{name}.bias", (n_out,), (*path, "bias"))

        for norm in ("norm1", "norm2"):
            add(f"{norm}.weight", (D,), (norm, "scale"))
            add(f"{norm}.bias", (D,), (norm, "bias"))
        linear("mlp.fc1", F, D, ("mlp", "fc1"))
        linear("mlp.fc2", D, F, ("mlp", "fc2"))
        mixer = config.layer_mixer(i)
        kind = spec_of(mixer)
        if kind == "attention":
            linear("mixer.Wqkv", 3 * D, D, ("mixer", "Wqkv"))
            linear("mixer.out_proj", D, D, ("mixer", "out_proj"))
        elif kind == "h3":
            N, H = mixer.d_state, D // mixer.head_dim
            for name in ("q_proj", "k_proj", "v_proj"):
                linear(f"mixer.{name}", D, D, ("mixer", name))
            add("mixer.ssm_k_kernel.kernel.B", (D, N), ("mixer", "shift_ssm", "B"))
            add("mixer.ssm_k_kernel.kernel.C", (1, D, N), ("mixer", "shift_ssm", "C"), "lead1")
            add("mixer.ssm_k_D", (D,), ("mixer", "shift_ssm", "D"))
            diag = ("mixer", "diag_ssm")
            add("mixer.kernel.kernel.log_dt", (H,), (*diag, "log_dt"))
            add("mixer.kernel.kernel.inv_A_real", (H, N // 2), (*diag, "inv_A_real"))
            add("mixer.kernel.kernel.A_imag", (H, N // 2), (*diag, "A_imag"))
            add("mixer.kernel.kernel.B", (H, N // 2, 2), (*diag, "B"))
            add("mixer.kernel.kernel.C", (1, H, N // 2, 2), (*diag, "C"), "lead1")
            add("mixer.D", (H,), (*diag, "D"))
            linear("mixer.output_linear", D, D, ("mixer", "output_linear"))
        else:
            raise ValueError(
                f"layer {i} uses the {kind!r} mixer; the official H3 format holds only H3 and "
                "attention layers"
            )
    out.append(Rule("backbone.ln_f.weight", (D,), ("ln_f", "scale"), "same"))
    out.append(Rule("backbone.ln_f.bias", (D,), ("ln_f", "bias"), "same"))
    return out


def rotary_inv_freq(rotary_dim: int) -> np.ndarray:
    """The official rotary buffer for dimension R: 1 / base^(2i / R), i < R/2, float32."""
    exponents = np.arange(0, rotary_dim, 2, dtype=np.float32) / np.float32(rotary_dim)
    return (1.0 / np.float32(ROTARY_BASE) ** exponents).astype(np.float32)


def rotary_dim_of(config: LMConfig) -> int:
    """The rotary dimension of the config's attention layers (0: none)."""
    return config.attention.rotary_emb_dim
