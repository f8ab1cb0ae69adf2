"""The language model: token embedding, pre-norm blocks (mixer + MLP), final norm, tied head."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Array, Int

from h3_jax.models.attention import CausalSelfAttention
from h3_jax.models.baselines import GSS, S4D
from h3_jax.models.common import SEQUENCE_MODES, check_mode, compute_dtype, dense, gelu, residual_std
from h3_jax.models.config import LMConfig
from h3_jax.models.h3 import H3
from h3_jax.models.tokens import check_token_ids, lookup

MIXER_MODULES = {"h3": H3, "s4d": S4D, "gss": GSS, "attention": CausalSelfAttention}


def layer_norm(config: LMConfig, name: str) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=config.layer_norm_eps, dtype=jnp.float32, name=name)


class MLP(nn.Module):
    """fc1 (D -> d_inner), GELU (tanh approximation), fc2 (d_inner -> D, residual-rescaled init)."""

    config: LMConfig

    @nn.compact
    def __call__(self, x):
        c = self.config
        hidden = gelu(dense(c, c.mlp_width, "fc1")(x))
        return dense(c, c.d_model, "fc2", residual_std(c))(hidden)


class Block(nn.Module):
    """x += dropout(mixer(norm1(x))); x += dropout(mlp(norm2(x))). The residual stays float32.
    With `mlp_width` 0 the block is the mixer half alone (no norm2, no MLP), or with
    `identity_mlp` the mixer half and then x += dropout(norm2(x))."""

    config: LMConfig
    mixer: str

    @nn.compact
    def __call__(self, x, *, mode, state, position, cache_len, train):
        c = self.config
        drop = nn.Dropout(c.resid_dropout, deterministic=not train)
        mixed, new_state = MIXER_MODULES[self.mixer](c, name="mixer")(
            layer_norm(c, "norm1")(x),
            mode=mode, state=state, position=position, cache_len=cache_len, train=train,
        )
        x = x + drop(mixed.astype(jnp.float32))
        if c.mlp_width:
            x = x + drop(MLP(c, name="mlp")(layer_norm(c, "norm2")(x)).astype(jnp.float32))
        elif c.identity_mlp:
            x = x + drop(layer_norm(c, "norm2")(x))
        return x, new_state


class LM(nn.Module):
    """Decoder-only LM. `LM(config).apply({"params": p}, tokens)` -> logits (B, L, V) float32.

    mode "fft" (default) or "scan" runs whole sequences (B, L). Dropout is off unless
    `train=True`, which needs `rngs={"dropout": key}`. The modes "prefill" (tokens (B, L)) and
    "step" (tokens (B,), with `state`) are the recurrent views behind h3_jax.generate; they
    return (logits, state). Out-of-range token ids: see h3_jax.models.tokens.
    `head_positions` (B, M) int, whole-sequence modes only: logits (B, M, V) at just those
    positions, so a large vocabulary costs only where there are labels (MQAR: 4 of 64).
    """

    config: LMConfig

    @nn.compact
    def __call__(
        self,
        tokens: Int[Array, "B L"],
        mode: str = "fft",
        train: bool = False,
        state=None,
        cache_len: int | None = None,
        head_positions: Int[Array, "B M"] | None = None,
    ):
        check_mode(mode)
        if head_positions is not None and mode not in SEQUENCE_MODES:
            raise ValueError(f"head_positions: only for modes {SEQUENCE_MODES}, got {mode!r}")
        c = self.config
        check_token_ids(tokens, c.vocab_size)
        step = mode == "step"
        if tokens.ndim != (1 if step else 2):
            expected = "(B,)" if step else "(B, L)"
            raise ValueError(f"tokens: must have shape {expected} for mode={mode!r}, got {tokens.shape}")
        position = state["position"] if step else 0
        init = nn.initializers.normal(c.initializer_range)
        embedding = self.param("embedding", init, (c.vocab_size, c.d_model), jnp.float32)
        x = lookup(embedding, tokens)
        if c.max_position_embeddings:
            table = self.param(
                "position_embedding", init, (c.max_position_embeddings, c.d_model), jnp.float32
            )
            if step:
                x = x + lookup(table, position)
            else:
                x = x + table[: _checked_length(tokens.shape[1], c.max_position_embeddings)]
        x = nn.Dropout(c.embed_dropout, deterministic=not train)(x)
        layer_states = []
        for i in range(c.n_layer):
            x, s = Block(c, c.layer_mixer(i), name=f"layers_{i}")(
                x,
                mode=mode,
                state=None if state is None else state["layers"][i],
                position=position,
                cache_len=cache_len,
                train=train,
            )
            layer_states.append(s)
        x = layer_norm(c, "ln_f")(x)
        if head_positions is not None:
            x = jnp.take_along_axis(x, head_positions[..., None], axis=1)
        dtype = compute_dtype(c)
        logits = jnp.dot(x.astype(dtype), embedding.T.astype(dtype)).astype(jnp.float32)
        if mode in SEQUENCE_MODES:
            return logits
        length = 1 if step else tokens.shape[1]
        new_position = jnp.asarray(position + length, jnp.int32)
        return logits, {"position": new_position, "layers": tuple(layer_states)}


def _checked_length(length: int, table: int) -> int:
    if length > table:
        raise ValueError(
            f"tokens: sequence length {length} exceeds LMConfig.max_position_embeddings={table}; "
            f"allowed are lengths <= {table}"
        )
    return length

