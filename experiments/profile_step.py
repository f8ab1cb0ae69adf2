"""Where a train step's time goes, op by op, against what the machine can do.

    python experiments/profile_step.py [--workload lm|mqar] [--name NAME] [--steps 5]
                                       [--set model.compute_dtype=bfloat16 ...]

Times the jitted step (compile apart), then records a few steps with the JAX profiler and reads
each XLA op's time from the trace. Ops are grouped by kind (matmul, FFT, elementwise fusion,
copy/transpose, concatenate/pad/slice, reduction) and by the model part they belong to; matmuls
and FFTs get their FLOPs from the compiled HLO and so an achieved rate, set beside this
machine's rates measured in the same process: a (4096 x 4096) matmul on all cores in float32
(and in bfloat16 with float32 accumulation, for reference) and a batch of length-2048 real FFTs.
Minor page faults per step come from getrusage.

Workloads:
- lm: the 2-layer H3 LM of bench_user_script.py (d_model 64, d_inner 256, V = 30), L = 1024,
  batch 32, AdamW, dropout on; the step a user writes around `h3_jax.models.LM`.
- mqar: the MQAR cell of Zoology's recipe at L = 128, 8 pairs, d_model 128 (H3, d_state 128,
  head_dim 2, Zoology's blocks, V = 8192), batch 512, through `h3_jax.train.make_train_step`
  with the LM head on the labelled positions only; `--set` overrides its config (as `h3-jax
  train` does), e.g. `model.compute_dtype=bfloat16`. Like `h3-jax train`, it restarts itself
  once with 2 MiB pages (h3_jax/hugepages.py); lm runs with nothing set, as a user's script.
Writes profile_<name>.md and .json to --out.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import math
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import h3_jax  # noqa: F401  (its allocator settings, as a user's script gets them)
from h3_jax import models, tasks
from h3_jax.hugepages import restart_with_huge_pages
from h3_jax.presets import get_preset
from h3_jax.train import make_train_step
from h3_jax.train.config import apply_overrides
from h3_jax.train.step import init_train_state

sys.path.insert(0, str(Path(__file__).parent))
import bench_user_script  # noqa: E402
from reports import cpu_line, write_markdown_and_json  # noqa: E402
from step_timing import repeat_seconds  # noqa: E402

from h3_jax.train.workdir import environment  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DTYPE_BYTES = {"f32": 4, "c64": 8, "s32": 4, "u32": 4, "pred": 1, "bf16": 2, "f64": 8, "s8": 1}
# Ops whose time in the trace includes the ops they run (a lax.scan's loop, a call).
CONTAINERS = ("while", "call", "conditional")
HLO_LINE = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (\S+?\[[^\]]*\](?:\{[^}]*\})?|\([^)]*\)) "
                      r"([\w-]+)\((.*)$", re.M)


class Workload(NamedTuple):
    """A step to time: `step(*carry)` returns the next carry; `lower(*carry)` is the step's
    lowered computation (for its compiled HLO); `tokens` per step."""

    step: Callable
    carry: tuple
    tokens: int
    lower: Callable


def lm_workload(overrides: list[str]) -> Workload:
    """The LM step exactly as bench_user_script.py's user writes it (no overrides: main()
    refuses --set for it)."""
    namespace = {"DONATE": ()}
    exec(bench_user_script.USER_STEP, namespace)
    step = namespace["step"]
    return Workload(step, namespace["carry"], bench_user_script.B * bench_user_script.L,
                    step.lower)


def mqar_workload(overrides: list[str]) -> Workload:
    """The library's MQAR step at Zoology's L = 128, d_model 128 cell, batch 512."""
    config = apply_overrides(get_preset("h3-mqar"), [
        "task.seq_len=128", "task.num_kv_pairs=8", "model.d_model=128",
        "model.mixer.d_state=128", "model.identity_mlp=true", "model.embed_dropout=0.1",
        "train.batch_size=512", *overrides,
    ])
    model, tx = models.LM(config.model), optax.adamw(2.15e-3, weight_decay=0.1)
    task = config.task
    batch = tasks.Batch(*(jnp.asarray(a)[None] for a in task.draw(np.random.default_rng(0), 512)))
    train_step = make_train_step(model, tx, lambda s: 2.15e-3, task.labels_per_example)

    def step(state):
        return (train_step(state, batch)[0],)

    return Workload(step, (init_train_state(model, tx, 0, task.seq_len),), 512 * task.seq_len,
                    lambda state: train_step.lower(state, batch))


WORKLOADS = {"lm": lm_workload, "mqar": mqar_workload}


def time_steps(step, carry, steps: int):
    """(carry, compile s, median step s over `steps` single steps)."""
    start = time.perf_counter()
    carry = step(*carry)
    jax.block_until_ready(carry)
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        carry = step(*carry)
        jax.block_until_ready(carry)
        times.append(time.perf_counter() - start)
    return carry, compile_s, statistics.median(times)


def machine_rates() -> dict[str, float]:
    """GFLOP/s of a large matmul in float32 and in bfloat16 (accumulating in float32) and of
    length-2048 real FFTs (rfft + irfft pairs)."""
    a = jnp.ones((4096, 4096), jnp.float32)
    x = jnp.ones((2048, 2048), jnp.float32)
    mm = jax.jit(lambda a: a @ a)
    mm_bf16 = jax.jit(lambda a: jnp.matmul(a, a, preferred_element_type=jnp.float32))
    fft = jax.jit(lambda x: jnp.fft.irfft(jnp.fft.rfft(x), n=2048))
    rates = {}
    for name, f, arg, flops in (("matmul", mm, a, 2 * 4096 ** 3),
                                ("matmul_bf16", mm_bf16, a.astype(jnp.bfloat16), 2 * 4096 ** 3),
                                ("fft", fft, x, 2 * fft_flops(2048, 2048))):
        rates[name] = flops / min(repeat_seconds(f, arg, repeats=5)[1]) / 1e9
    return rates


def fft_flops(length: int, rows: int) -> float:
    """The usual count for a real FFT: 2.5 n log2 n per row."""
    return 2.5 * length * math.log2(length) * rows


def fft_op_flops(entry: dict) -> float:
    """An fft instruction's FLOPs: its transform length times the rows it transforms."""
    length = int(re.search(r"fft_length=\{(\d+)", entry["rest"]).group(1))
    return fft_flops(length, math.prod(dims(entry["shape"])[:-1]))


