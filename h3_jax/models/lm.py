"""The language model: token embedding, pre-norm blocks (mixer + MLP), final norm, tied head."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from h3_jax.layers.dense import compute_dtype, dense, gelu, residual_std
from h3_jax.mixers import mixer_of
from h3_jax.models.config import LMConfig
from h3_jax.models.tokens import check_token_ids, lookup


def layer_norm(config: LMConfig) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=config.layer_norm_eps, dtype=jnp.float32)


class MLP(nn.Module):
    """fc1 (D -> d_inner), GELU (tanh approximation), fc2 (d_inner -> D, residual-rescaled init)."""

    config: LMConfig

    @nn.compact
    def __call__(self, x):
        c, s = self.config, self.config.shared
        hidden = gelu(dense(s, c.mlp_width, "fc1")(x))
        return dense(s, c.d_model, "fc2", residual_std(s))(hidden)


class Block(nn.Module):
    """x += dropout(mixer(norm1(x))); x += dropout(mlp(norm2(x))). The residual stays float32.
    With `mlp_width` 0 the block is the mixer half alone (no norm2, no MLP), or with
    `identity_mlp` the mixer half and then x += dropout(norm2(x)).

    Three entry points, as the mixer's: the whole sequence, prefill (-> state) and one step.
    """

    config: LMConfig
    layer: int

    def setup(self):
        c = self.config
        mixer_config = c.layer_mixer(self.layer)
        self.norm1 = layer_norm(c)
        self.mixer = mixer_of(mixer_config)(mixer_config, c.shared)
        if c.mlp_width or c.identity_mlp:
            self.norm2 = layer_norm(c)
        if c.mlp_width:
            self.mlp = MLP(c)
        # Named as the inline Dropout of earlier versions, so its random stream is unchanged.
        self.drop = nn.Dropout(c.resid_dropout, name="Dropout_0")

    def __call__(self, x: Float[Array, "B L D"], *, train: bool) -> Float[Array, "B L D"]:
        mixed = self.mixer(self.norm1(x), train=train)
        return self._second_half(self._add(x, mixed, train), train)

    def prefill(self, x: Float[Array, "B L D"], *, cache_len: int):
        mixed, state = self.mixer.prefill(self.norm1(x), cache_len=cache_len)
        return self._second_half(self._add(x, mixed, False), False), state

    def step(self, x_t: Float[Array, "B D"], state, *, position):
        mixed, state = self.mixer.step(self.norm1(x_t), state, position=position)
        return self._second_half(self._add(x_t, mixed, False), False), state

    def _add(self, x, y, train: bool):
        return x + self.drop(y.astype(jnp.float32), deterministic=not train)

    def _second_half(self, x, train: bool):
        if self.config.mlp_width:
            return self._add(x, self.mlp(self.norm2(x)), train)
        if self.config.identity_mlp:
            return self._add(x, self.norm2(x), train)
        return x


class LM(nn.Module):
    """Decoder-only LM; parameters `LM(config).init(key, tokens)["params"]`, a plain dict.

    - `LM(config).apply({"params": p}, tokens)` -> logits (B, L, V) float32, the whole sequence
      by each mixer's own algorithm. Dropout is off unless `train=True`, which needs
      `rngs={"dropout": key}`. `head_positions` (B, M) int gives logits (B, M, V) at just those
      positions, so a large vocabulary costs only where there are labels (MQAR: 4 of 64).
    - `method="prefill"`: tokens (B, L), `cache_len` -> (logits (B, L, V), state).
    - `method="step"`: token (B,), state -> (logits (B, V), state).
    These are the recurrent views behind h3_jax.generate. The state is {"position": int32,
    "max_len": int32 (the cache length; 0 when no layer keeps a cache), "layers": one state per
    layer}. Out-of-range token ids: see h3_jax.models.tokens.
    """

    config: LMConfig

    def setup(self):
        c = self.config
        init = nn.initializers.normal(c.initializer_range)
        self.embedding = self.param("embedding", init, (c.vocab_size, c.d_model), jnp.float32)
        if c.max_position_embeddings:
            self.position_embedding = self.param(
                "position_embedding", init, (c.max_position_embeddings, c.d_model), jnp.float32
            )
        # Named as the inline Dropout of earlier versions, so its random stream is unchanged.
        self.embed_drop = nn.Dropout(c.embed_dropout, name="Dropout_0")
        self.layers = [Block(c, i) for i in range(c.n_layer)]
        self.ln_f = layer_norm(c)

    def __call__(
        self,
        tokens: Int[Array, "B L"],
        *,
        train: bool = False,
        head_positions: Int[Array, "B M"] | None = None,
    ) -> Float[Array, "B L V"]:
        x = self._embed(tokens, 0, train)
        for block in self.layers:
            x = block(x, train=train)
        x = self.ln_f(x)
        if head_positions is not None:
            x = jnp.take_along_axis(x, head_positions[..., None], axis=1)
        return self._head(x)

    def prefill(self, tokens: Int[Array, "B L"], *, cache_len: int = 0):
        x = self._embed(tokens, 0, False)
        states = []
        for block in self.layers:
            x, state = block.prefill(x, cache_len=cache_len)
            states.append(state)
        state = {
            "position": jnp.asarray(tokens.shape[1], jnp.int32),
            "max_len": jnp.asarray(cache_len, jnp.int32),
            "layers": tuple(states),
        }
        return self._head(self.ln_f(x)), state

    def step(self, token: Int[Array, " B"], state):
        position = state["position"]
        x = self._embed(token, position, False)
        states = []
        for block, layer_state in zip(self.layers, state["layers"]):
            x, layer_state = block.step(x, layer_state, position=position)
            states.append(layer_state)
        new_state = {**state, "position": position + 1, "layers": tuple(states)}
        return self._head(self.ln_f(x)), new_state

    def _embed(self, tokens, position, train: bool):
        """Token (+ position) embedding of tokens (B, L), or of one token (B,) at `position`."""
        c = self.config
        check_token_ids(tokens, c.vocab_size)
        one = not isinstance(position, int)
        if tokens.ndim != (1 if one else 2):
            expected = "(B,) for one step" if one else "(B, L)"
            raise ValueError(f"tokens: must have shape {expected}, got {tokens.shape}")
        x = lookup(self.embedding, tokens)
        if c.max_position_embeddings:
            if one:
                x = x + lookup(self.position_embedding, position)
            else:
                length = _checked_length(tokens.shape[1], c.max_position_embeddings)
                x = x + self.position_embedding[:length]
        return self.embed_drop(x, deterministic=not train)

    def _head(self, x):
        dtype = compute_dtype(self.config.shared)
        return jnp.dot(x.astype(dtype), self.embedding.T.astype(dtype)).astype(jnp.float32)


def _checked_length(length: int, table: int) -> int:
    if length > table:
        raise ValueError(
            f"tokens: sequence length {length} exceeds LMConfig.max_position_embeddings={table}; "
            f"allowed are lengths <= {table}"
        )
    return length
