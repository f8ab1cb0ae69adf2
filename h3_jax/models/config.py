"""LMConfig: the language model's hyperparameters, validated once at construction.

The mixer's own settings live in its Config (h3_jax.mixers): `LMConfig(mixer="gss")` takes the
GSS defaults, `LMConfig(mixer=H3Config(head_dim=4))` sets some, and a mixer outside the package
is named by its import path, `LMConfig(mixer="my_mixers:Gated")`.
"""

from __future__ import annotations

import dataclasses

from h3_jax import validate
from h3_jax.layers.dense import Shared
from h3_jax.mixers import AttentionConfig, MixerConfig, default_config, mixer_of

COMPUTE_DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class LMConfig:
    """A decoder-only language model: token embedding, n_layer pre-norm blocks, tied LM head.

    Layer i runs `attention` when i is in `attn_layer_idx`, and `mixer` otherwise. Frozen and
    hashable, so it can be a static jit argument.
    """

    vocab_size: int
    """Number of token ids; inputs must lie in [0, vocab_size)."""
    d_model: int = 64
    """Width D of the residual stream."""
    n_layer: int = 2
    """Number of blocks."""
    mixer: MixerConfig | str = "h3"
    """The sequence mixer of every layer not in attn_layer_idx: its Config, or a spec (a built-in
    name "h3", "s4d", "gss", "attention", or "package.module:ClassName") for its defaults."""
    attn_layer_idx: tuple[int, ...] = ()
    """0-based indices of the layers that run `attention` instead of `mixer` (hybrid models)."""
    attention: AttentionConfig = AttentionConfig()
    """Settings of the attention layers of a hybrid (the layers in attn_layer_idx)."""
    d_inner: int | None = None
    """Hidden width of the MLP; None means 4 * d_model, 0 means blocks without an MLP (the
    mixer-only blocks of Zoology's MQAR and the Mamba paper's synthetic models)."""
    identity_mlp: bool = False
    """With d_inner = 0 only: each block's second half adds its normalised input itself to the
    residual, x += norm2(x), as Zoology's blocks with an Identity state mixer do (its MQAR
    models); False leaves the block the mixer half alone."""
    embed_dropout: float = 0.1
    """Dropout on the token (+ position) embedding, when training."""
    resid_dropout: float = 0.0
    """Dropout on each mixer and MLP output before it is added to the residual, when training."""
    max_position_embeddings: int = 0
    """Length of a learned absolute position table added to the embedding; 0 means none."""
    initializer_range: float = 0.02
    """Std of the normal init of linear layers and of the embedding."""
    layer_norm_eps: float = 1e-5
    """Epsilon of every LayerNorm."""
    compute_dtype: str = "float32"
    """dtype of matmuls and activations: "float32" or "bfloat16". Parameters, SSM kernels, FFTs,
    scan states, LayerNorms and the returned logits stay float32 (complex64)."""

    def __post_init__(self):
        own = "LMConfig"
        validate.positive_int(own, "vocab_size", self.vocab_size)
        validate.positive_int(own, "d_model", self.d_model)
        validate.positive_int(own, "n_layer", self.n_layer)
        try:  # the registry's errors start with "mixer: "
            if isinstance(self.mixer, str):
                object.__setattr__(self, "mixer", default_config(self.mixer))
            if not isinstance(self.mixer, MixerConfig):
                raise ValueError(
                    f"mixer: got {self.mixer!r}; allowed are a mixer's Config or its spec"
                )
            mixer_of(self.mixer)  # a Config that belongs to no Mixer fails here, not at init
        except ValueError as err:
            raise ValueError(f"{own}.{err}") from None
        if not isinstance(self.attention, AttentionConfig):
            raise ValueError(f"LMConfig.attention: got {self.attention!r}; allowed is an AttentionConfig")
        if not isinstance(self.attn_layer_idx, tuple):
            # Accept any sequence but store a tuple, so the config stays hashable.
            object.__setattr__(self, "attn_layer_idx", tuple(self.attn_layer_idx))
        for i in self.attn_layer_idx:
            if not validate.is_int(i) or not 0 <= i < self.n_layer:
                raise ValueError(
                    f"LMConfig.attn_layer_idx: {self.attn_layer_idx!r} contains {i!r}; allowed are "
                    f"distinct ints in [0, n_layer={self.n_layer})"
                )
        if len(set(self.attn_layer_idx)) != len(self.attn_layer_idx):
            raise ValueError(f"LMConfig.attn_layer_idx: {self.attn_layer_idx!r} has repeated layers")
        for config in {self.layer_mixer(i) for i in range(self.n_layer)}:
            config.check_width(self.d_model)
        if self.d_inner is not None and (not validate.is_int(self.d_inner) or self.d_inner < 0):
            raise ValueError(
                f"LMConfig.d_inner: got {self.d_inner!r}; allowed are None (4 * d_model), 0 (no "
                "MLP) or a positive int"
            )
        validate.boolean(own, "identity_mlp", self.identity_mlp)
        if self.identity_mlp and self.mlp_width:
            raise ValueError(
                f"LMConfig.identity_mlp: True needs d_inner=0 (no MLP), got d_inner={self.d_inner!r}"
            )
        validate.probability(own, "embed_dropout", self.embed_dropout)
        validate.probability(own, "resid_dropout", self.resid_dropout)
        if not validate.is_int(self.max_position_embeddings) or self.max_position_embeddings < 0:
            raise ValueError(
                f"LMConfig.max_position_embeddings: got {self.max_position_embeddings!r}; "
                "allowed is an int >= 0 (0 = no position embeddings)"
            )
        validate.positive_float(own, "initializer_range", self.initializer_range)
        validate.positive_float(own, "layer_norm_eps", self.layer_norm_eps)
        validate.one_of(own, "compute_dtype", self.compute_dtype, COMPUTE_DTYPES)

    @property
    def mlp_width(self) -> int:
        """The MLP's hidden width: d_inner, or 4 * d_model when d_inner is None; 0: no MLP."""
        return 4 * self.d_model if self.d_inner is None else self.d_inner

    @property
    def shared(self) -> Shared:
        """The settings every mixer of this model shares."""
        return Shared(self.d_model, self.n_layer, self.initializer_range, self.compute_dtype)

    def layer_mixer(self, i: int) -> MixerConfig:
        """The mixer settings of layer i: `attention` for the layers in attn_layer_idx, else
        `mixer`."""
        return self.attention if i in self.attn_layer_idx else self.mixer

    @property
    def uses_cache(self) -> bool:
        """Whether some layer's recurrent state holds a cache of max_len positions."""
        return any(mixer_of(self.layer_mixer(i)).uses_cache for i in range(self.n_layer))

    def replace(self, **changes) -> LMConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
