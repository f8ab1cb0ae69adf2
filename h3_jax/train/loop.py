"""The run loop of every training run: `h3-jax train` (one replica) and every study cell (one
replica per seed, trained together in one vmapped step; see `replicas.py`).

A run lives in a work directory: `config.json`, `metrics.jsonl` (train windows and evaluations,
per-replica values as lists, and a "session" record each time training starts or resumes: when,
and the environment it ran in), orbax checkpoints (the latest few and the best by mean eval
accuracy) and `summary.json`. It resumes from its latest checkpoint, stops cleanly on SIGINT /
SIGTERM, pauses at a deadline, stops early once every replica reaches `stop_at`, and stops when
no replica has a finite loss left (a replica that diverges alone leaves NaN in its records and
the others go on).
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
import time
from typing import Any, Callable, Iterator, Sequence

import jax
import numpy as np

from h3_jax import models
from h3_jax.train import formats, processes
from h3_jax.train import workdir as wd
from h3_jax.train.checkpoint import Checkpoints, CheckpointWriteError
from h3_jax.train.config import ConfigError, RunConfig, check
from h3_jax.train.evaluate import Evaluator, eval_batch_size
from h3_jax.train.lock import WorkdirBusy, workdir_lock
from h3_jax.train.metrics_log import (
    JsonlLog,
    NonFiniteLoss,
    Window,
    finite_or_none,
    progress_bar,
    read_jsonl,
)
from h3_jax.train.optim import make_optimizer
from h3_jax.train.replicas import (
    ReplicaData,
    init_replicas,
    make_replica_eval_step,
    make_replica_train_step,
)
from h3_jax.train.sharding import check_divisible, make_mesh, replicate, shard_batch, with_mesh


@dataclasses.dataclass
class RunResult:
    summary: dict[str, Any]
    status: str  # "completed" | "paused" | "interrupted" | "diverged" | "failed" (a write)
    signal: int | None = None
    error: str | None = None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[dict[str, int | None]]:
    """Turn SIGINT / SIGTERM into a flag the loop polls, so it can save before exiting."""
    flag: dict[str, int | None] = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag["signal"] = signum
        signal.signal(signum, previous[signum])  # a second one acts immediately

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class Run:
    """Everything a run of `config` with replicas (seeds[r], data_seeds[r]) needs, built once."""

    def __init__(self, config: RunConfig, workdir: str, seeds: Sequence[int],
                 data_seeds: Sequence[int], *, read_only: bool = False):
        t = config.train
        self.config, self.workdir = config, workdir
        self.seeds, self.data_seeds = list(seeds), list(data_seeds)
        if len(self.seeds) != len(self.data_seeds) or not self.seeds:
            raise ConfigError(f"{len(self.seeds)} seeds but {len(self.data_seeds)} data seeds")
        self.mesh = make_mesh(t.seq_shards)
        check_divisible(t.batch_size // t.micro_batches, self.mesh,
                        "train.batch_size / train.micro_batches")
        self.model = models.LM(config.model)
        self.tx, self.lr_schedule = make_optimizer(config.optim, t.steps, config.model)
        self.data = ReplicaData(config.task, t.data, self.data_seeds, t.batch_size)
        self.train_steps = with_mesh(self.mesh, make_replica_train_step(
            self.model, self.tx, self.lr_schedule, self.data.labels_per_example, t.micro_batches
        ))
        self.evaluate = Evaluator(
            with_mesh(self.mesh, make_replica_eval_step(self.model,
                                                        self.data.test_labels_per_example)),
            self.data.tests, eval_batch_size(t.eval_batch_size, self.mesh), self.mesh,
        )
        self.checkpoints = Checkpoints(
            wd.path(workdir, wd.CHECKPOINTS), t.keep_checkpoints, read_only=read_only
        )
        self.is_main = processes.is_main()

    def fresh_state(self) -> Any:
        state = init_replicas(self.model, self.tx, self.seeds, self.config.task.seq_len)
        return replicate(state, self.mesh)

    def restore(self, step: int) -> tuple[Any, dict[str, Any]]:
        """(state, meta) of the checkpoint at `step`, converted to the current format."""
        return formats.restore_checkpoint(self.checkpoints, step, self.fresh_state(), self.config)

    def chunk(self, step: int) -> Any:
        """Batches of the next compiled call, leaves (R, k, B, L), rows split over the mesh."""
        return shard_batch(self.data.chunk(step, self.config.train.steps_per_call), self.mesh, 2)


def train(
    config: RunConfig,
    workdir: str,
    *,
    seeds: Sequence[int] | None = None,
    data_seeds: Sequence[int] | None = None,
    resume: bool = False,
    stop_at: float | None = None,
    deadline: float | None = None,
    show_progress: bool | None = None,
    echo: Callable[[str], None] = print,
) -> RunResult:
    """Train (or, with `resume`, continue from its latest checkpoint) the run in `workdir`.

    Replica r trains with `train.seed=seeds[r]` and `train.data_seed=data_seeds[r]`; by default
    one replica with the config's seeds (with `seeds` given, the data seeds default to them).
    `stop_at`: stop after the first evaluation at which every replica's test accuracy is at
    least this. `deadline` (a `time.time()` value): the first evaluation past it saves a
    checkpoint and returns status "paused"; training again with `resume` continues there.
    Always ends by writing summary.json (status "completed", "paused", "interrupted",
    "diverged", or "failed" when a checkpoint or log could not be written, e.g. on a full disk;
    the earlier checkpoints stay loadable). The run holds `workdir` (see `lock.py`):
    WorkdirBusy if another live process trains there.
    """
    check(config)  # also for configs built in Python, which skip apply_overrides
    with contextlib.ExitStack() as hold:
        busy = None
        if processes.is_main():  # process 0 holds the directory for every process of the run
            try:
                hold.enter_context(workdir_lock(workdir))
            except ConfigError as err:
                busy = err
        # Every process stops here until all have passed their checks, so none sees the files
        # process 0 is about to write; and all stop together if process 0 cannot hold workdir.
        if processes.any_process(busy is not None):
            raise busy or WorkdirBusy(f"workdir {workdir}: process 0 of this run cannot hold it")
        seeds, data_seeds = _replica_seeds(config, workdir, seeds, data_seeds, resume)
        return _train(config, workdir, seeds=seeds, data_seeds=data_seeds, resume=resume,
                      stop_at=stop_at, deadline=deadline, show_progress=show_progress, echo=echo)


def _replica_seeds(config: RunConfig, workdir: str, seeds: Sequence[int] | None,
                   data_seeds: Sequence[int] | None, resume: bool):
    """(seeds, data seeds) of the replicas: as given; else those the run in workdir was
    started with (on resume); else the config's one pair. Data seeds default to the seeds."""
    if seeds is None and resume and wd.has_run(workdir):
        return wd.read_seeds(workdir)
    if seeds is None:
        return [config.train.seed], [config.train.data_seed] if data_seeds is None else data_seeds
    return seeds, seeds if data_seeds is None else data_seeds