def parse_hlo(text: str) -> dict[str, dict]:
    """name -> {shape, op, meta, rest} for every instruction of the compiled module."""
    ops = {}
    for name, shape, op, rest in HLO_LINE.findall(text):
        meta = re.search(r'op_name="([^"]*)"', rest)
        ops[name] = {"shape": shape, "op": op, "meta": meta.group(1) if meta else "",
                     "rest": rest}
    return ops


def dims(shape: str) -> list[int]:
    m = re.match(r"\w+\[([\d,]*)\]", shape)
    return [int(d) for d in m.group(1).split(",") if d] if m else []


def nbytes(shape: str) -> int:
    m = re.match(r"(\w+)\[", shape)
    return math.prod(dims(shape)) * DTYPE_BYTES.get(m.group(1), 4) if m else 0


def dot_flops(ops: dict, name: str) -> float:
    """2 x output size x contracted size of a dot, or of the dot inside a fusion."""
    entry = ops[name]
    if entry["op"] == "fusion":
        called = re.search(r"calls=%([\w.\-]+)", entry["rest"])
        inner = [n for n, e in ops.items() if e["op"] == "dot"
                 and called and e.get("computation") == called.group(1)]
        return sum(dot_flops(ops, n) for n in inner)
    if entry["op"] != "dot":
        return 0.0
    operands = re.findall(r"%([\w.\-]+)", entry["rest"].split(")")[0])
    contracting = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", entry["rest"])
    if not operands or operands[0] not in ops or contracting is None:
        return 0.0
    lhs = dims(ops[operands[0]]["shape"])
    size = math.prod(lhs[int(d)] for d in contracting.group(1).split(",") if d)
    return 2.0 * math.prod(dims(entry["shape"])) * size


