"""Causal multi-head self-attention, with a key/value cache as its recurrent state."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from h3_jax import validate
from h3_jax.layers.blocked_attention import DEFAULT_BLOCK, attention_probs, blocked_causal_attention
from h3_jax.layers.dense import Shared, compute_dtype, dense, residual_std
from h3_jax.layers.rotary import apply_rotary
from h3_jax.mixers.base import Mixer, MixerConfig

# Whole sequences longer than one block run blocked (blocked_attention.py), attention dropout
# included; shorter ones use the dense score matrix.
ATTENTION_BLOCK = DEFAULT_BLOCK


@dataclasses.dataclass(frozen=True)
class AttentionConfig(MixerConfig):
    """Heads, dropout and positions of causal self-attention."""

    n_heads: int = 1
    """Number of heads; d_model must be divisible by it."""
    dropout: float = 0.1
    """Dropout on the attention probabilities, when training."""
    rotary_emb_dim: int = 0
    """Rotary position embedding dimension (GPT-NeoX layout, on the first rotary_emb_dim
    features of each head); 0 means none. Even, at most d_model / n_heads."""

    def __post_init__(self):
        validate.positive_int("AttentionConfig", "n_heads", self.n_heads)
        validate.probability("AttentionConfig", "dropout", self.dropout)
        validate.non_negative_int("AttentionConfig", "rotary_emb_dim", self.rotary_emb_dim)

    def check_width(self, d_model: int) -> None:
        validate.divides("AttentionConfig", "n_heads", self.n_heads, d_model)
        size = d_model // self.n_heads
        if self.rotary_emb_dim % 2 or self.rotary_emb_dim > size:
            raise ValueError(
                f"AttentionConfig.rotary_emb_dim: got {self.rotary_emb_dim!r}; allowed is an "
                f"even int in [0, d_model / n_heads = {size}] (0 = no rotary embeddings)"
            )


class Attention(Mixer):
    """Fused q/k/v projection `Wqkv` (D -> 3D, split as (3, heads, D / heads)), softmax scale
    1/sqrt(head size), `out_proj` with the residual-rescaled init. Softmax in float32.

    State: keys and values (B, max_len, heads, head size) in the compute dtype; `position` is
    the index of the step's token.
    """

    Config = AttentionConfig
    uses_cache = True
    config: AttentionConfig

    def setup(self):
        D = self.shared.d_model
        self.Wqkv = dense(self.shared, 3 * D)
        self.out_proj = dense(self.shared, D, std=residual_std(self.shared))
        # Named as the inline Dropout of earlier versions, so its random stream is unchanged.
        self.attn_drop = nn.Dropout(self.config.dropout, name="Dropout_0")

    def __call__(self, x: Float[Array, "B L D"], *, train: bool = False) -> Float[Array, "B L D"]:
        return self._sequence(x, train)[0]

    def prefill(self, x: Float[Array, "B L D"], *, cache_len: int):
        y, k, v = self._sequence(x, False)
        length = x.shape[-2]
        if cache_len is None or cache_len < length:
            raise ValueError(
                f"cache_len: got {cache_len!r}; prefill of an attention layer needs the "
                f"key/value cache length, an int >= the prompt length {length}"
            )
        empty = Attention.init_state(self.config, self.shared, x.shape[0], cache_len)
        state = {
            "k": empty["k"].at[:, :length].set(k.astype(empty["k"].dtype)),
            "v": empty["v"].at[:, :length].set(v.astype(empty["v"].dtype)),
        }
        return y, state

    def step(self, x_t: Float[Array, "B D"], state, *, position):
        q, k, v = self._heads(self.Wqkv(x_t)[:, None], position)  # one position: (B, 1, ...)
        k_cache = jax.lax.dynamic_update_slice_in_dim(state["k"], k.astype(state["k"].dtype), position, 1)
        v_cache = jax.lax.dynamic_update_slice_in_dim(state["v"], v.astype(state["v"].dtype), position, 1)
        visible = (jnp.arange(k_cache.shape[1]) <= position)[None, :]  # (1, T)
        y = self._attend(q, k_cache, v_cache, visible, False)[:, 0]
        return self._out(y), {"k": k_cache, "v": v_cache}

    @classmethod
    def init_state(cls, config: AttentionConfig, shared: Shared, batch_size: int, max_len: int):
        """Empty key/value cache for max_len positions, in the compute dtype."""
        shape = (batch_size, max_len, config.n_heads, shared.d_model // config.n_heads)
        zeros = jnp.zeros(shape, compute_dtype(shared))
        return {"k": zeros, "v": zeros}

    def _heads(self, qkv, first_position):
        """(q, k, v), each (B, L, heads, size), keys and queries rotated at their positions."""
        heads = self.config.n_heads
        size = self.shared.d_model // heads
        q, k, v = jnp.moveaxis(qkv.reshape(*qkv.shape[:-1], 3, heads, size), -3, 0)
        if self.config.rotary_emb_dim:
            # Keys are rotated before they enter the cache; values never are.
            positions = first_position + jnp.arange(q.shape[1])
            q = apply_rotary(q, positions, self.config.rotary_emb_dim)
            k = apply_rotary(k, positions, self.config.rotary_emb_dim)
        return q, k, v

    def _sequence(self, x, train: bool):
        q, k, v = self._heads(self.Wqkv(x), 0)
        length = x.shape[-2]
        if length > ATTENTION_BLOCK:
            rate = self.config.dropout if train else 0.0
            key = self.make_rng("dropout") if rate > 0 else None
            y = blocked_causal_attention(q, k, v, ATTENTION_BLOCK, dropout_rate=rate, dropout_key=key)
        else:
            causal = jnp.tril(jnp.ones((length, length), bool))
            y = self._attend(q, k, v, causal, train)
        return self._out(y), k, v

    def _attend(self, q, k, v, visible, train: bool):
        """softmax(q k^T / sqrt(d)) v over the visible keys; q (B, Lq, h, d), k, v (B, Lk, h, d)."""
        probs = self.attn_drop(attention_probs(q, k, visible), deterministic=not train)
        return jnp.einsum("bhqk,bkhd->bqhd", probs.astype(v.dtype), v)

    def _out(self, y):
        return self.out_proj(y.reshape(*y.shape[:-2], self.shared.d_model))
