"""LMConfig: every hyperparameter of the language model, validated once at construction."""

from __future__ import annotations

import dataclasses

MIXERS = ("h3", "s4d", "gss", "attention")
DISCRETIZATIONS = ("bilinear", "zoh")
A_INITS = ("lin", "inv")
COMPUTE_DTYPES = ("float32", "bfloat16")

# Each SSM mixer's own discretization and A init, used when the config leaves them as None:
# H3 and GSS follow the official H3 code (bilinear, S4D-Lin); S4D is safari's S4D block (ZOH, S4D-Inv).
MIXER_SSM_DEFAULTS = {
    "h3": ("bilinear", "lin"),
    "gss": ("bilinear", "lin"),
    "s4d": ("zoh", "inv"),
    "attention": ("bilinear", "lin"),
}


@dataclasses.dataclass(frozen=True)
class LMConfig:
    """A decoder-only language model: token embedding, n_layer pre-norm blocks, tied LM head.

    Layer i uses causal self-attention when i is in `attn_layer_idx` (or when mixer is
    "attention"), and `mixer` otherwise. Frozen and hashable, so it can be a static jit argument.
    """

    vocab_size: int
    """Number of token ids; inputs must lie in [0, vocab_size)."""
    d_model: int = 64
    """Width D of the residual stream."""
    n_layer: int = 2
    """Number of blocks."""
    mixer: str = "h3"
    """Sequence mixer of the non-attention layers: "h3", "s4d", "gss" or "attention" (every layer)."""
    attn_layer_idx: tuple[int, ...] = ()
    """0-based indices of the layers that use attention instead of `mixer` (hybrid models)."""
    d_state: int = 64
    """Real state size, as in the official H3: the shift SSM has d_state taps and the diagonal SSM
    d_state / 2 complex modes (conjugate pairs). Must be even."""
    head_dim: int = 1
    """H3 head dimension P: the diagonal SSM runs per head on P x P outer products, H = D / P heads."""
    n_heads: int = 1
    """Heads of the attention layers; d_model must be divisible by it."""
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
    attn_dropout: float = 0.1
    """Dropout on the attention probabilities, when training."""
    max_position_embeddings: int = 0
    """Length of a learned absolute position table added to the embedding; 0 means none."""
    rotary_emb_dim: int = 0
    """Rotary position embedding dimension of the attention layers (GPT-NeoX layout, on the first
    rotary_emb_dim features of each head); 0 means none. Even, at most d_model / n_heads."""
    discretization: str | None = None
    """Diagonal SSM discretization, "bilinear" or "zoh"; None means the mixer's own default
    (bilinear for h3 and gss, zoh for s4d)."""
    A_init: str | None = None
    """Diagonal SSM eigenvalue init, "lin" (S4D-Lin) or "inv" (S4D-Inv); None means the mixer's own
    default (lin for h3 and gss, inv for s4d)."""
    dt_min: float = 1e-3
    """Lower end of the log-uniform init of the SSM step size dt."""
    dt_max: float = 1e-1
    """Upper end of the log-uniform init of the SSM step size dt."""
    gss_expand: int = 3
    """GSS only: width of the gate branch v as a multiple of d_model (the GSS paper uses 3)."""
    initializer_range: float = 0.02
    """Std of the normal init of linear layers and of the embedding."""
    layer_norm_eps: float = 1e-5
    """Epsilon of every LayerNorm."""
    compute_dtype: str = "float32"
    """dtype of matmuls and activations: "float32" or "bfloat16". Parameters, SSM kernels, FFTs,
    scan states, LayerNorms and the returned logits stay float32 (complex64)."""

    def __post_init__(self):
        _positive_int("vocab_size", self.vocab_size)
        _positive_int("d_model", self.d_model)
        _positive_int("n_layer", self.n_layer)
        _one_of("mixer", self.mixer, MIXERS)
        if not isinstance(self.attn_layer_idx, tuple):
            # Accept any sequence but store a tuple, so the config stays hashable.
            object.__setattr__(self, "attn_layer_idx", tuple(self.attn_layer_idx))
        for i in self.attn_layer_idx:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.n_layer:
                raise ValueError(
                    f"LMConfig.attn_layer_idx: {self.attn_layer_idx!r} contains {i!r}; allowed are "
                    f"distinct ints in [0, n_layer={self.n_layer})"
                )
        if len(set(self.attn_layer_idx)) != len(self.attn_layer_idx):
            raise ValueError(f"LMConfig.attn_layer_idx: {self.attn_layer_idx!r} has repeated layers")
        _positive_int("d_state", self.d_state)
        if self.d_state % 2:
            raise ValueError(
                f"LMConfig.d_state: got {self.d_state}; must be even (d_state / 2 complex modes)"
            )
        _positive_int("head_dim", self.head_dim)
        _divides("head_dim", self.head_dim, self.d_model)
        _positive_int("n_heads", self.n_heads)
        _divides("n_heads", self.n_heads, self.d_model)
        if self.d_inner is not None and (
            isinstance(self.d_inner, bool) or not isinstance(self.d_inner, int) or self.d_inner < 0
        ):
            raise ValueError(
                f"LMConfig.d_inner: got {self.d_inner!r}; allowed are None (4 * d_model), 0 (no "
                "MLP) or a positive int"
            )
        if not isinstance(self.identity_mlp, bool):
            raise ValueError(f"LMConfig.identity_mlp: got {self.identity_mlp!r}; allowed is a bool")
        if self.identity_mlp and self.mlp_width:
            raise ValueError(
                f"LMConfig.identity_mlp: True needs d_inner=0 (no MLP), got d_inner={self.d_inner!r}"
            )
        for name in ("embed_dropout", "resid_dropout", "attn_dropout"):
            rate = getattr(self, name)
            if not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
                raise ValueError(f"LMConfig.{name}: got {rate!r}; allowed is a float in [0, 1)")
        if isinstance(self.max_position_embeddings, bool) or not isinstance(
            self.max_position_embeddings, int
        ) or self.max_position_embeddings < 0:
            raise ValueError(
                f"LMConfig.max_position_embeddings: got {self.max_position_embeddings!r}; "
                "allowed is an int >= 0 (0 = no position embeddings)"
            )
        size = self.d_model // self.n_heads
        if (isinstance(self.rotary_emb_dim, bool) or not isinstance(self.rotary_emb_dim, int)
                or self.rotary_emb_dim < 0 or self.rotary_emb_dim % 2 or self.rotary_emb_dim > size):
            raise ValueError(
                f"LMConfig.rotary_emb_dim: got {self.rotary_emb_dim!r}; allowed is an even int in "
                f"[0, d_model / n_heads = {size}] (0 = no rotary embeddings)"
            )
        if self.discretization is not None:
            _one_of("discretization", self.discretization, DISCRETIZATIONS + (None,))
        if self.A_init is not None:
            _one_of("A_init", self.A_init, A_INITS + (None,))
        if not 0 < self.dt_min <= self.dt_max:
            raise ValueError(
                f"LMConfig.dt_min/dt_max: got dt_min={self.dt_min}, dt_max={self.dt_max}; "
                "need 0 < dt_min <= dt_max"
            )
        _positive_int("gss_expand", self.gss_expand)
        if not self.initializer_range > 0:
            raise ValueError(
                f"LMConfig.initializer_range: got {self.initializer_range!r}; must be > 0"
            )
        if not self.layer_norm_eps > 0:
            raise ValueError(f"LMConfig.layer_norm_eps: got {self.layer_norm_eps!r}; must be > 0")
        _one_of("compute_dtype", self.compute_dtype, COMPUTE_DTYPES)

    @property
    def mlp_width(self) -> int:
        """The MLP's hidden width: d_inner, or 4 * d_model when d_inner is None; 0: no MLP."""
        return 4 * self.d_model if self.d_inner is None else self.d_inner

    @property
    def n_modes(self) -> int:
        """Complex modes per channel of the diagonal SSM (d_state / 2)."""
        return self.d_state // 2

    @property
    def ssm_discretization(self) -> str:
        """The discretization the mixer actually uses."""
        return self.discretization or MIXER_SSM_DEFAULTS[self.mixer][0]

    @property
    def ssm_A_init(self) -> str:
        """The A init the mixer actually uses."""
        return self.A_init or MIXER_SSM_DEFAULTS[self.mixer][1]

    def layer_mixer(self, i: int) -> str:
        """The mixer of layer i: "attention" for the layers in attn_layer_idx, else `mixer`."""
        return "attention" if i in self.attn_layer_idx else self.mixer

    @property
    def has_attention(self) -> bool:
        return any(self.layer_mixer(i) == "attention" for i in range(self.n_layer))

    def replace(self, **changes) -> LMConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"LMConfig.{name}: got {value!r}; allowed is an int >= 1")


def _one_of(name: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"LMConfig.{name}: got {value!r}; allowed are {allowed}")


def _divides(name: str, value: int, d_model: int) -> None:
    if d_model % value:
        raise ValueError(
            f"LMConfig.{name}: got {value}, which does not divide d_model={d_model}; "
            f"allowed are divisors of d_model"
        )
