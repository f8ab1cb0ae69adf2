"""The H3 paper's synthetic-task table (S4D, GSS, H3, attention x induction head, associative
recall), each cell over several seeds trained together in one vmapped compiled step.

Each cell is its preset (`h3-ar`, `s4d-ih`, ...: the paper's model, optimizer, schedule and step
count); seed s means `train.seed=s, train.data_seed=s` (its own init, dropout, dataset and data
order; seed 0 is the paper's dataset). A finished cell is stored in
`<out-dir>/<name>/<cell>.json` and skipped on the next invocation with the same config and
seeds; a cell in progress checkpoints under `--workdir`, so a long run continues where it
stopped (`--budget-minutes` pauses on purpose, to split the table across sessions). The report
(`<name>.md`, `.json`, `.png`) is rewritten from every finished cell.

    python experiments/synthetics.py [--cells h3-ar,s4d-ih] [--seeds 0,1,2] [--steps N]
        [--override section.key=value ...] [--stop-at 1.0|none] [--out-dir experiments/results]
        [--name synthetics] [--workdir runs/synthetics] [--budget-minutes M] [--force]
        [--progress] [--jobs J]

The reported accuracy is the paper's: the best test accuracy over the evaluations (safari keeps
the checkpoint with the best validation accuracy, and its validation set is the test set); the
final one is reported too. `--stop-at 1.0` (default) ends a cell once every seed is at 100%,
which cannot change that number.

`--jobs J` trains J cells at a time, each in its own process pinned to one CPU core (on Linux).
At this model size one compiled step cannot keep two cores busy, while two pinned processes run
at nearly the full single-process rate each: on a 2-core machine `--jobs 2` about doubles the
table's throughput.

`--steps N` shortens every cell to N steps for smoke runs: warmup, eval and checkpoint cadence
shrink in proportion (the schedule keeps its shape); the report says so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time

from h3_jax.presets import get_preset
from h3_jax.train.config import to_jsonable
from h3_jax.train.replica_run import train_replicas
from h3_jax.train.run_config import RunConfig, apply_overrides
from h3_jax.train.workdir import environment, write_json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synthetics_report import CELLS, write_report  # noqa: E402


def cell_config(cell: str, steps: int | None, overrides: list[str]) -> RunConfig:
    """The preset (plus `overrides`), shortened to `steps` with its cadences scaled to match."""
    config = apply_overrides(get_preset(cell), overrides)
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


def cell_is_done(path: str, config: RunConfig, seeds: list[int], stop_at: float | None) -> bool:
    """Whether `path` holds this very cell: same config, seeds and stopping rule."""
    if not os.path.exists(path):
        return False
    with open(path) as f:
        done = json.load(f)
    same_config = done["config"] == json.loads(json.dumps(to_jsonable(config)))
    return same_config and done["seeds"] == seeds and done.get("stop_at") == stop_at


def run_cell(
    cell: str, args: argparse.Namespace, seeds: list[int], path: str, deadline: float | None
) -> bool:
    """Train and store one cell; False if it paused at the deadline (checkpointed)."""
    config = cell_config(cell, args.steps, args.override)
    if not args.force and cell_is_done(path, config, seeds, args.stop_at):
        print(f"{cell}: done already ({path}), skipped")
        return True
    tag = hashlib.sha1(json.dumps([to_jsonable(config), seeds, args.stop_at]).encode())
    workdir = os.path.join(args.workdir, f"{cell}-{tag.hexdigest()[:10]}")
    if args.force and os.path.exists(workdir):
        raise SystemExit(f"--force: remove {workdir} first so the cell starts from scratch")
    print(f"{cell}: {config.train.steps} steps, seeds {seeds}", flush=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    result = train_replicas(config, seeds, workdir=workdir, stop_at=args.stop_at,
                            deadline=deadline, show_progress=args.progress)
    if result["paused"]:
        print(f"{cell}: time budget spent, paused at step {result['step']} (checkpoint in "
              f"{workdir}); run the same command again to continue", flush=True)
        return False
    best = result["best_test_accuracy"]
    print(f"{cell}: best test accuracy {' '.join(f'{a:.3f}' for a in best)} "
          f"at steps {result['best_step']}, {result['final_step']} steps, "
          f"{result['elapsed_s']:.0f} s, {result['steps_per_s']:.0f} steps/s", flush=True)
    write_json(path, {
        "cell": cell,
        "command": shlex.join([sys.executable, *sys.argv]),
        "started": started,
        "steps_override": args.steps,
        "overrides": args.override,
        "stop_at": args.stop_at,
        "config": to_jsonable(config),
        "environment": environment(),
        "load_avg": os.getloadavg(),
        **result,
    })
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated presets")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, trained together")
    parser.add_argument("--steps", type=int, default=None, help="shorten every cell (smoke runs)")
    parser.add_argument("--override", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="applied to every cell (repeatable), e.g. model.d_model=16")
    parser.add_argument("--stop-at", type=lambda v: None if v == "none" else float(v),
                        default=1.0, help="stop a cell once every seed's test accuracy is at "
                        "least this (default 1.0: the best accuracy can no longer change); none")
    parser.add_argument("--out-dir", default=os.path.join("experiments", "results"))
    parser.add_argument("--name", default="synthetics", help="report file stem")
    parser.add_argument("--workdir", default=os.path.join("runs", "synthetics"),
                        help="checkpoints of cells in progress")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="pause (checkpointed) at the first evaluation past this many "
                        "minutes; the same command continues")
    parser.add_argument("--force", action="store_true", help="rerun finished cells")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar (default: when stderr is a terminal)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="cells trained at a time, each in a process pinned to one core")
    parser.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)  # set in workers: their core, or -1
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs: must be >= 1, got {args.jobs}")
    cells = args.cells.split(",")
    unknown = [c for c in cells if c not in CELLS]
    if unknown:
        parser.error(f"unknown cells {unknown}; cells: {', '.join(CELLS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    cell_dir = os.path.join(args.out_dir, args.name)
    os.makedirs(cell_dir, exist_ok=True)
    if args.cpu is not None and args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})  # before XLA starts its threads, which inherit it
    deadline = None if args.budget_minutes is None else time.time() + 60 * args.budget_minutes
    if args.jobs > 1:
        run_in_workers(cells, args.jobs, deadline)
    else:
        for cell in cells:
            if deadline is not None and time.time() > deadline:
                print(f"time budget spent before {cell}; run the same command again to continue")
                break
            if not run_cell(cell, args, seeds, os.path.join(cell_dir, f"{cell}.json"), deadline):
                break
    if args.cpu is None:  # a worker leaves the report to its parent
        for path in write_report(cell_dir, os.path.join(args.out_dir, args.name)):
            print(f"wrote {path}")


def run_in_workers(cells: list[str], jobs: int, deadline: float | None) -> None:
    """Each cell in a child process (`--cells CELL --jobs 1 --cpu K`), `jobs` at a time, the
    costliest (longest step count) first. A child that fails stops the launching of new ones."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    own = ("--cells", "--jobs", "--cpu", "--budget-minutes")  # set per worker below
    base = _drop_options(sys.argv[1:], own)
    pending = sorted(cells, key=lambda c: -get_preset(c).train.steps)
    running: dict[int, tuple[str, subprocess.Popen]] = {}  # slot -> (cell, process)
    failed = []
    while pending or running:
        for slot in [s for s in range(jobs) if s not in running]:
            if not pending or failed or (deadline is not None and time.time() > deadline):
                break
            cell = pending.pop(0)
            command = [sys.executable, os.path.abspath(__file__), *base,
                       "--cells", cell, "--jobs", "1"]
            command += ["--cpu", str(cores[slot % len(cores)] if cores else -1)]
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
        if not running and pending and (failed or (deadline is not None and time.time() > deadline)):
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


if __name__ == "__main__":
    main()