def mark_computations(text: str, ops: dict) -> None:
    """Record which computation each instruction belongs to (for fusions' inner dots), and
    whether it is the entry computation's own (the ops that run and show in the trace)."""
    current, entry = None, False
    for line in text.splitlines():
        header = re.match(r"^(ENTRY )?%([\w.\-]+) .*\{$", line)
        if header:
            entry, current = bool(header.group(1)), header.group(2)
            continue
        m = re.match(r"^\s*(?:ROOT )?%([\w.\-]+) = ", line)
        if m and m.group(1) in ops:
            ops[m.group(1)].update(computation=current, entry=entry)


def kind(entry: dict, name: str) -> str:
    op = entry["op"]
    if op == "fft":
        return "fft"
    if op == "dot" or "__ynn_fusion" in entry["rest"] or "__xnn_fusion" in entry["rest"]:
        return "matmul"
    if op in ("copy", "transpose") or name.startswith(("copy", "transpose")):
        return "copy/transpose"
    if op in ("concatenate", "pad", "slice", "dynamic-slice", "dynamic-update-slice") or \
            name.startswith(("concatenate", "slice", "pad", "dynamic")):
        return "concatenate/pad/slice"
    if "reduce" in name or op == "reduce":
        return "reduction"
    if op == "fusion":
        return "elementwise fusion"
    return "other"


def part(meta: str) -> str:
    """The model part an op serves, from its JAX name stack."""
    for key, label in (("mixer", "mixer"), ("mlp", "MLP"), ("norm", "layer norms"),
                       ("ln_f", "layer norms"), ("_head", "LM head"), ("embed", "embedding"),
                       ("Dropout", "dropout"), ("softmax", "loss"), ("log", "loss")):
        if key in meta:
            return label
    if "transpose(jvp" in meta or "jvp(" in meta:
        return "other model ops"
    return "optimizer and other"


def op_times(trace_dir: str, ops: dict, steps: int) -> dict[str, float]:
    """Milliseconds per step of each HLO op, from the profiler's trace."""
    path = glob.glob(os.path.join(trace_dir, "plugins", "profile", "*", "*.trace.json.gz"))[-1]
    with gzip.open(path) as f:
        events = json.load(f)
    events = events["traceEvents"] if isinstance(events, dict) else events
    total: collections.Counter = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e.get("name") in ops:
            total[e["name"]] += e.get("dur", 0) / 1e3 / steps
    return dict(total)


def profile(workload: str, steps: int, overrides: list[str]) -> dict:
    step, carry, tokens, lower = WORKLOADS[workload](overrides)
    carry, compile_s, step_s = time_steps(step, carry, steps)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    carry, _, _ = time_steps(step, carry, steps)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (steps + 1)
    text = lower(*carry).compile().as_text()
    ops = parse_hlo(text)
    mark_computations(text, ops)
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir)
        for _ in range(steps):
            carry = step(*carry)
        jax.block_until_ready(carry)
        jax.profiler.stop_trace()
        times = op_times(trace_dir, ops, steps)
    rates = machine_rates()
    by_kind: dict = collections.defaultdict(lambda: {"ms": 0.0, "gflop": 0.0, "out_mb": 0.0})
    by_part: collections.Counter = collections.Counter()
    rows = []
    for name, ms in times.items():
        entry = ops[name]
        if entry["op"] in CONTAINERS:
            continue
        k = kind(entry, name)
        flops = (dot_flops(ops, name) if k == "matmul" else
                 fft_op_flops(entry) if k == "fft" else 0.0)
        by_kind[k]["ms"] += ms
        by_kind[k]["gflop"] += flops / 1e9
        by_kind[k]["out_mb"] += nbytes(entry["shape"]) / 1e6
        by_part[part(entry["meta"])] += ms
        rows.append({"op": name, "kind": k, "part": part(entry["meta"]), "ms": ms,
                     "gflop": flops / 1e9, "shape": entry["shape"].split("{")[0],
                     "source": entry["meta"].split("/")[-1]})
    rows.sort(key=lambda r: -r["ms"])
    return {"workload": workload, "overrides": overrides, "step_s": step_s, "compile_s": compile_s,
            "tokens_per_s": tokens / step_s, "steps_per_s": 1 / step_s,
            "minor_page_faults_per_step": faults, "machine_gflops": rates,
            "op_ms_total": sum(times.values()),
            "by_kind": dict(by_kind), "by_part": dict(by_part), "top_ops": rows[:25]}


