"""The run loop: data, compiled steps, logging, evaluation, checkpoints, resume and signals."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
import time
from typing import Any, Callable, Iterator

import jax

from h3_jax import models
from h3_jax.train import workdir as wd
from h3_jax.train.checkpoint import Checkpoints
from h3_jax.train.data import TrainData
from h3_jax.train.evaluate import Evaluator, eval_batch_size
from h3_jax.train.metrics_log import JsonlLog, NonFiniteLoss, Window, progress_bar, read_jsonl
from h3_jax.train.optim import make_optimizer
from h3_jax.train.run_config import RunConfig
from h3_jax.train.sharding import check_divisible, make_data_mesh, replicate, shard_batch
from h3_jax.train.step import init_state, make_eval_step, make_train_step


@dataclasses.dataclass
class RunResult:
    summary: dict[str, Any]
    status: str  # "completed" | "interrupted" | "diverged"
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
    """Everything one training run needs, built once; `train()` drives it."""

    def __init__(self, config: RunConfig, workdir: str, *, read_only: bool = False):
        t = config.train
        self.config, self.workdir = config, workdir
        self.mesh = make_data_mesh()
        check_divisible(t.batch_size // t.micro_batches, self.mesh,
                        "train.batch_size / train.micro_batches")
        self.model = models.LM(config.model)
        self.tx, self.lr_schedule = make_optimizer(config.optim, t.steps, config.model)
        self.data = TrainData(config.task, t.data, t.data_seed, t.batch_size)
        self.train_steps = make_train_step(
            self.model, self.tx, self.lr_schedule, self.data.labels_per_example, t.micro_batches
        )
        self.evaluate = Evaluator(
            make_eval_step(self.model, self.data.test_labels_per_example), self.data.test,
            eval_batch_size(t.eval_batch_size, self.mesh), self.mesh,
        )
        self.checkpoints = Checkpoints(
            wd.path(workdir, wd.CHECKPOINTS), t.keep_checkpoints, read_only=read_only
        )
        self.is_main = jax.process_index() == 0

    def fresh_state(self) -> Any:
        state = init_state(self.model, self.tx, self.config.train.seed, self.config.task.seq_len)
        return replicate(state, self.mesh)


def train(
    config: RunConfig,
    workdir: str,
    *,
    resume: bool = False,
    show_progress: bool | None = None,
    echo: Callable[[str], None] = print,
) -> RunResult:
    """Train (or continue) the run in `workdir`; always ends by writing summary.json."""
    run = Run(config, workdir)
    t = config.train
    state = run.fresh_state()
    start, window, last_train, last_eval = 0, Window(), None, None
    latest = run.checkpoints.latest_step() if resume else None
    if latest is not None:
        state, meta = run.checkpoints.restore(latest, state)
        start, window = latest, Window(meta.get("window"))
        last_eval = meta.get("last_eval")
        echo(f"resuming from step {start}")
    if run.is_main:
        if not resume:
            wd.write_config(workdir, config)
        log = JsonlLog(wd.path(workdir, wd.METRICS), keep_through_step=start if resume else -1)
        records = read_jsonl(log.path)
        last_train = next((r for r in reversed(records) if r["kind"] == "train"), None)

    saved = {"step": start}

    def save(step: int, eval_result: dict | None) -> None:
        if saved["step"] == step and eval_result is None:
            return  # this step is already on disk (a signal right after a periodic save)
        saved["step"] = step
        meta = {"step": step, "window": window.sums(), "last_eval": last_eval,
                "eval_accuracy": None if eval_result is None else eval_result["accuracy"]}
        run.checkpoints.save(step, state, meta)

    def write(record: dict) -> None:
        if run.is_main:
            log.write(record)

    step, status, stop_signal, error, steps_per_s = start, "completed", None, None, None
    t_start = time.perf_counter()
    compile_s, timed_from, timed_step0 = 0.0, None, start
    bar = progress_bar(t.steps, start, show_progress if run.is_main else False)
    try:
        with stop_on_signals() as flag:
            while step < t.steps:
                if flag["signal"] is not None:
                    stop_signal, status = flag["signal"], "interrupted"
                    window.flush()
                    save(step, None)
                    break
                chunk = shard_batch(run.data.chunk(step, t.steps_per_call), run.mesh, 1)
                state, metrics = run.train_steps(state, chunk)
                window.add(step, metrics)
                step += t.steps_per_call
                bar.update(t.steps_per_call)
                if timed_from is None:  # the first call compiles; time the rest
                    jax.block_until_ready(metrics)
                    compile_s = time.perf_counter() - t_start
                    timed_from = window_t0 = time.perf_counter()
                    timed_step0 = window_steps0 = step
                if step % t.log_every == 0:
                    means = window.means()
                    now = time.perf_counter()
                    timed = step - window_steps0
                    steps_per_s = timed / (now - window_t0) if timed else None
                    last_train = {"kind": "train", "step": step, **means,
                                  "steps_per_s": steps_per_s,
                                  "tokens_per_s": steps_per_s and
                                  steps_per_s * t.batch_size * config.task.seq_len}
                    write(last_train)
                    bar.set_postfix(loss=f"{means['loss']:.3f}", acc=f"{means['accuracy']:.3f}")
                    window, window_t0, window_steps0 = Window(), now, step
                eval_now = (t.eval_every and step % t.eval_every == 0) or step == t.steps
                eval_result = None
                if eval_now:
                    window.flush()  # never evaluate or save parameters after a NaN step
                    eval_result = run.evaluate(state["params"])
                    last_eval = {"kind": "eval", "step": step, **eval_result}
                    write(last_eval)
                if eval_now or step % t.checkpoint_every == 0:
                    save(step, eval_result)
            if timed_from is not None and step > timed_step0:
                steps_per_s = (step - timed_step0) / (time.perf_counter() - timed_from)
            if step == t.steps and (last_eval is None or last_eval["step"] != step):
                last_eval = {"kind": "eval", "step": step, **run.evaluate(state["params"])}
                write(last_eval)
    except NonFiniteLoss as err:
        status = "diverged"
        good = run.checkpoints.latest_step()
        where = "no checkpoint yet" if good is None else f"last good checkpoint: step {good}"
        error = f"{err}; stopped ({where} in {run.checkpoints.directory})"
        step = err.step
    finally:
        bar.close()
        run.checkpoints.wait()
    best_step = run.checkpoints.best_step()
    best_accuracy = None if best_step is None else run.checkpoints.read_meta(best_step)[
        "eval_accuracy"]
    run.checkpoints.close()
    elapsed = time.perf_counter() - t_start
    summary = {
        "preset": config.preset,
        "status": status,
        "final_step": step,
        "test_accuracy": None if last_eval is None else last_eval["accuracy"],
        "test_loss": None if last_eval is None else last_eval["loss"],
        "train_loss": None if last_train is None else last_train["loss"],
        "train_accuracy": None if last_train is None else last_train["accuracy"],
        "best_step": best_step,
        "best_test_accuracy": best_accuracy,
        "elapsed_s": elapsed,
        "compile_s": compile_s,
        "steps_per_s": steps_per_s,
        "workdir": workdir,
    }
    if run.is_main:
        log.close()
        wd.write_json(wd.path(workdir, wd.SUMMARY), summary)
    return RunResult(summary, status, stop_signal, error)
