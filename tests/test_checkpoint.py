"""Orbax checkpoints round-trip the whole train state exactly; retention keeps latest N + best."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from h3_jax import models
from h3_jax.train.checkpoint import Checkpoints
from h3_jax.train.config import OptimConfig
from h3_jax.train.optim import make_optimizer


# The model whose parameter names h3_like_params uses: one H3 layer of width 4.
H3_LIKE = models.LMConfig(vocab_size=10, d_model=4, n_layer=1)


def h3_like_params():
    """Parameters named like an H3 layer's (both optimizer groups present), no model compile."""
    rng = np.random.default_rng(0)
    array = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)  # noqa: E731
    return {
        "layers_0": {
            "mixer": {
                "diag_ssm": {"log_dt": array(4), "inv_A_real": array(4, 2), "A_imag": array(4, 2),
                             "B": array(4, 2, 2), "C": array(4, 2, 2), "D": array(4)},
                "shift_ssm": {"B": array(4, 4), "C": array(4, 4), "D": array(4)},
                "q_proj": {"kernel": array(4, 4), "bias": array(4)},
            },
        },
        "embedding": array(10, 4),
    }


@pytest.fixture(scope="module")
def trained_state():
    """A state after two AdamW updates with random gradients: every moment is non-trivial."""
    tx, _ = make_optimizer(OptimConfig(lr=1e-2, clip_norm=1.0), steps=10, model=H3_LIKE)
    params = h3_like_params()
    assert set(jax.tree.leaves(models.param_labels(params, H3_LIKE))) == {"ssm", "rest"}

    @jax.jit
    def make():
        state = {"params": params, "opt_state": tx.init(params),
                 "step": jnp.zeros((), jnp.int32),
                 "rng": jax.random.key_data(jax.random.key(3))}
        for i in range(2):
            grads = jax.tree.map(lambda x: jnp.sin(x * (i + 1)), state["params"])
            updates, opt = tx.update(grads, state["opt_state"], state["params"])
            state = state | {"params": jax.tree.map(jnp.add, state["params"], updates),
                             "opt_state": opt, "step": state["step"] + 1}
        return state

    return make()


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_save_restore_round_trips_params_and_optimizer_state_exactly(tmp_path, trained_state):
    ckpt = Checkpoints(str(tmp_path / "ck"), keep=2)
    ckpt.save(7, trained_state, {"step": 7, "eval_accuracy": 0.5, "window": {"count": 0}})
    ckpt.wait()
    template = jax.tree.map(jnp.zeros_like, trained_state)
    restored, meta = ckpt.restore(7, template)
    ckpt.close()
    assert_trees_equal(restored, trained_state)
    assert int(restored["step"]) == 2
    assert meta["eval_accuracy"] == 0.5 and meta["step"] == 7


def test_retention_keeps_the_latest_n_and_the_best(tmp_path, trained_state):
    ckpt = Checkpoints(str(tmp_path / "ck"), keep=2)
    for step, accuracy in [(1, 0.3), (2, 0.9), (3, None), (4, 0.4), (5, None), (6, None)]:
        ckpt.save(step, trained_state, {"step": step, "eval_accuracy": accuracy})
    ckpt.wait()
    assert ckpt.steps() == [2, 5, 6]
    assert ckpt.latest_step() == 6 and ckpt.best_step() == 2
    ckpt.close()


def test_a_read_only_checkpoint_directory_opens_without_warnings(tmp_path, trained_state, caplog):
    ckpt = Checkpoints(str(tmp_path / "ck"))
    ckpt.save(3, trained_state, {"step": 3})
    ckpt.close()
    with caplog.at_level(logging.WARNING):
        reader = Checkpoints(str(tmp_path / "ck"), read_only=True)
        assert reader.latest_step() == 3
        reader.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