def markdown(result: dict, name: str) -> list[str]:
    r, rates = result, result["machine_gflops"]
    lines = [
        f"# Where the {r['workload']} train step's time goes ({name})",
        "",
        f"`python experiments/profile_step.py --workload {r['workload']} --name {name}"
        f"{''.join(f' --set {o}' for o in r.get('overrides', []))}`; "
        f"{result['cpu']}. Step {1e3 * r['step_s']:.0f} ms ({r['tokens_per_s']:,.0f} tokens/s, "
        f"{r['steps_per_s']:.2f} steps/s; compiling {r['compile_s']:.1f} s); the ops' own "
        f"times in the profiled steps add up to {r['op_ms_total']:.0f} ms (XLA runs independent "
        "ops side by side on the cores, and the profiler slows some ops: shares are the "
        "reliable part). "
        f"Minor page faults per step: {r['minor_page_faults_per_step']:,.0f}. Machine rates "
        f"measured in the same process: matmul {rates['matmul']:.0f} GFLOP/s (bfloat16: "
        f"{rates.get('matmul_bf16', float('nan')):.0f}), FFT "
        f"{rates['fft']:.0f} GFLOP/s. GLIBC_TUNABLES: {r.get('glibc_tunables') or 'unset'}.",
        "",
        "| kind | ms / step | share | GFLOP / step | achieved GFLOP/s | of machine rate | "
        "output MB / step |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    total = r["op_ms_total"]
    for k, v in sorted(r["by_kind"].items(), key=lambda kv: -kv[1]["ms"]):
        rate = v["gflop"] / (v["ms"] / 1e3) if v["gflop"] and v["ms"] else None
        machine = rates.get("matmul" if k == "matmul" else "fft" if k == "fft" else "", None)
        lines.append(
            f"| {k} | {v['ms']:.1f} | {v['ms'] / total:.0%} | "
            f"{v['gflop']:.2f} | {'-' if rate is None else f'{rate:.0f}'} | "
            f"{'-' if rate is None or machine is None else f'{rate / machine:.0%}'} | "
            f"{v['out_mb']:.0f} |")
    lines += ["", "| model part | ms / step | share |", "|---|---:|---:|"]
    for p, ms in sorted(r["by_part"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {p} | {ms:.1f} | {ms / total:.0%} |")
    lines += ["", "The 25 slowest ops:", "",
              "| op | kind | part | shape | ms | GFLOP/s |", "|---|---|---|---|---:|---:|"]
    for row in r["top_ops"]:
        rate = f"{row['gflop'] / (row['ms'] / 1e3):.0f}" if row["gflop"] else "-"
        lines.append(f"| {row['source'] or row['op']} | {row['kind']} | {row['part']} | "
                     f"{row['shape']} | {row['ms']:.1f} | {rate} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=tuple(WORKLOADS), default="lm")
    parser.add_argument("--name", default=None, help="report stem suffix (default: workload)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override of the mqar workload, repeatable")
    args = parser.parse_args()
    if args.set and args.workload != "mqar":
        parser.error("--set applies to --workload mqar only")
    if args.workload == "mqar":  # the step as `h3-jax train` runs it; lm: as a user's script
        restart_with_huge_pages()
    name = args.name or args.workload
    result = profile(args.workload, args.steps, args.set)
    env = environment()
    result["cpu"], result["environment"] = cpu_line(env["cpu"]), env
    result["glibc_tunables"] = os.environ.get("GLIBC_TUNABLES", "")
    os.makedirs(args.out, exist_ok=True)
    lines = markdown(result, name)
    write_markdown_and_json(os.path.join(args.out, f"profile_{name}"), lines, result)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
