"""Running a study as named cells: one run config each, its seeds trained together (vmapped), a
JSON per finished cell, resume from checkpoints (also on another machine, see `parked.py`), a
time budget, and cells in parallel workers.

A study script (synthetics.py, mqar.py) names its cells and their configs and writes its own
report; `add_arguments` and `run_study` do the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from typing import Callable

import jax

from h3_jax.train.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    config_from_dict,
    config_tag,
    config_to_dict,
)
from h3_jax.train.loop import train
from h3_jax.train.metrics_log import read_jsonl
from h3_jax.train.workdir import CONFIG, METRICS, environment, write_json
from parked import discard, park, unpark

# What a cell's JSON keeps of its run's summary (besides the history of evaluations).
CELL_RESULTS = ("seeds", "data_seeds", "final_step", "test_accuracy", "test_loss",
                "best_test_accuracy", "best_step", "stopped_early", "elapsed_s", "compile_s",
                "eval_s", "steps_per_s")

ConfigFor = Callable[[str, "int | None", "list[str]"], RunConfig]  # (cell, steps, overrides)


def shortened(config: RunConfig, steps: int | None) -> RunConfig:
    """`config` cut to `steps` (rounded up to whole compiled calls), its warmup, eval and
    checkpoint cadence scaled to match, so the schedule keeps its shape."""
    if steps is None:
        return config
    t, k = config.train, config.train.steps_per_call
    steps = max(k, -(-steps // k) * k)
    eval_every = max(k, (steps // 10) // k * k)
    warmup = round(config.optim.warmup_steps * steps / t.steps)
    return apply_overrides(config, [
        f"train.steps={steps}", f"train.eval_every={eval_every}",
        f"train.checkpoint_every={2 * eval_every}", f"optim.warmup_steps={warmup}",
    ])


def add_arguments(parser: argparse.ArgumentParser, cells: tuple[str, ...], name: str) -> None:
    parser.add_argument("--cells", default=",".join(cells),
                        help="comma-separated cell names, or all")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, trained together")
    parser.add_argument("--steps", type=int, default=None, help="shorten every cell (smoke runs)")
    parser.add_argument("--override", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="applied to every cell (repeatable), e.g. model.d_model=16")
    parser.add_argument("--stop-at", type=lambda v: None if v == "none" else float(v),
                        default=1.0, help="stop a cell once every seed's test accuracy is at "
                        "least this (default 1.0: the best accuracy can no longer change); none")
    parser.add_argument("--out-dir", default=os.path.join("experiments", "results"))
    parser.add_argument("--name", default=name, help="report file stem")
    parser.add_argument("--workdir", default=os.path.join("runs", name),
                        help="checkpoints of cells in progress")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="pause (checkpointed) at the first evaluation past this many "
                        "minutes; the same command continues")
    parser.add_argument("--force", action="store_true", help="rerun finished cells")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar (default: when stderr is a terminal)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="cells trained at a time, each in a process pinned to one core")
    # Set in workers: the core to pin to, and the command that launched them (for the record).
    parser.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--launched-by", default=None, help=argparse.SUPPRESS)


def run_study(
    parser: argparse.ArgumentParser,
    all_cells: tuple[str, ...],
    config_for: ConfigFor,
    write_report: Callable[[str, str], list[str]],
) -> None:
    """Parse the arguments of `add_arguments`, train the chosen cells, rewrite the report."""
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs: must be >= 1, got {args.jobs}")
    cells = list(all_cells) if args.cells == "all" else args.cells.split(",")
    unknown = [c for c in cells if c not in all_cells]
    if unknown:
        parser.error(f"unknown cells {unknown}; cells: {', '.join(all_cells)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    keep_compiled(args.workdir)
    cell_dir = os.path.join(args.out_dir, args.name)
    os.makedirs(cell_dir, exist_ok=True)
    try:  # every cell's config before any training: a bad --override stops the study at once
        configs = {cell: config_for(cell, args.steps, args.override) for cell in cells}
    except ConfigError as err:
        parser.error(f"--override: {err}")
    if not args.force:
        runs = [os.path.basename(cell_workdir(args.workdir, cell, configs[cell], seeds,
                                              args.stop_at)) for cell in cells]
        for run_dir in unpark(cell_dir, args.workdir, runs):
            print(f"continuing from the parked copy, now in {run_dir}")
    if args.cpu is not None and args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})  # before XLA starts its threads, which inherit it
    deadline = None if args.budget_minutes is None else time.time() + 60 * args.budget_minutes
    if args.jobs > 1:
        by_cost = sorted(cells, key=lambda c: -configs[c].train.steps)
        run_in_workers(by_cost, args.jobs, deadline)
    else:
        for cell in cells:
            if deadline is not None and time.time() > deadline:
                print(f"time budget spent before {cell}; run the same command again to continue")
                break
            if not run_cell(cell, configs[cell], args, seeds, cell_dir, deadline):
                break
    if args.cpu is None:  # a worker leaves the report to its parent
        for path in write_report(cell_dir, os.path.join(args.out_dir, args.name)):
            print(f"wrote {path}")


def keep_compiled(workdir: str) -> None:
    """Keep compiled steps in `<workdir>/jax-cache` (unless JAX_COMPILATION_CACHE_DIR names
    another place), so a paused cell resumes without compiling again: the vmapped three-seed
    step of an MQAR cell at batch 512 took 6 minutes to compile on a 2-core CPU."""
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        jax.config.update("jax_compilation_cache_dir", os.path.join(workdir, "jax-cache"))


def cell_is_done(path: str, config: RunConfig, seeds: list[int], stop_at: float | None) -> bool:
    """Whether `path` holds this very cell: same config, seeds and stopping rule. A config
    field added after the cell ran counts at its default, the value the cell trained with."""
    if not os.path.exists(path):
        return False
    with open(path) as f:
        done = json.load(f)
    same_config = config_from_dict(done["config"]) == config
    return same_config and done["seeds"] == seeds and done.get("stop_at") == stop_at


def run_cell(
    cell: str, config: RunConfig, args: argparse.Namespace, seeds: list[int], cell_dir: str,
    deadline: float | None,
) -> bool:
    """Train and store one cell as `<cell_dir>/<cell>.json`; False if it paused at the deadline."""
    path = os.path.join(cell_dir, f"{cell}.json")
    if not args.force and cell_is_done(path, config, seeds, args.stop_at):
        print(f"{cell}: done already ({path}), skipped")
        return True
    workdir = cell_workdir(args.workdir, cell, config, seeds, args.stop_at)
    if args.force and os.path.exists(workdir):
        raise SystemExit(f"--force: remove {workdir} first so the cell starts from scratch")
    print(f"{cell}: {config.train.steps} steps, seeds {seeds}", flush=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    run = train(config, workdir, seeds=seeds, resume=True, stop_at=args.stop_at,
                deadline=deadline, show_progress=args.progress)
    summary = run.summary
    if run.status in ("paused", "interrupted"):
        parked = park(workdir, cell_dir)
        print(f"{cell}: {run.status} at step {summary['final_step']} (checkpoint in {workdir}, "
              f"its latest copied to {parked} to commit with the results); run the same command "
              "again to continue", flush=True)
    if run.status == "paused":
        return False
    if run.status != "completed":
        raise SystemExit(f"{cell}: training {run.status}{': ' + run.error if run.error else ''}")
    discard(workdir, cell_dir)
    result = {k: summary[k] for k in CELL_RESULTS}
    result["history"] = eval_history(workdir)
    result["sessions"] = sessions(workdir)
    best = result["best_test_accuracy"]
    print(f"{cell}: best test accuracy {' '.join(f'{a:.3f}' for a in best)} "
          f"at steps {result['best_step']}, {result['final_step']} steps, "
          f"{result['elapsed_s']:.0f} s, {result['steps_per_s']:.3g} steps/s", flush=True)
    write_json(path, {
        "cell": cell,
        "command": args.launched_by or shlex.join([sys.executable, *sys.argv]),
        "started": started,
        "steps_override": args.steps,
        "overrides": args.override,
        "stop_at": args.stop_at,
        "config": config_to_dict(config),
        "environment": environment(),
        "load_avg": os.getloadavg(),
        **result,
    })
    return True


def cell_workdir(workdir: str, cell: str, config: RunConfig, seeds: list[int],
                 stop_at: float | None) -> str:
    """The run directory of this very cell (config, seeds, stopping rule) under `workdir`."""
    return os.path.join(workdir, f"{cell}-{config_tag(config, seeds, stop_at)}")


def eval_history(workdir: str) -> list[dict]:
    """A run's evaluation records, oldest first (empty before its first metrics line)."""
    path = os.path.join(workdir, METRICS)
    if not os.path.exists(path):
        return []
    return [{k: v for k, v in record.items() if k != "kind"}
            for record in read_jsonl(path) if record["kind"] == "eval"]


