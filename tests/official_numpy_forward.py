"""The official H3 language model's forward pass in float64 NumPy, read off the official state dict.

Written from the reference description of the official checkpoint layout alone (keys, shapes and
how each stored array is used), independently of h3_jax: it stands in for the PyTorch model when
checking that converted weights give the same logits. Head dim 1 for the H3 layers (every
released model); attention layers are causal multi-head self-attention with an optional rotary
embedding (GPT-NeoX layout) on the first `rotary_dim` features of each head.
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-5


def layer_norm(x, weight, bias):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * weight + bias


def linear(x, sd, name):
    """PyTorch Linear: x @ W.T + b with W stored (out, in)."""
    return x @ f64(sd[f"{name}.weight"]).T + f64(sd[f"{name}.bias"])


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def f64(a):
    return np.asarray(a, dtype=np.float64)


def shift_kernel(B, C):
    """Ks[c, j] = sum_n B[c, n] C[c, n + j] for j < N (C taken as 0 past its end). B, C (d, N)."""
    d, N = B.shape
    Ks = np.zeros((d, N))
    for j in range(N):
        Ks[:, j] = np.sum(B[:, : N - j] * C[:, j:], axis=1)
    return Ks


def diag_kernel(log_dt, inv_A_real, A_imag, B_pair, C_pair, L):
    """Bilinear discretisation, K[h, l] = 2 Re sum_n C dB dA^l. Shapes (H,), (H, N2), (H, N2, 2)."""
    dt = np.exp(f64(log_dt))[:, None]
    A = -np.exp(f64(inv_A_real)) + 1j * f64(A_imag)
    B = f64(B_pair)[..., 0] + 1j * f64(B_pair)[..., 1]
    C = f64(C_pair)[..., 0] + 1j * f64(C_pair)[..., 1]
    dA = (1 + dt * A / 2) / (1 - dt * A / 2)
    dB = B * dt / (1 - dt * A / 2)
    powers = dA[..., None] ** np.arange(L)  # (H, N2, L)
    return 2 * np.real(np.sum((C * dB)[..., None] * powers, axis=1))


def causal_conv(u, K):
    """y[b, t, c] = sum_{s <= t} K[c, t - s] u[b, s, c]; u (B, L, c), K (c, >= L)."""
    L = u.shape[1]
    lags = np.arange(L)[:, None] - np.arange(L)[None, :]  # (t, s)
    toeplitz = np.where(lags >= 0, K[:, np.clip(lags, 0, None)], 0.0)  # (c, t, s)
    return np.einsum("cts,bsc->btc", toeplitz, u)


def h3_mixer(x, sd, prefix):
    q = linear(x, sd, f"{prefix}.q_proj")
    k = linear(x, sd, f"{prefix}.k_proj")
    v = linear(x, sd, f"{prefix}.v_proj")
    L = x.shape[1]
    Bs = f64(sd[f"{prefix}.ssm_k_kernel.kernel.B"])
    Cs = f64(sd[f"{prefix}.ssm_k_kernel.kernel.C"])[0]
    Ks = shift_kernel(Bs, Cs)
    if Ks.shape[1] < L:
        Ks = np.pad(Ks, ((0, 0), (0, L - Ks.shape[1])))
    k = causal_conv(k, Ks[:, :L]) + f64(sd[f"{prefix}.ssm_k_D"]) * k
    kv = k * v
    kern = f"{prefix}.kernel.kernel"
    K = diag_kernel(
        sd[f"{kern}.log_dt"], sd[f"{kern}.inv_A_real"], sd[f"{kern}.A_imag"],
        sd[f"{kern}.B"], f64(sd[f"{kern}.C"])[0], L,
    )
    y = causal_conv(kv, K) + f64(sd[f"{prefix}.D"]) * kv
    return linear(q * y, sd, f"{prefix}.output_linear")


def rotary(x, rotary_dim, base=10000.0):
    """GPT-NeoX rotary on the first rotary_dim features of each head; x (B, L, heads, P)."""
    half = rotary_dim // 2
    theta = base ** (-np.arange(0, rotary_dim, 2, dtype=np.float64) / rotary_dim)
    angle = np.arange(x.shape[1])[:, None] * theta  # (L, half)
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:rotary_dim]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin, x[..., rotary_dim:]], -1)


def attention_mixer(x, sd, prefix, n_heads, rotary_dim):
    Bsz, L, d = x.shape
    P = d // n_heads
    qkv = linear(x, sd, f"{prefix}.Wqkv").reshape(Bsz, L, 3, n_heads, P)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    if rotary_dim:
        q, k = rotary(q, rotary_dim), rotary(k, rotary_dim)
    scores = np.einsum("bqhp,bkhp->bhqk", q, k) / math.sqrt(P)
    scores = np.where(np.tril(np.ones((L, L), bool)), scores, -np.inf)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    out = np.einsum("bhqk,bkhp->bqhp", probs, v).reshape(Bsz, L, d)
    return linear(out, sd, f"{prefix}.out_proj")


def official_forward(sd, tokens, n_heads: int = 1, rotary_dim: int = 0):
    """Logits (B, L, V) in float64 of the official model with state dict sd on tokens (B, L)."""
    x = f64(sd["backbone.embeddings.word_embeddings.weight"])[np.asarray(tokens)]
    n_layer = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("backbone.layers."))
    for i in range(n_layer):
        p = f"backbone.layers.{i}"
        h = layer_norm(x, f64(sd[f"{p}.norm1.weight"]), f64(sd[f"{p}.norm1.bias"]))
        if f"{p}.mixer.Wqkv.weight" in sd:
            x = x + attention_mixer(h, sd, f"{p}.mixer", n_heads, rotary_dim)
        else:
            x = x + h3_mixer(h, sd, f"{p}.mixer")
        h = layer_norm(x, f64(sd[f"{p}.norm2.weight"]), f64(sd[f"{p}.norm2.bias"]))
        x = x + linear(gelu_tanh(linear(h, sd, f"{p}.mlp.fc1")), sd, f"{p}.mlp.fc2")
    x = layer_norm(x, f64(sd["backbone.ln_f.weight"]), f64(sd["backbone.ln_f.bias"]))
    return x @ f64(sd["lm_head.weight"]).T
