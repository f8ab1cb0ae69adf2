"""The report of `synthetics.py`: per-cell results next to the paper's numbers, as markdown, JSON
and a PNG of test-accuracy curves, rebuilt from the finished cells' JSON files."""

from __future__ import annotations

import json
import os

import numpy as np
from reports import cpu_line, load_cells

MIXERS = ("s4d", "gss", "h3", "attention")
MIXER_NAMES = {"s4d": "S4D", "gss": "GSS", "h3": "H3", "attention": "Attention"}
TASKS = {"ih": "Induction Head", "ar": "Associative Recall"}
CELLS = tuple(f"{m}-{t}" for t in TASKS for m in MIXERS)
# H3 paper, "2-layer models on synthetic language tasks" (test accuracy, %).
PAPER = {
    "s4d-ih": 35.6, "gss-ih": 6.8, "h3-ih": 100.0, "attention-ih": 100.0,
    "s4d-ar": 86.0, "gss-ar": 78.0, "h3-ar": 99.8, "attention-ar": 100.0,
}
PAPER_STEPS = {"ih": 62_800, "ar": 31_400}
PAPER_EVAL_EVERY = 1570


def summarize(data: dict) -> dict:
    """Best-over-evaluations accuracy (%) over seeds (the paper's number), and the final one."""
    best = 100 * np.asarray(data["best_test_accuracy"], np.float64)
    final = 100 * np.asarray(data["test_accuracy"], np.float64)
    return {"mean": float(best.mean()), "min": float(best.min()), "max": float(best.max()),
            "per_seed": best.tolist(), "final_mean": float(final.mean()),
            "paper": PAPER[data["cell"]]}


def full_length_estimate_s(data: dict) -> float | None:
    """Seconds the cell would take at the paper's length, at the rates this run measured."""
    if not data["steps_per_s"]:
        return None
    steps = PAPER_STEPS[data["cell"].split("-")[1]]
    per_eval = data["eval_s"] / max(len(data["history"]), 1)
    return steps / data["steps_per_s"] + data["compile_s"] + per_eval * steps / PAPER_EVAL_EVERY


