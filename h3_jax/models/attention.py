"""Causal multi-head self-attention with a key/value cache for recurrent generation."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from h3_jax.models.blocked_attention import DEFAULT_BLOCK, attention_probs, blocked_causal_attention
from h3_jax.models.common import check_mode, compute_dtype, dense, residual_std
from h3_jax.models.config import LMConfig
from h3_jax.models.rotary import apply_rotary

# Whole sequences longer than one block run blocked (blocked_attention.py), attention dropout
# included; shorter ones use the dense score matrix.
ATTENTION_BLOCK = DEFAULT_BLOCK


class CausalSelfAttention(nn.Module):
    """Fused q/k/v projection `Wqkv` (D -> 3D, split as (3, heads, D / heads)), softmax scale
    1/sqrt(head size), `out_proj` with the residual-rescaled init. Softmax in float32.

    `__call__(x, mode, state, position, cache_len, train) -> (y, state)`. The cache holds keys and
    values (B, cache_len, heads, head size); `position` is the index of the step's token.
    """

    config: LMConfig

    @nn.compact
    def __call__(
        self,
        x: Float[Array, "B L D"],
        *,
        mode: str = "fft",
        state=None,
        position=None,
        cache_len: int | None = None,
        train: bool = False,
    ):
        check_mode(mode)
        c = self.config
        D, heads = c.d_model, c.n_heads
        size = D // heads
        qkv = dense(c, 3 * D, "Wqkv")(x)
        if mode == "step":
            qkv = qkv[:, None]  # one position: (B, 1, 3D)
        q, k, v = jnp.moveaxis(qkv.reshape(*qkv.shape[:-1], 3, heads, size), -3, 0)
        if c.rotary_emb_dim:
            # Keys are rotated before they enter the cache; values never are.
            positions = (position if mode == "step" else 0) + jnp.arange(q.shape[1])
            q = apply_rotary(q, positions, c.rotary_emb_dim)
            k = apply_rotary(k, positions, c.rotary_emb_dim)
        new_state = None
        if mode == "step":
            k_cache = jax.lax.dynamic_update_slice_in_dim(state["k"], k.astype(state["k"].dtype), position, 1)
            v_cache = jax.lax.dynamic_update_slice_in_dim(state["v"], v.astype(state["v"].dtype), position, 1)
            visible = (jnp.arange(k_cache.shape[1]) <= position)[None, :]  # (1, T)
            y = self._attend(q, k_cache, v_cache, visible, train)[:, 0]
            new_state = {"k": k_cache, "v": v_cache}
        else:
            length = x.shape[-2]
            if length > ATTENTION_BLOCK:
                rate = c.attn_dropout if train else 0.0
                key = self.make_rng("dropout") if rate > 0 else None
                y = blocked_causal_attention(
                    q, k, v, ATTENTION_BLOCK, dropout_rate=rate, dropout_key=key)
            else:
                causal = jnp.tril(jnp.ones((length, length), bool))
                y = self._attend(q, k, v, causal, train)
            if mode == "prefill":
                if cache_len is None or cache_len < length:
                    raise ValueError(
                        f"cache_len: got {cache_len!r}; prefill of an attention layer needs the "
                        f"key/value cache length, an int >= the prompt length {length}"
                    )
                empty = CausalSelfAttention.init_state(c, x.shape[0], cache_len)
                new_state = {
                    "k": empty["k"].at[:, :length].set(k.astype(empty["k"].dtype)),
                    "v": empty["v"].at[:, :length].set(v.astype(empty["v"].dtype)),
                }
        y = y.reshape(*y.shape[:-2], D)
        return dense(c, D, "out_proj", residual_std(c))(y), new_state

    def _attend(self, q, k, v, visible, train: bool):
        """softmax(q k^T / sqrt(d)) v over the visible keys; q (B, Lq, h, d), k, v (B, Lk, h, d)."""
        probs = attention_probs(q, k, visible)
        probs = nn.Dropout(self.config.attn_dropout)(probs, deterministic=not train)
        return jnp.einsum("bhqk,bkhd->bqhd", probs.astype(v.dtype), v)

    @staticmethod
    def init_state(config: LMConfig, batch_size: int, max_len: int) -> dict[str, Array]:
        """Empty key/value cache for max_len positions, in the compute dtype."""
        shape = (batch_size, max_len, config.n_heads, config.d_model // config.n_heads)
        zeros = jnp.zeros(shape, compute_dtype(config))
        return {"k": zeros, "v": zeros}
