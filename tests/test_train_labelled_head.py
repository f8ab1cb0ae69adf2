"""The LM head at the labelled positions only: same loss, accuracy, gradients and eval sums as
the head at every position; a batch over the bound is refused."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from h3_jax import mixers, models, tasks
from h3_jax.train.data import TrainData, max_labels
from h3_jax.train.step import (
    eval_step_fn,
    labelled_logits,
    labelled_positions,
    masked_loss_and_accuracy,
)
from test_models_helpers import fast_compile, trained_like_params  # noqa: F401

TASKS = {
    "mqar": dict(name="mqar", vocab_size=64, seq_len=32, num_kv_pairs=3, num_examples=16,
                 num_test_examples=8),
    "ih-answer": dict(name="induction_head", vocab_size=12, input_seq_len=15,
                      train_mask="answer", num_examples=16, num_test_examples=8),
}


def _setup(task_name):
    fields = dict(TASKS[task_name])
    task = tasks.get_task(fields.pop("name"), **fields)
    config = models.LMConfig(vocab_size=task.vocab_size, d_model=16, n_layer=2,
                             mixer=mixers.H3Config(d_state=8), embed_dropout=0.0)
    model = models.LM(config)
    params = trained_like_params(config)
    batch = TrainData(task, "fixed", 0, 8).batch(0)
    return task, model, params, jax.tree.map(jnp.asarray, batch)


@pytest.mark.parametrize("task_name", list(TASKS))
def test_labelled_head_equals_full_head(task_name):
    task, model, params, batch = _setup(task_name)
    bound = task.labels_per_example
    assert bound < batch.inputs.shape[-1] and max_labels(jax.device_get(batch)) <= bound

    def loss(params, labels_per_example):
        logits, targets, mask = labelled_logits(model, params, batch, labels_per_example)
        total, correct, count, _ = masked_loss_and_accuracy(logits, targets, mask)
        return total / count, (correct, count, logits.shape)

    grad = jax.jit(jax.value_and_grad(loss, has_aux=True), static_argnums=1)
    (full, (c_full, n_full, shape_full)), g_full = grad(params, None)
    (part, (c_part, n_part, shape_part)), g_part = grad(params, bound)
    assert shape_full[1] == batch.inputs.shape[-1] and shape_part[1] == bound
    np.testing.assert_allclose(part, full, rtol=1e-6)
    assert float(c_part) == float(c_full) and float(n_part) == float(n_full)
    norm = optax.tree.norm(g_full)
    assert float(optax.tree.norm(jax.tree.map(jnp.subtract, g_part, g_full))) <= 1e-6 * float(norm)

    eval_full = eval_step_fn(model)(params, batch)
    eval_part = eval_step_fn(model, bound)(params, batch)
    for key in eval_full:
        np.testing.assert_allclose(eval_part[key], eval_full[key], rtol=1e-6, err_msg=key)


def test_head_positions_are_rows_of_the_full_logits():
    _, model, params, batch = _setup("mqar")
    full = model.apply({"params": params}, batch.inputs)
    positions = jnp.tile(jnp.array([[0, 5, 31]]), (batch.inputs.shape[0], 1))
    part = model.apply({"params": params}, batch.inputs, head_positions=positions)
    np.testing.assert_allclose(part, full[:, [0, 5, 31]], rtol=1e-5, atol=1e-6)


def test_train_batch_over_the_bound_is_refused():
    task = tasks.get_task("induction_head", vocab_size=12, input_seq_len=15, train_mask="answer",
                          num_examples=16, num_test_examples=8)
    data = TrainData(task, "fixed", 0, 8)
    data.train = tasks.Batch(data.train.inputs, data.train.targets,
                             data.train.mask | np.eye(1, data.train.mask.shape[1], 0, dtype=bool))
    with pytest.raises(ValueError, match="more than its labels_per_example=1"):
        data.batch(0)


def test_labelled_positions_in_order_with_unfilled_slots():
    mask = np.zeros((4, 12), bool)
    mask[0, [0, 3, 11]] = True  # a label at position 0, and at the end
    mask[1, [5]] = True  # fewer labels than slots
    mask[3, [1, 2, 4, 6]] = True  # exactly as many as slots
    positions, filled = labelled_positions(jnp.asarray(mask), 4)
    np.testing.assert_array_equal(positions[0, :3], [0, 3, 11])
    np.testing.assert_array_equal(positions[1, :1], [5])
    np.testing.assert_array_equal(positions[3], [1, 2, 4, 6])
    np.testing.assert_array_equal(
        filled, [[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    # Every filled slot is labelled, every label has a filled slot: the masked sums are equal.
    picked = np.take_along_axis(mask, np.asarray(positions), axis=-1)
    assert np.all(picked[np.asarray(filled)]) and filled.sum() == mask.sum()
