"""Random state dicts laid out like the official H3 checkpoints (keys and shapes of the reference).

Values are drawn at trained-like scales so every term of the forward pass matters: step sizes in
[1e-3, 1e-1], S4D-Lin-like eigenvalues, O(1) SSM coefficients and LayerNorm weights, linear
weights large enough that the logits vary by O(1). Written from the reference table alone.
"""

from __future__ import annotations

import numpy as np


def official_state_dict(
    seed: int,
    *,
    vocab: int = 29,
    d_model: int = 16,
    n_layer: int = 2,
    d_state: int = 8,
    d_inner: int | None = None,
    attn_layer_idx: tuple[int, ...] = (),
    head_dim: int = 1,
    rotary_inv_freq: int = 0,
) -> dict[str, np.ndarray]:
    """Every key of the official SSMLMHeadModel at these sizes, float32; `rotary_inv_freq` R > 0
    adds the (R/2,) `rotary_emb.inv_freq` buffer to each attention layer."""
    rng = np.random.default_rng(seed)
    d, N, V = d_model, d_state, vocab
    F = 4 * d if d_inner is None else d_inner
    H, N2 = d // head_dim, N // 2

    def normal(*shape, std=1.0):
        return (std * rng.standard_normal(shape)).astype(np.float32)

    def linear(prefix, n_out, n_in):
        sd[f"{prefix}.weight"] = normal(n_out, n_in, std=1.0 / np.sqrt(n_in))
        sd[f"{prefix}.bias"] = normal(n_out, std=0.1)

    def norm(prefix):
        sd[f"{prefix}.weight"] = (1.0 + normal(d, std=0.2)).astype(np.float32)
        sd[f"{prefix}.bias"] = normal(d, std=0.1)

    sd: dict[str, np.ndarray] = {}
    embedding = normal(V, d, std=1.0)
    sd["backbone.embeddings.word_embeddings.weight"] = embedding
    for i in range(n_layer):
        p = f"backbone.layers.{i}"
        norm(f"{p}.norm1")
        norm(f"{p}.norm2")
        linear(f"{p}.mlp.fc1", F, d)
        linear(f"{p}.mlp.fc2", d, F)
        m = f"{p}.mixer"
        if i in attn_layer_idx:
            linear(f"{m}.Wqkv", 3 * d, d)
            linear(f"{m}.out_proj", d, d)
            if rotary_inv_freq:
                exponents = np.arange(0, rotary_inv_freq, 2, dtype=np.float32) / rotary_inv_freq
                sd[f"{m}.rotary_emb.inv_freq"] = (1.0 / 10000.0**exponents).astype(np.float32)
            continue
        for name in ("q_proj", "k_proj", "v_proj", "output_linear"):
            linear(f"{m}.{name}", d, d)
        B_shift = normal(d, N, std=0.3)
        B_shift[:, 0] += 1.0  # near the e_1 init, but every tap of B matters
        sd[f"{m}.ssm_k_kernel.kernel.B"] = B_shift
        sd[f"{m}.ssm_k_kernel.kernel.C"] = normal(1, d, N, std=1.0 / np.sqrt(N))
        sd[f"{m}.ssm_k_D"] = normal(d)
        k = f"{m}.kernel.kernel"
        sd[f"{k}.log_dt"] = rng.uniform(np.log(1e-3), np.log(1e-1), H).astype(np.float32)
        sd[f"{k}.inv_A_real"] = (np.log(0.5) + normal(H, N2, std=0.5)).astype(np.float32)
        sd[f"{k}.A_imag"] = (np.pi * np.arange(N2) + normal(H, N2, std=0.3)).astype(np.float32)
        sd[f"{k}.B"] = (np.array([1.0, 0.0]) + normal(H, N2, 2, std=0.3)).astype(np.float32)
        sd[f"{k}.C"] = normal(1, H, N2, 2, std=np.sqrt(0.5))
        sd[f"{m}.D"] = normal(H)
    norm("backbone.ln_f")
    sd["lm_head.weight"] = embedding.copy()
    return sd
