"""Recurrent generation with an explicit state pytree: init_state, prefill, step, generate,
and last_logits (the next-token logits after a sequence of any length, in bounded memory; also
compiled ahead of time by compile_last_logits).

The state is {"position": int32 scalar, "max_len": int32 scalar, "layers": (one per layer)},
each layer's state as its mixer defines it (h3_jax.mixers): the shift SSM's last d_state inputs
and the diagonal SSM's complex state for H3, a key/value cache of max_len positions for
attention. `prefill` runs the fast whole-sequence path (FFT) and reads the states off it;
`step` advances one token. Prefill on a prefix, then stepping through the rest, gives the logits of
one full forward pass. All functions take the config first; it is static under jit.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from h3_jax.mixers import mixer_of
from h3_jax.models import LM, LMConfig
from h3_jax.models.tokens import check_token_ids

State = dict


def init_state(config: LMConfig, batch_size: int, max_len: int = 0) -> State:
    """The zero state before any token. `max_len` sizes the caches of mixers that keep one
    (attention's keys and values); it is unused otherwise."""
    if config.uses_cache and max_len < 1:
        raise ValueError(
            f"init_state: max_len={max_len}; a model with attention layers needs max_len >= 1 "
            "(the key/value cache length)"
        )
    max_len = max_len if config.uses_cache else 0
    layers = tuple(
        mixer_of(mixer).init_state(mixer, config.shared, batch_size, max_len)
        for mixer in map(config.layer_mixer, range(config.n_layer))
    )
    return {
        "position": jnp.zeros((), jnp.int32),
        "max_len": jnp.asarray(max_len, jnp.int32),
        "layers": layers,
    }


def prefill(
    config: LMConfig, params, tokens: Int[Array, "B L"], max_len: int | None = None
) -> tuple[Float[Array, "B L V"], State]:
    """Logits for every prompt position and the state after the prompt.

    `max_len` (>= L) sizes the attention caches; it is needed only when the model has attention.
    """
    check_token_ids(tokens, config.vocab_size)
    length = tokens.shape[-1]
    cache_len = _cache_len(config, length, max_len)
    return _prefill(config, params, tokens, cache_len)


def step(
    config: LMConfig, params, state: State, token: Int[Array, " B"]
) -> tuple[Float[Array, "B V"], State]:
    """Advance one token: logits (B, V) for the next position and the new state."""
    check_token_ids(token, config.vocab_size, name="token")
    _check_room(config, state)
    return _step(config, params, state, token)


def generate(
    config: LMConfig,
    params,
    prompt: Int[Array, "B L"],
    max_new_tokens: int,
    key: Array,
    temperature: float = 0.0,
) -> Int[Array, "B T"]:
    """The max_new_tokens tokens that follow the prompt: greedy when temperature is 0, else
    sampled from softmax(logits / temperature). One compiled program: prefill, then a lax.scan."""
    check_token_ids(prompt, config.vocab_size, name="prompt")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"generate: max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    if not temperature >= 0:
        raise ValueError(f"generate: temperature must be >= 0, got {temperature!r}")
    cache_len = prompt.shape[-1] + max_new_tokens
    if config.max_position_embeddings and cache_len > config.max_position_embeddings:
        raise ValueError(
            f"generate: prompt length + max_new_tokens = {cache_len} exceeds "
            f"LMConfig.max_position_embeddings={config.max_position_embeddings}"
        )
    return _generate(config, params, prompt, key, max_new_tokens, float(temperature))


def last_logits(
    config: LMConfig, params, tokens: Int[Array, "B L"], prefill_len: int = 4096
) -> Float[Array, "B V"]:
    """Logits for the position after the last token: the final row of the full forward pass.

    The first min(L, prefill_len) tokens go through the whole-sequence path (`prefill`), the rest
    through the recurrent `step` inside one compiled `lax.scan`, so the activation memory is that
    of a prefill_len-token forward whatever L is: sequences of 10^6 tokens fit in a few hundred MB.
    """
    check_token_ids(tokens, config.vocab_size)
    return _last_logits(config, params, tokens, _last_logits_prefill(config, tokens, prefill_len))


def compile_last_logits(
    config: LMConfig, params, tokens: Int[Array, "B L"], prefill_len: int = 4096
) -> Callable[[Any, Int[Array, "B L"]], Float[Array, "B V"]]:
    """`last_logits` compiled now for arrays shaped like (params, tokens), called as
    `f(params, tokens)`: lets a caller time compiling apart from running. Token values are not
    checked; pass ids in [0, vocab_size)."""
    prefill = _last_logits_prefill(config, tokens, prefill_len)
    return _last_logits.lower(config, params, tokens, prefill).compile()


def _last_logits_prefill(config: LMConfig, tokens, prefill_len) -> int:
    if isinstance(prefill_len, bool) or not isinstance(prefill_len, int) or prefill_len < 1:
        raise ValueError(f"last_logits: prefill_len must be an int >= 1, got {prefill_len!r}")
    length = tokens.shape[-1]
    if config.max_position_embeddings and length > config.max_position_embeddings:
        raise ValueError(
            f"last_logits: sequence length {length} exceeds LMConfig.max_position_embeddings="
            f"{config.max_position_embeddings}"
        )
    return min(length, prefill_len)


def _cache_len(config: LMConfig, length: int, max_len: int | None) -> int:
    if not config.uses_cache:
        return 0
    if max_len is None:
        raise ValueError(
            "prefill: max_len is required for a model with attention layers (it sizes the "
            "key/value cache); allowed are ints >= the prompt length"
        )
    if max_len < length:
        raise ValueError(f"prefill: max_len={max_len} is shorter than the prompt ({length} tokens)")
    return max_len


def _check_room(config: LMConfig, state: State) -> None:
    """With a concrete state, refuse to step past the caches or the position table."""
    position, max_len = state["position"], state["max_len"]
    if isinstance(position, jax.core.Tracer) or isinstance(max_len, jax.core.Tracer):
        return
    position, max_len = int(position), int(max_len)
    if config.uses_cache and position >= max_len:
        raise ValueError(
            f"step: position {position} is past the key/value cache (max_len={max_len})"
        )
    if config.max_position_embeddings and position >= config.max_position_embeddings:
        raise ValueError(
            f"step: position {position} is past LMConfig.max_position_embeddings="
            f"{config.max_position_embeddings}"
        )


@functools.partial(jax.jit, static_argnums=(0, 3))
def _prefill(config, params, tokens, cache_len):
    return LM(config).apply({"params": params}, tokens, cache_len=cache_len, method="prefill")


@functools.partial(jax.jit, static_argnums=0)
def _step(config, params, state, token):
    return LM(config).apply({"params": params}, token, state, method="step")


@functools.partial(jax.jit, static_argnums=(0, 3))
def _last_logits(config, params, tokens, prefill_len):
    model = LM(config)
    cache_len = tokens.shape[-1] if config.uses_cache else 0
    logits, state = model.apply(
        {"params": params}, tokens[:, :prefill_len], cache_len=cache_len, method="prefill"
    )

    def one_token(carry, token):
        state, _ = carry
        logits, state = model.apply({"params": params}, token, state, method="step")
        return (state, logits), None

    (_, last), _ = jax.lax.scan(
        one_token, (state, logits[:, -1]), jnp.moveaxis(tokens[:, prefill_len:], 1, 0)
    )
    return last


def _pick(logits, key, temperature: float):
    if temperature == 0.0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, logits / temperature, axis=-1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def _generate(config, params, prompt, key, max_new_tokens, temperature):
    model = LM(config)
    cache_len = prompt.shape[-1] + max_new_tokens if config.uses_cache else 0
    logits, state = model.apply({"params": params}, prompt, cache_len=cache_len, method="prefill")
    keys = jax.random.split(key, max_new_tokens)
    first = _pick(logits[:, -1], keys[0], temperature)

    def one_token(carry, key_t):
        state, token = carry
        logits, state = model.apply({"params": params}, token, state, method="step")
        token = _pick(logits, key_t, temperature)
        return (state, token), token

    _, rest = jax.lax.scan(one_token, (state, first), keys[1:])
    return jnp.concatenate([first[:, None], jnp.moveaxis(rest, 0, 1)], axis=1)
