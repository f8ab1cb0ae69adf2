"""R replicas trained in one vmapped step follow the R single-seed runs they stand for."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from h3_jax import models
from h3_jax.presets import get_preset
from h3_jax.train.config import apply_overrides
from h3_jax.train.data import TrainData
from h3_jax.train.evaluate import Evaluator
from h3_jax.train.optim import make_optimizer
from h3_jax.train.replicas import (
    ReplicaData,
    init_replicas,
    make_replica_eval_step,
    make_replica_train_step,
    unstack_tree,
)
from h3_jax.train.sharding import make_mesh
from h3_jax.train.step import make_train_step

# A small H3 on the paper's AR task, dropout on (the per-replica RNG is under test).
OVERRIDES = [
    "model.d_model=16", "model.n_layer=1", "model.d_inner=32", "model.mixer.d_state=8",
    "model.embed_dropout=0.1",
    "task.num_examples=256", "task.num_test_examples=40",
    "train.batch_size=16", "train.steps=40", "train.steps_per_call=10",
    "optim.warmup_steps=5", "optim.lr=3e-3",
]
SEEDS, DATA_SEEDS = (0, 7), (0, 3)
# float32: a vmapped matmul may sum in another order than the plain one, and Adam amplifies
# such last-bit differences a little over 40 steps.
RTOL, ATOL = 2e-4, 2e-5


@pytest.mark.parametrize("micro_batches", [1, 2])
def test_replicas_equal_separate_runs(micro_batches):
    # With micro-batches each replica's gradient is summed over its slices inside the vmap.
    config = apply_overrides(get_preset("h3-ar"), OVERRIDES)
    t = config.train
    model = models.LM(config.model)
    tx, schedule = make_optimizer(config.optim, t.steps, config.model)

    data = ReplicaData(config.task, t.data, DATA_SEEDS, t.batch_size)
    state = init_replicas(model, tx, SEEDS, config.task.seq_len)
    initial = jax.tree.map(np.asarray, state)  # host copy: the step donates `state`
    step_fn = make_replica_train_step(model, tx, schedule, micro_batches=micro_batches)
    losses = []
    for step in range(0, t.steps, t.steps_per_call):
        state, metrics = step_fn(state, data.chunk(step, t.steps_per_call))
        losses.append(np.asarray(metrics["loss"]))
    losses = np.concatenate(losses, axis=1)  # (R, steps)
    evaluate = Evaluator(make_replica_eval_step(model), data.tests, 16, make_mesh())
    accuracy = evaluate(state["params"])["accuracy"]

    single_step = make_train_step(model, tx, schedule, micro_batches=micro_batches)
    single_eval = make_replica_eval_step(model)  # one replica: the run of `h3-jax train`
    for r, data_seed in enumerate(DATA_SEEDS):
        single_data = TrainData(config.task, t.data, data_seed, t.batch_size)
        # Replica r's init is `init_train_state(seed)` (vmapped); start the single run from it
        # rather than pay for another eager init.
        single = jax.tree.map(jax.numpy.asarray, unstack_tree(initial, r))
        single_losses = []
        for step in range(0, t.steps, t.steps_per_call):
            single, metrics = single_step(single, single_data.chunk(step, t.steps_per_call))
            single_losses.append(np.asarray(metrics["loss"]))
        np.testing.assert_allclose(losses[r], np.concatenate(single_losses), RTOL, ATOL)
        mine = unstack_tree(state, r)
        assert int(mine["step"]) == int(single["step"]) == t.steps
        for a, b in zip(jax.tree.leaves(mine["params"]), jax.tree.leaves(single["params"])):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), RTOL, ATOL)
        reference = Evaluator(single_eval, [single_data.test], 16, make_mesh())
        one = jax.tree.map(lambda leaf: leaf[None], single["params"])
        assert abs(accuracy[r] - reference(one)["accuracy"][0]) < 1e-6

    # Different seeds really are different runs.
    assert not np.allclose(losses[0], losses[1])
