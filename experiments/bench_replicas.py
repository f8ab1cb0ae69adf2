"""Steady-state throughput of R seeds trained together in one vmapped compiled step.

For each preset and each R: compile, then run the compiled call for `--seconds` on a fixed chunk
and report steps/s of the whole call (R replicas advance one step each) and replica-steps/s.

    python experiments/bench_replicas.py [--presets h3-ar,h3-ih] [--replicas 1,3]
        [--steps-per-call 10] [--seconds 10] [--out experiments/results/bench_replicas.json]
"""

from __future__ import annotations

import argparse
import json
import os

import jax
from step_timing import (
    time_train_step,  # a sibling module: scripts run as python experiments/NAME.py
)

from h3_jax import models
from h3_jax.hugepages import restart_with_huge_pages
from h3_jax.presets import get_preset
from h3_jax.train.config import apply_overrides
from h3_jax.train.optim import make_optimizer
from h3_jax.train.replicas import ReplicaData, init_replicas, make_replica_train_step
from h3_jax.train.workdir import environment


def bench(preset: str, replicas: int, steps_per_call: int, seconds: float) -> dict:
    config = apply_overrides(get_preset(preset), [f"train.steps_per_call={steps_per_call}"])
    t = config.train
    model = models.LM(config.model)
    tx, schedule = make_optimizer(config.optim, t.steps, config.model)
    seeds = list(range(replicas))
    state = init_replicas(model, tx, seeds, config.task.seq_len)
    data = ReplicaData(config.task, t.data, seeds, t.batch_size)
    step_fn = make_replica_train_step(model, tx, schedule, data.labels_per_example)
    chunk = jax.device_put(data.chunk(0, steps_per_call))
    state, metrics, compile_s, steps_per_s = time_train_step(
        step_fn, state, chunk, steps_per_call, seconds)
    return {"preset": preset, "replicas": replicas, "steps_per_call": steps_per_call,
            "compile_s": compile_s, "steps_per_s": steps_per_s,
            "replica_steps_per_s": steps_per_s * replicas, "load_avg": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="h3-ar")
    parser.add_argument("--replicas", default="1,3")
    parser.add_argument("--steps-per-call", default="10")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", default=os.path.join("experiments", "results",
                                                      "bench_replicas.json"))
    args = parser.parse_args()
    rows = []
    print(f"{'preset':<14}{'R':>3}{'k':>4}{'compile s':>11}{'steps/s':>10}{'replica-steps/s':>17}"
          f"{'load':>6}")
    for preset in args.presets.split(","):
        for k in map(int, args.steps_per_call.split(",")):
            for r in map(int, args.replicas.split(",")):
                row = bench(preset, r, k, args.seconds)
                rows.append(row)
                print(f"{preset:<14}{r:>3}{k:>4}{row['compile_s']:>11.1f}"
                      f"{row['steps_per_s']:>10.1f}{row['replica_steps_per_s']:>17.1f}"
                      f"{row['load_avg']:>6.1f}", flush=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"environment": environment(), "cpu_count": os.cpu_count(),
                   "seconds_per_case": args.seconds, "results": rows}, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    restart_with_huge_pages()
    main()
