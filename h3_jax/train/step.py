"""The train state (a plain dict pytree) and the pure train / eval steps.

TrainState: {"params": dict, "opt_state": optax state, "step": int32 scalar, "rng": uint32 key
data}. The RNG is stored as raw key data so the whole state is plain arrays for jit, donation and
orbax; each step's dropout key is `fold_in(key, step)`, so it depends on nothing but the step.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from h3_jax import models, tasks

TrainState = dict[str, Any]
Metrics = dict[str, jax.Array]


def init_train_state(
    model: models.LM, tx: optax.GradientTransformation, seed: int, seq_len: int
) -> TrainState:
    """Fresh parameters, optimizer state, step 0 and the dropout key, all from `seed`."""
    init_key, dropout_key = jax.random.split(jax.random.key(seed))
    tokens = jnp.zeros((1, seq_len), jnp.int32)
    params = model.init(init_key, tokens)["params"]
    return {
        "params": params,
        "opt_state": tx.init(params),
        "step": jnp.zeros((), jnp.int32),
        "rng": jax.random.key_data(dropout_key),
    }


def masked_loss_and_accuracy(
    logits: jax.Array, targets: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Sums over the masked positions: (cross-entropy, correct argmax, count, per-token CE).

    logits (B, L, V) float, targets (B, L) int, mask (B, L) bool.
    """
    logits = logits.astype(jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    weight = mask.astype(jnp.float32)
    correct = (argmax_last(logits) == targets).astype(jnp.float32)
    return jnp.sum(ce * weight), jnp.sum(correct * weight), jnp.sum(weight), ce


def argmax_last(x: jax.Array, block: int = 128) -> jax.Array:
    """jnp.argmax(x, axis=-1), the first index of the maximum, found block by block when the last
    axis is a multiple of `block`: the maximum of each block, the first block holding the overall
    maximum, then the first maximum inside it. XLA:CPU runs argmax as a two-operand reduction
    that is not vectorised, 10x slower than these plain maxima over a (4096, 8192) array,
    1.6x slower already at two blocks (width 256); one block gains nothing over jnp.argmax.
    Rows holding NaN may differ from jnp.argmax (XLA:CPU's max skips NaN); a NaN loss stops
    training anyway."""
    width = x.shape[-1]
    if width % block or width < 2 * block:
        return jnp.argmax(x, axis=-1)
    blocks = x.reshape(*x.shape[:-1], width // block, block)
    first = jnp.argmax(jnp.max(blocks, axis=-1), axis=-1)
    inside = jnp.take_along_axis(blocks, first[..., None, None], axis=-2)[..., 0, :]
    return first * block + jnp.argmax(inside, axis=-1)


def labelled_logits(
    model: models.LM, params, batch: tasks.Batch, labels_per_example: int | None, **apply_kwargs
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(logits, targets, mask) at the labelled positions only, when a row has at most
    `labels_per_example` = M < L of them (logits (B, M, V)); else at every position (B, L, V).
    The result of the masked loss is the same either way; the LM head then costs M / L."""
    length = batch.inputs.shape[-1]
    if labels_per_example is None or labels_per_example >= length:
        logits = model.apply({"params": params}, batch.inputs, **apply_kwargs)
        return logits, batch.targets, batch.mask
    positions, filled = labelled_positions(batch.mask, labels_per_example)
    logits = model.apply({"params": params}, batch.inputs, head_positions=positions, **apply_kwargs)
    return logits, jnp.take_along_axis(batch.targets, positions, axis=-1), filled


def labelled_positions(mask: jax.Array, slots: int) -> tuple[jax.Array, jax.Array]:
    """(positions (B, M), filled (B, M)) for mask (B, L): slot r of a row holds the position of
    its r-th labelled token, in order; slots past the row's labels hold position 0 and are not
    `filled`. A running count places each label (a sort, its alternative, took 64 ms of a
    2.5 s MQAR step at batch 512 on a 2-core CPU)."""
    rows, length = mask.shape
    rank = jnp.cumsum(mask, axis=-1, dtype=jnp.int32) - 1
    slot = jnp.where(mask & (rank < slots), rank, slots)  # unlabelled, or labels past M: dropped
    positions = jnp.zeros((rows, slots + 1), jnp.int32).at[jnp.arange(rows)[:, None], slot].set(
        jnp.arange(length, dtype=jnp.int32)
    )[:, :slots]
    filled = jnp.arange(slots) < jnp.sum(mask, axis=-1, keepdims=True)
    return positions, filled


def train_steps_fn(
    model: models.LM,
    tx: optax.GradientTransformation,
    lr_schedule: Callable[[Any], Any],
    labels_per_example: int | None = None,
    micro_batches: int = 1,
) -> Callable[[TrainState, tasks.Batch], tuple[TrainState, Metrics]]:
    """The pure (unjitted) k-step function behind `make_train_step`, for callers that
    transform it further (e.g. `vmap` over replicas) before compiling. With
    `labels_per_example` (an upper bound on mask True per row, see `labelled_logits`) the LM
    head runs only at the labelled positions. With `micro_batches` = m > 1 each step sums the
    gradient over m slices of B / m rows in a `lax.scan` (see `batch_gradient`)."""
    gradient = batch_gradient(model, labels_per_example, micro_batches)

    def one_step(state: TrainState, batch: tasks.Batch) -> tuple[TrainState, Metrics]:
        step = state["step"]
        dropout_key = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), step)
        loss, accuracy, grads = gradient(state["params"], batch, dropout_key)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        new_state = {
            "params": optax.apply_updates(state["params"], updates),
            "opt_state": opt_state,
            "step": step + 1,
            "rng": state["rng"],
        }
        metrics = {
            "loss": loss,
            "accuracy": accuracy,
            "grad_norm": optax.tree.norm(grads),
            "lr": lr_schedule(step),
        }
        return new_state, metrics

    def train_steps(state: TrainState, batches: tasks.Batch) -> tuple[TrainState, Metrics]:
        return jax.lax.scan(one_step, state, batches)

    return train_steps


def batch_gradient(
    model: models.LM, labels_per_example: int | None = None, micro_batches: int = 1
) -> Callable[[Any, tasks.Batch, jax.Array], tuple[jax.Array, jax.Array, Any]]:
    """(params, batch, dropout_key) -> (loss, accuracy, grads) of the mean masked loss.

    With `micro_batches` = m > 1 the rows i, i + m, i + 2m, ... form slice i (so a batch
    sharded over devices stays where it is), the slices run one after another in a
    `lax.scan` with dropout keys `fold_in(dropout_key, i)`, and their loss sums and gradients
    are added up before dividing by the batch's label count. Without dropout that is the
    whole batch's gradient; activations are held for B / m rows at a time, which also keeps
    them in cache on a CPU.
    """

    def sums(params, batch: tasks.Batch, dropout_key):
        logits, targets, mask = labelled_logits(
            model, params, batch, labels_per_example, train=True,
            rngs={"dropout": dropout_key},
        )
        loss_sum, correct, count, _ = masked_loss_and_accuracy(logits, targets, mask)
        return loss_sum, (correct, count)

    def whole(params, batch: tasks.Batch, dropout_key):
        def loss_fn(params):
            loss_sum, (correct, count) = sums(params, batch, dropout_key)
            count = jnp.maximum(count, 1.0)
            return loss_sum / count, correct / count

        (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        return loss, accuracy, grads

    def sliced(params, batch: tasks.Batch, dropout_key):
        rows = batch.inputs.shape[0]
        if rows % micro_batches:
            raise ValueError(
                f"micro_batches: {micro_batches} does not divide the batch of {rows} rows"
            )
        slices = jax.tree.map(
            lambda a: jnp.swapaxes(a.reshape(-1, micro_batches, *a.shape[1:]), 0, 1),
            batch,
        )

        def add_slice(total, indexed):
            i, part = indexed
            key = jax.random.fold_in(dropout_key, i)
            (loss_sum, aux), grads = jax.value_and_grad(sums, has_aux=True)(params, part, key)
            return jax.tree.map(jnp.add, total, (loss_sum, aux, grads)), None

        zeros = jax.tree.map(jnp.zeros_like, params)
        zero = jnp.zeros((), jnp.float32)
        (loss_sum, (correct, count), grads), _ = jax.lax.scan(
            add_slice, (zero, (zero, zero), zeros), (jnp.arange(micro_batches), slices)
        )
        count = jnp.maximum(count, 1.0)
        return loss_sum / count, correct / count, jax.tree.map(lambda g: g / count, grads)

    if not isinstance(micro_batches, int) or micro_batches < 1:
        raise ValueError(f"micro_batches: expected a positive int, got {micro_batches!r}")
    # The whole batch draws its dropout from the step's key, slice i of m > 1 from
    # fold_in(key, i); a one-slice scan would add a loop and a gradient accumulator for nothing.
    return whole if micro_batches == 1 else sliced


def make_train_step(
    model: models.LM,
    tx: optax.GradientTransformation,
    lr_schedule: Callable[[Any], Any],
    labels_per_example: int | None = None,
    micro_batches: int = 1,
) -> Callable[[TrainState, tasks.Batch], tuple[TrainState, Metrics]]:
    """A jitted function running k optimizer steps on a stack of k batches, state donated.

    The batch leaves are (k, B, L); the metrics come back as (k,) arrays, one entry per step.
    Fusing k steps into one `lax.scan` pays the per-call dispatch cost once per k steps.
    """
    return jax.jit(
        train_steps_fn(model, tx, lr_schedule, labels_per_example, micro_batches),
        donate_argnums=0,
    )


def eval_step_fn(
    model: models.LM, labels_per_example: int | None = None
) -> Callable[[Any, tasks.Batch], dict[str, jax.Array]]:
    """The pure (unjitted) eval function behind `make_eval_step`."""

    def eval_step(params: Any, batch: tasks.Batch) -> dict[str, jax.Array]:
        logits, targets, mask = labelled_logits(model, params, batch, labels_per_example)
        loss_sum, correct, count, _ = masked_loss_and_accuracy(logits, targets, mask)
        return {"loss_sum": loss_sum, "correct": correct, "count": count}

    return eval_step


def make_eval_step(
    model: models.LM, labels_per_example: int | None = None
) -> Callable[[Any, tasks.Batch], dict[str, jax.Array]]:
    """A jitted function: (params, batch) -> sums of loss, correct and count over the mask."""
    return jax.jit(eval_step_fn(model, labels_per_example))
