"""Train R seeds of one configuration together (see `replicas.py`) and record each replica's
test-accuracy curve; optionally checkpointed in a work directory so a long run can resume.

Unlike `loop.train`, a replica whose loss turns NaN does not stop the others: its eval records
simply show it, and the run goes on.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np

from h3_jax import models
from h3_jax.train.checkpoint import Checkpoints
from h3_jax.train.config import ConfigError
from h3_jax.train.metrics_log import progress_bar
from h3_jax.train.optim import make_optimizer
from h3_jax.train.replicas import (
    ReplicaData,
    ReplicaEvaluator,
    init_replicas,
    make_replica_eval_step,
    make_replica_train_step,
)
from h3_jax.train.run_config import RunConfig


def finite_or_none(values: Any) -> list[float | None]:
    """A list of floats for JSON, NaN / Inf (a diverged replica) as None."""
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, np.float64)]


def reached(history: list[dict], stop_at: float | None) -> bool:
    """Whether the last evaluation has every replica at or above `stop_at`."""
    return bool(stop_at is not None and history
                and min(history[-1]["test_accuracy"]) >= stop_at)


def check_cadence(config: RunConfig) -> None:
    """Steps, eval and checkpoint intervals must be whole numbers of compiled calls."""
    t = config.train
    for name in ("steps", "eval_every", "checkpoint_every"):
        value = getattr(t, name)
        if value and value % t.steps_per_call:
            raise ConfigError(
                f"train.{name}={value} is not a multiple of train.steps_per_call={t.steps_per_call}"
            )


def train_replicas(
    config: RunConfig,
    seeds: Sequence[int],
    data_seeds: Sequence[int] | None = None,
    *,
    workdir: str | None = None,
    stop_at: float | None = None,
    deadline: float | None = None,
    show_progress: bool | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train replicas r = 0..R-1 with (`seeds[r]`, `data_seeds[r]`; default the same seeds).

    Returns a JSON-ready dict: per-replica final test accuracy and loss, the eval history
    (step, lr, per-replica mean train loss since the last eval, test accuracy, test loss),
    wall-clock, compile time, and train steps/s (compile and evaluation excluded).
    With `workdir`, checkpoints every `train.checkpoint_every` steps and resumes from the latest.
    With `stop_at`, stops after the first evaluation at which every replica's test accuracy is
    >= stop_at: at 1.0 the best accuracy of every replica can no longer change.
    With `deadline` (a `time.time()` value) and `workdir`, the first evaluation past the deadline
    saves a checkpoint and returns {"paused": True, "step": ...}; calling again resumes there.
    """
    check_cadence(config)
    t = config.train
    seeds = list(seeds)
    data_seeds = list(seeds if data_seeds is None else data_seeds)
    if len(data_seeds) != len(seeds):
        raise ConfigError(f"{len(seeds)} seeds but {len(data_seeds)} data seeds")

    model = models.LM(config.model)
    tx, schedule = make_optimizer(config.optim, t.steps, config.model)
    data = ReplicaData(config.task, t.data, data_seeds, t.batch_size)
    step_fn = make_replica_train_step(
        model, tx, schedule, data.labels_per_example, t.micro_batches
    )
    eval_step = make_replica_eval_step(model, data.test_labels_per_example)
    evaluate = ReplicaEvaluator(eval_step, data.test_chunks(t.eval_batch_size))

    t_start = time.perf_counter()
    state = init_replicas(model, tx, seeds, config.task.seq_len)
    step, history, timing = 0, [], {"train_s": 0.0, "eval_s": 0.0, "compile_s": 0.0,
                                     "timed_steps": 0}
    checkpoints, wall_before = None, 0.0
    if workdir is not None:
        checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"), keep=1)
        latest = checkpoints.latest_step()
        if latest is not None:
            state, meta = checkpoints.restore(latest, state)
            # Re-placed from host: orbax's restored arrays miss the compiled step's cache
            # (a ~20 s recompile per resume on this CPU); the values are unchanged.
            state = jax.tree.map(lambda leaf: jax.device_put(np.asarray(leaf)), state)
            step, history, timing = latest, meta["history"], meta["timing"]
            wall_before = timing["wall_s"]
            echo(f"resuming from step {step}")

    bar = progress_bar(t.steps, step, show_progress)
    pending: list[Any] = []
    first_call = True
    mark = time.perf_counter()
    try:
        while step < t.steps and not reached(history, stop_at):
            state, metrics = step_fn(state, data.chunk(step, t.steps_per_call))
            pending.append(metrics["loss"])
            step += t.steps_per_call
            bar.update(t.steps_per_call)
            if first_call:  # the first call compiles; keep it out of the rate
                jax.block_until_ready(metrics)
                now = time.perf_counter()
                timing["compile_s"] += now - mark
                mark, first_call = now, False
            else:
                timing["timed_steps"] += t.steps_per_call
                if t.steps_per_call * len(pending) >= 1000:  # bound the dispatch queue
                    jax.block_until_ready(metrics)
            eval_now = (t.eval_every and step % t.eval_every == 0) or step == t.steps
            if eval_now:
                losses = np.concatenate([np.asarray(x) for x in pending], axis=1)  # (R, steps)
                now = time.perf_counter()
                timing["train_s"] += now - mark
                result = evaluate(state["params"])
                history.append({
                    "step": step,
                    "lr": float(schedule(step - 1)),
                    "train_loss": finite_or_none(losses.mean(axis=1)),
                    "test_accuracy": result["accuracy"],
                    "test_loss": finite_or_none(result["loss"]),
                })
                pending = []
                bar.set_postfix(acc=" ".join(f"{a:.3f}" for a in result["accuracy"]))
                mark = time.perf_counter()
                timing["eval_s"] += mark - now
            pause = (eval_now and checkpoints is not None and deadline is not None
                     and time.time() > deadline and step < t.steps)
            if checkpoints is not None and eval_now and (
                pause or step == t.steps
                or (t.checkpoint_every and step % t.checkpoint_every == 0)
            ):
                timing["wall_s"] = wall_before + time.perf_counter() - t_start
                checkpoints.save(step, state, {"step": step, "history": history,
                                               "timing": timing})
            if pause:
                break
    finally:
        bar.close()
        if checkpoints is not None:
            checkpoints.wait()
            checkpoints.close()

    if step < t.steps and not reached(history, stop_at):
        return {"paused": True, "step": step}
    last = history[-1]
    curves = np.asarray([h["test_accuracy"] for h in history])  # (evals, R)
    return {
        "paused": False,
        "seeds": seeds,
        "data_seeds": data_seeds,
        "final_step": step,
        "test_accuracy": last["test_accuracy"],
        "test_loss": last["test_loss"],
        "best_test_accuracy": curves.max(axis=0).tolist(),
        "best_step": [history[i]["step"] for i in curves.argmax(axis=0)],
        "stopped_early": step < t.steps,
        "history": history,
        "elapsed_s": wall_before + time.perf_counter() - t_start,
        "compile_s": timing["compile_s"],
        "eval_s": timing["eval_s"],
        "steps_per_s": timing["timed_steps"] / timing["train_s"] if timing["train_s"] else None,
    }
