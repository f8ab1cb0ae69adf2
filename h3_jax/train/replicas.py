"""R independent runs of one configuration trained together: one compiled step, `vmap`ped.

Every leaf of a replica state carries a leading replica axis (R, ...): parameters, optimizer
state, step and dropout key. Replica r is the run `h3-jax train` makes with
`train.seed=seeds[r]` and `train.data_seed=data_seeds[r]` (its own init, dropout, dataset and
data order), so a replica's trajectory equals that single run's up to float32 rounding (vmapped
matmuls may sum in another order). On an overhead-bound CPU, R small models in one call cost
about as much as one.

The run loop (`loop.py`) trains every run this way, one replica for `h3-jax train`; the batch
axis of each replica is split over the devices.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import optax

from h3_jax import models, tasks
from h3_jax.train.data import TrainData, stack
from h3_jax.train.step import Metrics, TrainState, eval_step_fn, init_train_state, train_steps_fn


def unstack_tree(tree: Any, index: int) -> Any:
    """Replica `index` of a stacked pytree."""
    return jax.tree.map(lambda leaf: leaf[index], tree)


def init_replicas(
    model: models.LM, tx: optax.GradientTransformation, seeds: Sequence[int], seq_len: int
) -> TrainState:
    """The stacked train states of `init_train_state(model, tx, seed, seq_len)` for every seed.

    One compiled, vmapped init: far cheaper than R eager `model.init` calls on a CPU.
    """
    init = jax.vmap(lambda seed: init_train_state(model, tx, seed, seq_len))
    return jax.jit(init)(jnp.asarray(seeds, jnp.int32))


def make_replica_train_step(
    model: models.LM,
    tx: optax.GradientTransformation,
    lr_schedule: Callable[[Any], Any],
    labels_per_example: int | None = None,
    micro_batches: int = 1,
) -> Callable[[TrainState, tasks.Batch], tuple[TrainState, Metrics]]:
    """Jitted: (state (R, ...), batches (R, k, B, L)) -> (state, metrics (R, k)); state donated."""
    steps = train_steps_fn(model, tx, lr_schedule, labels_per_example, micro_batches)
    return jax.jit(over_replicas(steps), donate_argnums=0)


def make_replica_eval_step(
    model: models.LM, labels_per_example: int | None = None
) -> Callable[[Any, tasks.Batch], dict[str, jax.Array]]:
    """Jitted: (params (R, ...), batch (R, b, L)) -> sums of loss, correct, count, each (R,)."""
    return jax.jit(over_replicas(eval_step_fn(model, labels_per_example)))


def over_replicas(fn: Callable) -> Callable:
    """`fn` mapped over the leading replica axis of every argument and result: `jax.vmap`, or
    for one replica `fn` itself between a squeeze and an expand of that axis (free in XLA). A
    vmapped size-1 axis turns each matmul into a batched one, which XLA:CPU runs slower: the
    one-replica train step of the 2-layer H3 on associative recall took 25% longer vmapped."""
    batched = jax.vmap(fn)

    def mapped(*args):
        if jax.tree.leaves(args)[0].shape[0] != 1:
            return batched(*args)
        out = fn(*jax.tree.map(lambda leaf: leaf[0], args))
        return jax.tree.map(lambda leaf: leaf[None], out)

    return mapped


class ReplicaData:
    """One `TrainData` per replica; batches stacked along a leading replica axis."""

    def __init__(self, task: Any, kind: str, data_seeds: Sequence[int], batch_size: int):
        self.replicas = [TrainData(task, kind, seed, batch_size) for seed in data_seeds]
        self.labels_per_example = self.replicas[0].labels_per_example
        self.test_labels_per_example = max(d.test_labels_per_example for d in self.replicas)

    def chunk(self, step: int, k: int) -> tasks.Batch:
        """Leaves (R, k, B, L): replica r's batches of steps step..step+k-1."""
        return stack([data.chunk(step, k) for data in self.replicas])

    @property
    def tests(self) -> list[tasks.Batch]:
        """Every replica's test set."""
        return [data.test for data in self.replicas]