def _train(config: RunConfig, workdir: str, *, seeds: Sequence[int], data_seeds: Sequence[int],
           resume: bool, stop_at: float | None, deadline: float | None,
           show_progress: bool | None, echo: Callable[[str], None]) -> RunResult:
    t = config.train
    run = Run(config, workdir, seeds, data_seeds)
    start, meta = 0, {}
    latest = run.checkpoints.latest_step() if resume else None
    if latest is not None:
        state, meta = run.restore(latest)
        start = latest
        echo(f"resuming from step {start}")
    else:
        state = run.fresh_state()
    log_window, eval_window = (Window(meta.get("windows", {}).get(k)) for k in ("log", "eval"))
    timing = meta.get("timing") or {"wall_s": 0.0, "train_s": 0.0, "eval_s": 0.0,
                                     "compile_s": 0.0, "timed_steps": 0}
    last_eval, last_train = meta.get("last_eval"), None
    if run.is_main:
        if not wd.has_run(workdir):
            wd.write_config(workdir, config, run.seeds, run.data_seeds)
        formats.upgrade_metrics_log(wd.path(workdir, wd.METRICS))
        log = JsonlLog(wd.path(workdir, wd.METRICS), keep_through_step=start)
        # A paused run may resume on another machine: each stretch names its own CPU.
        log.write({"kind": "session", "step": start,
                   "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   "environment": wd.environment()})
        last_train = next((r for r in reversed(read_jsonl(log.path)) if r["kind"] == "train"),
                          None)
    wall_before, t_start = timing["wall_s"], time.perf_counter()

    def save(step: int, eval_result: dict | None) -> None:
        timing["wall_s"] = wall_before + time.perf_counter() - t_start
        meta = {
            "format": formats.CHECKPOINT_FORMAT, "step": step,
            "windows": {"log": log_window.sums(), "eval": eval_window.sums()},
            "timing": dict(timing), "last_eval": last_eval,
            "eval_accuracy": None if eval_result is None else float(np.mean(eval_result)),
        }
        run.checkpoints.save(step, state, meta)

    def write(record: dict) -> None:
        if run.is_main:
            log.write(record)

    step, status, stop_signal, error = start, "completed", None, None
    compiled, compiled_in_window, mark = False, False, time.perf_counter()
    queued = None  # the metrics of the last call dispatched
    log_rate = Rate(start)
    tokens = t.batch_size * config.task.seq_len * len(run.seeds)  # per step, all replicas
    bar = progress_bar(t.steps, start, show_progress if run.is_main else False)
    try:
        with stop_on_signals() as flag:
            while step < t.steps and not reached(last_eval, stop_at):
                # Processes agree on a signal (any one may have it) through a collective, once
                # per log window: it costs milliseconds.
                agree = processes.count() == 1 or step % t.log_every == 0
                stop_signal = processes.first_signal(flag["signal"]) if agree else None
                if stop_signal is not None:
                    status = "interrupted"
                    timing["train_s"] += time.perf_counter() - mark
                    if run.checkpoints.latest_step() != step:
                        save(step, None)
                    break
                state, metrics = run.train_steps(state, run.chunk(step))
                # Queue one call behind the running one, not a whole log window: Python handles
                # a signal only once it regains control, so a stop then comes within two calls.
                if queued is not None:
                    jax.block_until_ready(queued)
                queued = metrics
                log_window.add(step, metrics)
                eval_window.add(step, metrics)
                step += t.steps_per_call
                bar.update(t.steps_per_call)
                now = time.perf_counter()
                if not compiled:  # the first call compiles; keep it out of the rate
                    jax.block_until_ready(metrics)
                    now = time.perf_counter()
                    timing["compile_s"] += now - mark
                    mark, compiled, compiled_in_window = now, True, True
                else:
                    timing["timed_steps"] += t.steps_per_call
                if step % t.log_every == 0:
                    rate = log_rate.update(step, compiled_in_window)
                    compiled_in_window = False
                    last_train = {"kind": "train", "step": step, **log_window.means(),
                                  "steps_per_s": rate, "tokens_per_s": rate and rate * tokens}
                    write(last_train)
                    bar.set_postfix(loss=_short(last_train["loss"]),
                                    acc=_short(last_train["accuracy"]))
                    log_window = Window()
                eval_now = (t.eval_every and step % t.eval_every == 0) or step == t.steps
                result = None
                if eval_now:
                    now = time.perf_counter()
                    timing["train_s"] += now - mark
                    train_means = eval_window.means()  # raises on a step with no finite loss
                    result = run.evaluate(state["params"])
                    last_eval = {"kind": "eval", "step": step, "lr": train_means["lr"],
                                 "train_loss": train_means["loss"],
                                 "test_accuracy": result["accuracy"],
                                 "test_loss": finite_or_none(result["loss"])}
                    write(last_eval)
                    bar.set_postfix(acc=_short(result["accuracy"]))
                    eval_window = Window()
                    mark = time.perf_counter()
                    timing["eval_s"] += mark - now
                pause = (eval_now and deadline is not None
                         and processes.any_process(time.time() > deadline))
                done = step == t.steps or reached(last_eval, stop_at)
                if eval_now or step % t.checkpoint_every == 0:
                    save(step, None if result is None else result["accuracy"])
                if pause and not done:
                    status = "paused"
                    break
            else:
                timing["train_s"] += time.perf_counter() - mark
    except NonFiniteLoss as err:
        status = "diverged"
        good = run.checkpoints.latest_step()
        where = "no checkpoint yet" if good is None else f"last good checkpoint: step {good}"
        error = f"{err}; stopped ({where} in {run.checkpoints.directory})"
        step = err.step
    except (CheckpointWriteError, OSError) as err:
        status, error = "failed", _write_failure(err, run)
    finally:
        bar.close()
        try:
            run.checkpoints.wait()
        except CheckpointWriteError as err:
            status, error = "failed", error or _write_failure(err, run)
    best_checkpoint = run.checkpoints.best_step()
    try:
        run.checkpoints.close()
    except CheckpointWriteError as err:  # orbax raises a failed write once more on closing
        status, error = "failed", error or _write_failure(err, run)
    history = [r for r in read_jsonl(wd.path(workdir, wd.METRICS)) if r["kind"] == "eval"] \
        if run.is_main else []
    summary = {
        "preset": config.preset,
        "status": status,
        "seeds": run.seeds,
        "data_seeds": run.data_seeds,
        "final_step": step,
        "stopped_early": status == "completed" and step < t.steps,
        **final_results(history, last_train),
        "best_checkpoint": best_checkpoint,
        "elapsed_s": wall_before + time.perf_counter() - t_start,
        "compile_s": timing["compile_s"],
        "eval_s": timing["eval_s"],
        "steps_per_s": timing["timed_steps"] / timing["train_s"] if timing["train_s"] else None,
        "workdir": workdir,
    }
    if run.is_main:
        try:
            log.close()
            wd.write_json(wd.path(workdir, wd.SUMMARY), summary)
        except OSError as err:  # the disk that failed a checkpoint may fail these too
            error = f"{error or 'training stopped'}; summary.json not written ({err.strerror})"
    return RunResult(summary, status, stop_signal, error)


def _write_failure(err: Exception, run) -> str:
    """One line: what failed, and the checkpoint a resume would start from."""
    what = err if isinstance(err, CheckpointWriteError) else f"writing failed: {err}"
    good = run.checkpoints.latest_step()
    where = "no checkpoint yet" if good is None else f"last complete checkpoint: step {good}"
    return f"{what}; stopped ({where} in {run.checkpoints.directory})"


class Rate:
    """Steps per second between log lines (wall clock, evaluations included); None for a
    window that holds the compiling call."""

    def __init__(self, step: int):
        self.step, self.time = step, time.perf_counter()

    def update(self, step: int, compiled_in_window: bool) -> float | None:
        now = time.perf_counter()
        rate = None if compiled_in_window else (step - self.step) / (now - self.time)
        self.step, self.time = step, now
        return rate


def reached(last_eval: dict | None, stop_at: float | None) -> bool:
    """Whether the last evaluation has every replica at or above `stop_at`."""
    return bool(stop_at is not None and last_eval is not None
                and min(last_eval["test_accuracy"]) >= stop_at)


def final_results(history: list[dict], last_train: dict | None) -> dict[str, Any]:
    """Per-replica lists: the last and the best test accuracy (and its step), the last test
    loss, and the last logged train loss and accuracy."""
    out: dict[str, Any] = {"test_accuracy": None, "test_loss": None, "best_test_accuracy": None,
                           "best_step": None}
    if history:
        curves = np.asarray([h["test_accuracy"] for h in history])  # (evals, R)
        out.update(test_accuracy=history[-1]["test_accuracy"], test_loss=history[-1]["test_loss"],
                   best_test_accuracy=curves.max(axis=0).tolist(),
                   best_step=[history[i]["step"] for i in curves.argmax(axis=0)])
    out["train_loss"] = None if last_train is None else last_train["loss"]
    out["train_accuracy"] = None if last_train is None else last_train["accuracy"]
    return out


def _short(values: list) -> str:
    return " ".join("nan" if v is None else f"{v:.3f}" for v in values)
