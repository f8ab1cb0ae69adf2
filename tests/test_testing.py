"""h3_jax.testing.check_mixer: the built-in mixers pass it, and it fails a mixer that breaks each
part of the contract (a test kit that cannot fail proves nothing)."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import pytest

from h3_jax import mixers
from h3_jax.layers.dense import dense
from h3_jax.testing import TOLERANCES, check_mixer

BUILT_IN = [
    # Two H3 configs cover both head layouts (P = 4, P = 1) and both discretizations; spec
    # strings are covered by s4d and gss.
    ("h3-heads", mixers.H3Config(head_dim=4, d_state=8), (24,)),
    ("h3-zoh-inv", mixers.H3Config(discretization="zoh", A_init="inv"), (24,)),
    ("s4d", "s4d", (24,)),
    ("gss", "gss", (24,)),
    ("attention", mixers.AttentionConfig(n_heads=2, rotary_emb_dim=4), (24,)),
    # Past one block of 128 the whole sequence runs blocked (online softmax).
    ("attention-blocked", mixers.AttentionConfig(n_heads=2), (136,)),
]


@pytest.mark.parametrize("spec, lengths", [c[1:] for c in BUILT_IN], ids=[c[0] for c in BUILT_IN])
def test_built_in_mixers_keep_the_contract(spec, lengths):
    errors = check_mixer(spec, lengths=lengths)
    assert set(errors) >= {"prefill_step", "jit", "bfloat16", "causality"}
    for check, error in errors.items():
        assert error <= TOLERANCES[check], check
    config = mixers.default_config(spec) if isinstance(spec, str) else spec
    if type(config).ALGORITHMS:
        assert "algorithms" in errors


# Broken mixers: each is H3 or GSS with one part of the contract undone.


class Peeking(mixers.H3):
    """Adds the next position's input: not causal."""

    Config = dataclasses.make_dataclass("PeekingConfig", [], bases=(mixers.H3Config,), frozen=True)

    def __call__(self, x, *, train=False):
        return super().__call__(x, train=train) + jnp.roll(x, -1, axis=1)


class ForgetfulStep(mixers.GSS):
    """Its step drops the state: prefill + step differ from the whole sequence."""

    Config = dataclasses.make_dataclass("ForgetfulConfig", [], bases=(mixers.GSSConfig,),
                                        frozen=True)

    def step(self, x_t, state, *, position=None):
        zero = jnp.zeros_like(state["diag"])
        y, _ = super().step(x_t, {"diag": zero}, position=position)
        return y, state


class WrongScan(mixers.S4D):
    """Its "scan" algorithm drops the SSM's skip term."""

    Config = dataclasses.make_dataclass("WrongScanConfig", [], bases=(mixers.S4DConfig,),
                                        frozen=True)

    def __call__(self, x, *, train=False):
        y = super().__call__(x, train=train)
        return y if self.config.algorithm == "fft" else 0.9 * y


class Undeclared(mixers.GSS):
    """Declares an SSM parameter it does not have."""

    Config = dataclasses.make_dataclass("UndeclaredConfig", [], bases=(mixers.GSSConfig,),
                                        frozen=True)
    ssm_parameters = ("diag_ssm/no_such_parameter",)


class HalfPrecisionLoses(mixers.GSS):
    """With a bf16 compute dtype, its output loses a tenth (a bug only bf16 shows)."""

    Config = dataclasses.make_dataclass("HalfConfig", [], bases=(mixers.GSSConfig,), frozen=True)

    def __call__(self, x, *, train=False):
        y = super().__call__(x, train=train)
        return 0.9 * y if self.shared.compute_dtype == "bfloat16" else y


class WrongStateShape(mixers.GSS):
    """Its init_state disagrees with what prefill returns."""

    Config = dataclasses.make_dataclass("WrongStateConfig", [], bases=(mixers.GSSConfig,),
                                        frozen=True)

    @classmethod
    def init_state(cls, config, shared, batch_size, max_len=0):
        return {"diag": jnp.zeros((batch_size, shared.d_model, 1), jnp.complex64)}


BROKEN = [
    (Peeking, "causality"),
    (ForgetfulStep, "prefill_step"),
    (WrongScan, "algorithms"),
    (Undeclared, "ssm_parameters"),
    (HalfPrecisionLoses, "bfloat16"),
    (WrongStateShape, "init_state"),
]


@pytest.mark.parametrize("cls, check", BROKEN, ids=[c.__name__ for c, _ in BROKEN])
def test_a_broken_mixer_fails_by_name(cls, check):
    with pytest.raises(AssertionError, match=check):
        check_mixer(cls.Config())


def test_a_mixer_named_by_import_path_is_found():
    errors = check_mixer(f"{__name__}:Dense")
    assert errors["causality"] == 0.0


class Dense(mixers.Mixer):
    """A position-wise mixer: the smallest that keeps the contract (state: nothing)."""

    Config = dataclasses.make_dataclass("DenseConfig", [], bases=(mixers.MixerConfig,),
                                        frozen=True)

    def setup(self):
        self.proj = dense(self.shared, self.shared.d_model)

    def __call__(self, x, *, train=False):
        return self.proj(x).astype(jnp.float32)

    def prefill(self, x, *, cache_len=0):
        return self(x), {}

    def step(self, x_t, state, *, position=None):
        return self.proj(x_t).astype(jnp.float32), state

    @classmethod
    def init_state(cls, config, shared, batch_size, max_len=0):
        return {}