def sessions(workdir: str) -> list[dict]:
    """Each stretch of a run's training, oldest first: {"step" it started at, "started" (the
    time), "cpu"}. A run begun before metrics.jsonl kept session records gives its start from
    config.json, with no time, and misses the resumes before the records began."""
    path = os.path.join(workdir, METRICS)
    records = [r for r in read_jsonl(path) if r["kind"] == "session"] \
        if os.path.exists(path) else []
    found = [{"step": r["step"], "started": r["started"], "cpu": r["environment"].get("cpu")}
             for r in records]
    config = os.path.join(workdir, CONFIG)
    if (not found or found[0]["step"] != 0) and os.path.exists(config):
        with open(config) as f:
            start = json.load(f).get("environment", {})
        found.insert(0, {"step": 0, "started": None, "cpu": start.get("cpu")})
    return found


def run_in_workers(cells: list[str], jobs: int, deadline: float | None) -> None:
    """Each cell in a child process of the same script (`--cells CELL --jobs 1 --cpu K`), `jobs`
    at a time, in the given order. A child that fails stops the launching of new ones."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    base = _drop_options(sys.argv[1:], ("--cells", "--jobs", "--cpu", "--budget-minutes"))
    base += ["--launched-by", shlex.join([sys.executable, *sys.argv])]
    script = os.path.abspath(sys.argv[0])
    pending = list(cells)
    running: dict[int, tuple[str, subprocess.Popen]] = {}  # slot -> (cell, process)
    failed = []
    past_deadline = lambda: deadline is not None and time.time() > deadline  # noqa: E731
    while pending or running:
        for slot in [s for s in range(jobs) if s not in running]:
            if not pending or failed or past_deadline():
                break
            cell = pending.pop(0)
            command = [sys.executable, script, *base, "--cells", cell, "--jobs", "1",
                       "--cpu", str(cores[slot % len(cores)] if cores else -1)]
            if deadline is not None:
                command += ["--budget-minutes", f"{max(deadline - time.time(), 0.0) / 60:.3f}"]
            print(f"{cell}: started in worker {slot}", flush=True)
            running[slot] = (cell, subprocess.Popen(command))
        time.sleep(1.0)
        for slot, (cell, process) in list(running.items()):
            if process.poll() is not None:
                del running[slot]
                if process.returncode != 0:
                    failed.append(cell)
                    print(f"{cell}: worker exited with status {process.returncode}", flush=True)
        if not running and pending and (failed or past_deadline()):
            print(f"not started: {', '.join(pending)}; run the same command again to continue")
            break
    if failed:
        raise SystemExit(f"failed cells: {', '.join(failed)}")


def _drop_options(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """argv without the given options, in both the `--option value` and `--option=value` forms."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in options:
            skip = True
        elif not a.startswith(tuple(f"{o}=" for o in options)):
            out.append(a)
    return out
