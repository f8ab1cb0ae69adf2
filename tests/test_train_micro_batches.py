"""Gradient accumulation over micro-batches: the whole batch's loss, accuracy and gradient
without dropout; slice i = rows i::m with dropout key fold_in(key, i) with dropout; bad counts
refused."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from h3_jax import mixers, models, tasks
from h3_jax.presets import get_preset
from h3_jax.train.config import ConfigError, check
from h3_jax.train.step import (
    batch_gradient,
    labelled_logits,
    make_train_step,
    masked_loss_and_accuracy,
)
from test_models_helpers import fast_compile, trained_like_params  # noqa: F401

ROWS, LENGTH, VOCAB = 8, 12, 11


def _config(dropout: float) -> models.LMConfig:
    return models.LMConfig(vocab_size=VOCAB, d_model=16, n_layer=2,
                           mixer=mixers.H3Config(d_state=8), embed_dropout=dropout,
                           resid_dropout=dropout)


def _batch(seed: int = 0) -> tasks.Batch:
    """Random tokens with an uneven number of labelled positions per row (1 to LENGTH), so
    the slices' label counts differ and only a count-weighted sum gives the batch mean."""
    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, VOCAB, (ROWS, LENGTH), dtype=np.int32)
    targets = rng.integers(0, VOCAB, (ROWS, LENGTH), dtype=np.int32)
    counts = rng.permutation(np.arange(1, ROWS + 1) * LENGTH // ROWS)
    mask = np.arange(LENGTH)[None, :] < counts[:, None]
    return tasks.Batch(jnp.asarray(inputs), jnp.asarray(targets), jnp.asarray(mask))


def _relative(a, b) -> float:
    diff = optax.tree.norm(jax.tree.map(jnp.subtract, a, b))
    return float(diff / optax.tree.norm(b))


@pytest.mark.parametrize("micro_batches", [2, 4, 8])
def test_without_dropout_equals_the_whole_batch(micro_batches):
    config = _config(0.0)
    model, params, batch = models.LM(config), trained_like_params(config), _batch()
    key = jax.random.key(0)
    whole = jax.jit(batch_gradient(model))(params, batch, key)
    sliced = jax.jit(batch_gradient(model, micro_batches=micro_batches))(params, batch, key)
    np.testing.assert_allclose(sliced[0], whole[0], rtol=1e-6)
    np.testing.assert_allclose(sliced[1], whole[1], rtol=1e-6)
    assert _relative(sliced[2], whole[2]) <= 1e-5


def test_with_dropout_each_slice_has_its_own_key():
    config = _config(0.3)
    model, params, batch = models.LM(config), trained_like_params(config), _batch(1)
    key = jax.random.key(3)
    m = 2

    def reference(params):
        total = correct = count = 0.0
        for i in range(m):
            part = jax.tree.map(lambda a: a[i::m], batch)
            logits, targets, mask = labelled_logits(
                model, params, part, None, train=True,
                rngs={"dropout": jax.random.fold_in(key, i)},
            )
            loss_sum, hits, n, _ = masked_loss_and_accuracy(logits, targets, mask)
            total, correct, count = total + loss_sum, correct + hits, count + n
        return total / count, correct / count

    (loss, accuracy), grads = jax.jit(jax.value_and_grad(reference, has_aux=True))(params)
    sliced = jax.jit(batch_gradient(model, micro_batches=m))(params, batch, key)
    np.testing.assert_allclose(sliced[0], loss, rtol=1e-6)
    np.testing.assert_allclose(sliced[1], accuracy, rtol=1e-6)
    assert _relative(sliced[2], grads) <= 1e-5
    # The dropout really acts: the whole batch under one key gives another gradient.
    whole = jax.jit(batch_gradient(model))(params, batch, key)
    assert _relative(whole[2], grads) > 1e-2


def test_train_step_with_micro_batches_matches_the_whole_batch():
    config = _config(0.0)
    model, params, batch = models.LM(config), trained_like_params(config), _batch(2)
    tx = optax.adamw(1e-3, weight_decay=0.1)
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32),
             "rng": jax.random.key_data(jax.random.key(0))}
    stacked = jax.tree.map(lambda a: jnp.stack([a, a[::-1]]), batch)  # two steps
    results = []
    for micro_batches in (1, 4):
        step = make_train_step(model, tx, lambda s: 1e-3, micro_batches=micro_batches)
        results.append(step(jax.tree.map(jnp.copy, state), stacked))
    (whole, whole_metrics), (sliced, sliced_metrics) = results
    assert int(sliced["step"]) == 2
    assert _relative(sliced["params"], whole["params"]) <= 1e-6
    np.testing.assert_allclose(sliced_metrics["loss"], whole_metrics["loss"], rtol=1e-6)


@pytest.mark.parametrize("micro_batches", [0, -2, 2.0])
def test_a_micro_batch_count_that_is_not_a_positive_int_is_refused(micro_batches):
    with pytest.raises(ValueError, match="micro_batches: expected a positive int"):
        batch_gradient(models.LM(_config(0.0)), micro_batches=micro_batches)


def test_a_micro_batch_count_that_does_not_divide_the_batch_is_refused():
    gradient = batch_gradient(models.LM(_config(0.0)), micro_batches=3)
    with pytest.raises(ValueError, match="micro_batches: 3 does not divide the batch of 8 rows"):
        gradient(trained_like_params(_config(0.0)), _batch(), jax.random.key(0))


@pytest.mark.parametrize("micro_batches, message", [
    (0, "train.micro_batches must be positive"),
    (5, "train.batch_size=32 is not a multiple of train.micro_batches=5"),
])
def test_config_check_names_the_fields(micro_batches, message):
    config = get_preset("h3-ar")
    train = dataclasses.replace(config.train, batch_size=32, micro_batches=micro_batches)
    with pytest.raises(ConfigError, match=message):
        check(dataclasses.replace(config, train=train))
