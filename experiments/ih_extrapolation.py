"""Length extrapolation of induction heads: train H3 at L=256, test far beyond (the Mamba paper's
protocol, its Table 11 beside our numbers).

The model trains with the `h3-ih-extrap` preset (induction head, V=16, input length 256, fresh
examples every step), then each test length 2^e gets its own fixed validation set of the same
task at input length 2^e, scored on the final answer token. Long sequences run through
`h3_jax.generate.last_logits`: the first --prefill-len tokens by FFT, the rest by the recurrent
step, so memory stays flat up to 2^20 tokens.

    python experiments/ih_extrapolation.py [--lengths 6-16] [--examples 128] [--steps N]
        [--override section.key=value ...] [--out-dir experiments/results]
        [--name ih_extrapolation] [--workdir runs/ih_extrapolation] [--progress]
        [--budget-minutes M]

Training resumes from the workdir's checkpoints and is skipped once finished, so the same command
continues an interrupted run and, run again, reproduces the same numbers. With --budget-minutes a
run pauses at its first evaluation past the budget and its latest checkpoint is evaluated and
reported as preliminary. `--steps N` shortens
training (eval and checkpoint cadence scale with it; the report says so).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from h3_jax import generate
from h3_jax.hugepages import restart_with_huge_pages
from h3_jax.presets import get_preset
from h3_jax.train.config import apply_overrides, config_tag, config_to_dict
from h3_jax.train.loop import train
from h3_jax.train.restore import load_state
from h3_jax.train.workdir import SUMMARY, environment, has_run, path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cells import keep_compiled, shortened  # noqa: E402
from reports import pyplot, save_figure, write_markdown_and_json  # noqa: E402

PRESET = "h3-ih-extrap"
# Mamba paper, Table 11: H3 (153K params) trained at 2^8, test accuracy (%) by log2 length;
# its check marks (perfect accuracy) are written as 100.
PUBLISHED_H3 = {6: 100.0, 7: 100.0, 8: 100.0, 9: 80.9, 10: 39.5, 11: 23.8, 12: 14.8, 13: 8.2,
                14: 5.9, 15: 6.6, 16: 8.2, 17: 4.7, 18: 8.2, 19: 6.3, 20: 7.4}
VALIDATION_SEED = 1234  # the validation set at 2^e is drawn from [VALIDATION_SEED, e]


def parse_lengths(text: str) -> list[int]:
    """"6-16" or "6,8,10" -> log2 lengths."""
    try:
        if "-" in text:
            low, high = (int(x) for x in text.split("-"))
            exponents = list(range(low, high + 1))
        else:
            exponents = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected e.g. 6-16 or 6,8,10, got {text!r}") from None
    if not exponents or min(exponents) < 2 or max(exponents) > 24:
        raise argparse.ArgumentTypeError(f"log2 lengths must lie in [2, 24], got {text!r}")
    return exponents


def train_model(config, workdir: str, show_progress: bool | None,
                deadline: float | None = None) -> dict:
    """Train (or continue, or skip when finished) and return the run's summary; a run paused
    at `deadline` returns its summary so far (status "paused")."""
    summary_file = path(workdir, SUMMARY)
    if os.path.exists(summary_file):
        with open(summary_file) as f:
            summary = json.load(f)
        if summary["status"] == "completed":
            print(f"training done already ({workdir}), skipped")
            return summary
    result = train(config, workdir, resume=has_run(workdir), show_progress=show_progress,
                   deadline=deadline)
    if result.status == "paused":
        print(f"time budget spent at step {result.summary['final_step']}: evaluating that "
              f"checkpoint; the same command continues training (workdir {workdir})")
        return result.summary
    if result.status != "completed":
        reason = f": {result.error}" if result.error else ""
        raise SystemExit(f"training {result.status}{reason}; the same command continues it "
                         f"(workdir {workdir})")
    return result.summary


def accuracy_at(config, params, exponent: int, examples: int, prefill_len: int) -> dict:
    """Final-token accuracy on a fixed validation set at input length 2^exponent."""
    task = dataclasses.replace(config.task, input_seq_len=2**exponent - 1)
    rng = np.random.default_rng([VALIDATION_SEED, exponent])
    sequences = task.draw_vectorised(rng, examples).astype(np.int32)  # (examples, 2^e + 1)
    inputs, answers = jnp.asarray(sequences[:, :-1]), sequences[:, -1]
    del sequences
    start = time.perf_counter()
    last_logits = generate.compile_last_logits(config.model, params, inputs, prefill_len)
    compiled = time.perf_counter()
    predicted = np.asarray(jnp.argmax(last_logits(params, inputs), axis=-1))
    return {"accuracy": float(np.mean(predicted == answers)),
            "seconds": time.perf_counter() - compiled, "compile_s": compiled - start}


def write_report(results: dict, stem: str) -> list[str]:
    rows = results["lengths"]
    exponents = [int(e) for e in rows]
    inner = results["config"]["model"]["mixer"].get("inner_ssm", "s4d").upper()
    lines = [
        "# Induction-head length extrapolation (Mamba paper protocol)",
        "",
        f"H3 with its {inner} inner SSM trained at input length 256 (`{results['preset']}` preset"
        + (f", shortened to {results['train']['final_step']} steps" if results["steps_override"]
           else "") + f"), final-token accuracy on {results['examples']} fixed validation "
        "examples per length; published numbers from the Mamba paper, Table 11 (H3, 153K "
        "parameters; Mamba, 74K, holds 100% to 2^20). Chance is about 1/14 (the safari layout "
        "at V=16).",
        "",
        "| log2 length | " + " | ".join(str(e) for e in exponents) + " |",
        "|---|" + "---:|" * len(exponents),
        "| this run (%) | " + " | ".join(f"{100 * rows[str(e)]['accuracy']:.1f}"
                                         for e in exponents) + " |",
        "| Mamba paper, H3 (%) | " + " | ".join(
            f"{PUBLISHED_H3[e]:.1f}" if e in PUBLISHED_H3 else "" for e in exponents) + " |",
        "| eval time (s) | " + " | ".join(f"{rows[str(e)]['seconds']:.1f}"
                                          for e in exponents) + " |",
        "| compile time (s) | " + " | ".join(f"{rows[str(e)]['compile_s']:.1f}"
                                             for e in exponents) + " |",
        "",
        ("" if results["train"].get("completed", True) else
         f"**Preliminary**: training paused at step {results['train']['final_step']} of "
         f"{results['train']['steps']}; the same command continues it and rewrites this "
         "report. ")
        + f"Training: {results['train']['final_step']} steps in "
        f"{results['train']['elapsed_s']:.0f} s ({results['train']['compile_s']:.0f} s "
        "compiling); best test accuracy at length 256 "
        f"during training: {_percent(results['train']['best_test_accuracy'])}.",
        "",
        f"Command: `{results['command']}`",
    ]
    files = write_markdown_and_json(stem, lines, results)
    plt = pyplot()
    if plt is None:
        return files
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([2**e for e in exponents], [100 * rows[str(e)]["accuracy"] for e in exponents],
            "o-", label="h3-jax")
    published = sorted(PUBLISHED_H3)
    ax.plot([2**e for e in published], [PUBLISHED_H3[e] for e in published], "s--",
            label="Mamba paper, H3")
    ax.axvline(256, color="gray", linestyle=":", label="training length")
    ax.axhline(100 / 14, color="gray", linestyle="-.", linewidth=0.8, label="chance")
    ax.set(xscale="log", xlabel="sequence length", ylabel="final-token accuracy (%)",
           ylim=(0, 102), title="Induction head: length extrapolation")
    ax.set_xscale("log", base=2)
    ax.legend()
    fig.tight_layout()
    return files + [save_figure(fig, stem + ".png")]


def _percent(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=parse_lengths, default=parse_lengths("6-16"),
                        help="log2 test lengths: a range 6-16 or a list 6,8,10")
    parser.add_argument("--examples", type=int, default=128, help="validation examples per length")
    parser.add_argument("--prefill-len", type=int, default=4096,
                        help="tokens run by FFT before the recurrent step takes over")
    parser.add_argument("--steps", type=int, default=None, help="shorten training (smoke runs)")
    parser.add_argument("--override", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--out-dir", default=os.path.join("experiments", "results"))
    parser.add_argument("--name", default="ih_extrapolation", help="report file stem")
    parser.add_argument("--workdir", default=os.path.join("runs", "ih_extrapolation"))
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="pause training (checkpointed) at the first evaluation past this "
                        "many minutes and report the checkpoint as preliminary")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    args = parser.parse_args()
    for name in ("examples", "prefill_len"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}")

    config = shortened(apply_overrides(get_preset(PRESET), args.override), args.steps)
    workdir = os.path.join(args.workdir, f"{PRESET}-{config_tag(config)}")
    os.makedirs(workdir, exist_ok=True)
    keep_compiled(args.workdir)
    deadline = None if args.budget_minutes is None else time.time() + 60 * args.budget_minutes
    summary = train_model(config, workdir, args.progress, deadline)
    _, state, step, _ = load_state(workdir, "latest")
    params = jax.device_get(jax.tree.map(lambda leaf: leaf[0], state["params"]))  # one replica

    lengths = {}
    for exponent in args.lengths:
        lengths[str(exponent)] = accuracy_at(config, params, exponent, args.examples,
                                             args.prefill_len)
        print(f"length 2^{exponent}: accuracy {lengths[str(exponent)]['accuracy']:.3f} "
              f"({lengths[str(exponent)]['seconds']:.1f} s, compiling "
              f"{lengths[str(exponent)]['compile_s']:.1f} s)", flush=True)
    results = {
        "preset": PRESET,
        "command": shlex.join([sys.executable, *sys.argv]),
        "steps_override": args.steps,
        "overrides": args.override,
        "config": config_to_dict(config),
        "seed": config.train.seed,
        "data_seed": config.train.data_seed,
        "validation_seed": VALIDATION_SEED,
        "examples": args.examples,
        "prefill_len": args.prefill_len,
        "checkpoint_step": step,
        "train": {k: summary[k] for k in ("final_step", "elapsed_s", "compile_s")}
        | {"steps": config.train.steps, "completed": summary["status"] == "completed"}
        | {k: summary[k][0] for k in ("best_test_accuracy", "test_accuracy")},
        "lengths": lengths,
        "published_h3": {str(e): v for e, v in PUBLISHED_H3.items()},
        "environment": environment(),
    }
    os.makedirs(args.out_dir, exist_ok=True)
    for file in write_report(results, os.path.join(args.out_dir, args.name)):
        print(f"wrote {file}")


if __name__ == "__main__":
    restart_with_huge_pages()
    main()
