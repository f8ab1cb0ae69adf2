"""Train-step throughput of the compiled train step (AdamW groups, dropout RNG, masked loss).

Two settings: the H3 paper's synthetic config (2 layers, d_model 32, d_inner 128, d_state 64,
batch 32, associative recall V=10 -> L=22) and a longer one (d_model 64, L=256, batch 32). Each
is timed with 1 and with several optimizer steps fused into one compiled call (`lax.scan`);
compile time is reported apart from the steady-state rate.

    python experiments/bench_train.py [--mixers h3,attention] [--steps-per-call 1,10,50]
        [--seconds 10] [--out experiments/results/bench_train.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform

import jax
import numpy as np
from step_timing import (
    time_train_step,  # a sibling module: scripts run as python experiments/NAME.py
)

from h3_jax import models
from h3_jax.hugepages import restart_with_huge_pages
from h3_jax.presets import get_preset
from h3_jax.train.config import apply_overrides
from h3_jax.train.data import TrainData
from h3_jax.train.optim import make_optimizer
from h3_jax.train.sharding import make_mesh, replicate, shard_batch
from h3_jax.train.step import init_train_state, make_train_step
from h3_jax.train.workdir import environment

SETTINGS = {
    "paper-synthetic": [],  # h3-ar as published: d_model 32, L=22, batch 32
    "d64-L256": ["model.d_model=64", "model.d_inner=256", "task.input_seq_len=254",
                 "task.num_examples=512", "task.num_test_examples=32"],
}


def bench(mixer: str, setting: str, steps_per_call: int, seconds: float) -> dict:
    config = apply_overrides(get_preset(f"{mixer}-ar"), SETTINGS[setting])
    t = config.train
    mesh = make_mesh()
    model = models.LM(config.model)
    tx, schedule = make_optimizer(config.optim, t.steps, config.model)
    state = replicate(jax.jit(lambda: init_train_state(model, tx, t.seed, config.task.seq_len))(), mesh)
    data = TrainData(config.task, "fixed", t.data_seed, t.batch_size)
    step_fn = make_train_step(model, tx, schedule, data.labels_per_example)
    chunk = shard_batch(data.chunk(0, steps_per_call), mesh, 1)
    state, metrics, compile_s, steps_per_s = time_train_step(
        step_fn, state, chunk, steps_per_call, seconds)
    assert np.isfinite(np.asarray(metrics["loss"])).all()
    return {
        "mixer": mixer, "setting": setting, "steps_per_call": steps_per_call,
        "d_model": config.model.d_model, "seq_len": config.task.seq_len,
        "batch_size": t.batch_size, "compile_s": compile_s, "steps_per_s": steps_per_s,
        "tokens_per_s": steps_per_s * t.batch_size * config.task.seq_len,
        "paper_run_s": 31_400 / steps_per_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mixers", default="h3")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--steps-per-call", default="1,10,50")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", default=os.path.join("experiments", "results", "bench_train.json"))
    args = parser.parse_args()
    rows = []
    print(f"{'mixer':<10}{'setting':<17}{'k':>4}{'compile s':>11}{'steps/s':>10}{'tokens/s':>12}")
    for mixer in args.mixers.split(","):
        for setting in args.settings.split(","):
            for k in map(int, args.steps_per_call.split(",")):
                row = bench(mixer, setting, k, args.seconds)
                rows.append(row)
                print(f"{mixer:<10}{setting:<17}{k:>4}{row['compile_s']:>11.1f}"
                      f"{row['steps_per_s']:>10.1f}{row['tokens_per_s']:>12.0f}", flush=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"environment": environment(), "machine": platform.machine(),
                   "cpu_count": os.cpu_count(), "load_avg": os.getloadavg(),
                   "seconds_per_case": args.seconds, "results": rows}, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    restart_with_huge_pages()
    main()