def markdown(cells: dict[str, dict], cell_dir: str) -> str:
    """The report; `<cell_dir>_notes.md`, if present (findings), follows the main table."""
    stats = {c: summarize(d) for c, d in cells.items()}
    any_cell = next(iter(cells.values()))
    short = {c: d["config"]["train"]["steps"] for c, d in cells.items() if d["steps_override"]}
    lines = ["# The H3 paper's synthetic-task table, reproduced", ""]
    if short:
        lines += ["**Shortened run** (`--steps`): these cells trained for "
                  + ", ".join(f"{c} {s}" for c, s in short.items())
                  + " steps instead of the paper's 31,400 (AR) / 62,800 (IH), with warmup and "
                  "eval cadence scaled in proportion. The accuracies below are not the paper's "
                  "protocol; the throughput and the wall-time estimate are the point.", ""]
    lines += [
        "Best test accuracy (%) over the evaluations (the paper's metric: safari keeps the best "
        "validation checkpoint and validates on the test set), final token, 500 test examples; "
        f"seeds {any_cell['seeds']} (seed s: init, dropout, dataset and data order from s), trained "
        "together in one vmapped step. Each entry: mean over seeds (min - max) / paper.", "",
        "| Task | " + " | ".join(MIXER_NAMES[m] for m in MIXERS) + " |",
        "|---|" + "---|" * len(MIXERS),
    ]
    for task, task_name in TASKS.items():
        row = []
        for mixer in MIXERS:
            s = stats.get(f"{mixer}-{task}")
            row.append("not run" if s is None else
                       f"{s['mean']:.1f} ({s['min']:.1f} - {s['max']:.1f}) / {s['paper']:.1f}")
        lines.append(f"| {task_name} | " + " | ".join(row) + " |")
    notes = os.path.join(os.path.dirname(cell_dir), os.path.basename(cell_dir) + "_notes.md")
    if os.path.exists(notes):
        with open(notes) as f:
            lines += ["", f.read().strip()]
    lines += ["", "## Per cell", "",
              "| cell | steps run | best per seed (%) | at step | mean | final mean | paper "
              "| mean - paper | wall s | compile s | train steps/s (all seeds) "
              "| est. s at paper length |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for cell, data in cells.items():
        s, estimate = stats[cell], full_length_estimate_s(data)
        stopped = " (stopped: all 100%)" if data["stopped_early"] else ""
        lines.append(
            f"| {cell} | {data['final_step']}{stopped} "
            f"| {', '.join(f'{a:.1f}' for a in s['per_seed'])} "
            f"| {', '.join(map(str, data['best_step']))} "
            f"| {s['mean']:.1f} | {s['final_mean']:.1f} | {s['paper']:.1f} "
            f"| {s['mean'] - s['paper']:+.1f} "
            f"| {data['elapsed_s']:.0f} | {data['compile_s']:.0f} | {data['steps_per_s']:.0f} "
            f"| {'-' if estimate is None else f'{estimate:.0f}'} |")
    wall = sum(d["elapsed_s"] for d in cells.values())
    estimates = [full_length_estimate_s(d) for d in cells.values()]
    lines += ["", "## Wall time", "",
              f"Measured: {wall:.0f} s of cell time, summed over the {len(cells)} cell(s) above "
              "(with `--jobs J` up to J cells run side by side, so the wall clock is shorter; "
              "load average at the end of each cell: "
              + ", ".join(f"{c} {d['load_avg'][0]:.1f}" for c, d in cells.items()) + ")."]
    if all(e is not None for e in estimates):
        lines.append(
            f"At the paper's step counts and these measured rates (train steps/s of all seeds "
            f"together, plus compile and evaluation) these cells would take "
            f"{sum(estimates) / 60:.0f} min without early stopping (an upper bound: a cell "
            "stops once every seed is at 100%).")
        missing = [c for c in CELLS if c not in cells]
        by_task = {task: [full_length_estimate_s(d) for c, d in cells.items()
                          if c.endswith(task)] for task in TASKS}
        if missing and all(by_task[c.split("-")[1]] for c in missing):
            extra = sum(np.mean(by_task[c.split("-")[1]]) for c in missing)
            lines.append(
                f"The whole table, with each unmeasured cell ({', '.join(missing)}) costed at "
                f"the mean of the measured cells of its task: {(sum(estimates) + extra) / 60:.0f} "
                "min.")
    lines += ["", "## Commands", ""]
    lines += [f"- {c}: `{d['command']}`" for c, d in cells.items()]
    env = any_cell["environment"]
    lines += ["", "## Environment", "",
              "; ".join(f"{k} {v}" for k, v in env["versions"].items())
              + f"; backend {env['backend']}, {env['device_count']} device(s)"
              + (f"; CPU {cpu_line(env['cpu'])}" if "cpu" in env else "") + ". "
              "Full configs: the JSON next to this file.", ""]
    return "\n".join(lines)


def plot(cells: dict[str, dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TASKS), figsize=(11, 4), constrained_layout=True)
    colors = dict(zip(MIXERS, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    for ax, (task, task_name) in zip(axes, TASKS.items()):
        for mixer in MIXERS:
            data = cells.get(f"{mixer}-{task}")
            if data is None:
                continue
            steps = [h["step"] for h in data["history"]]
            curves = 100 * np.asarray([h["test_accuracy"] for h in data["history"]]).T
            for r, curve in enumerate(curves):
                ax.plot(steps, curve, color=colors[mixer], alpha=0.8, lw=1.2,
                        label=MIXER_NAMES[mixer] if r == 0 else None)
            ax.axhline(PAPER[f"{mixer}-{task}"], color=colors[mixer], ls="--", lw=0.8)
        ax.set_title(f"{task_name} (dashed: paper)")
        ax.set_xlabel("step")
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, 102)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(cell_dir: str, stem: str) -> list[str]:
    """Write `<stem>.md`, `.json` and `.png` from the cell files in `cell_dir`; their paths."""
    cells = load_cells(cell_dir, CELLS)
    if not cells:
        return []
    with open(stem + ".md", "w") as f:
        f.write(markdown(cells, cell_dir))
    summary = {c: summarize(d) | {"estimated_paper_length_s": full_length_estimate_s(d)}
               for c, d in cells.items()}
    with open(stem + ".json", "w") as f:
        json.dump({"summary": summary, "cells": cells}, f, indent=2)
        f.write("\n")
    plot(cells, stem + ".png")
    return [stem + ".md", stem + ".json", stem + ".png"]
