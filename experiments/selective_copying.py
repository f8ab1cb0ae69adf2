"""Selective copying with H3 around its two inner SSMs: the time-invariant S4D (`h3-selcopy`) and
the selective S6 (`h3s6-selcopy`), the H3 rows of the Mamba paper's Table 1 beside them.

Each cell is its preset (16 tokens to copy, vocabulary 16, 2 layers, D = 64, L = 256), its seeds
trained together in one vmapped step; seed s means `train.seed=s, train.data_seed=s`. Finished
cells are stored in `<out-dir>/<name>/<cell>.json` and skipped when run again; a cell in progress
checkpoints under `--workdir` and `--budget-minutes` pauses it, so the same command continues.

    python experiments/selective_copying.py [--cells h3-selcopy,h3s6-selcopy] [--seeds 0,1]
        [--steps N] [--override section.key=value ...] [--budget-minutes M] [--jobs 2]
        [--out-dir experiments/results] [--name selective_copying]

The accuracy is the best test accuracy over the evaluations (per output token, the 16 tokens to
copy), as in the synthetics table; `--steps N` shortens both cells (the report says so).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from h3_jax.hugepages import restart_with_huge_pages
from h3_jax.presets import get_preset
from h3_jax.train.config import RunConfig, apply_overrides

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cells import add_arguments, run_study, shortened  # noqa: E402
from reports import cpu_line, load_cells, pyplot, save_figure, write_markdown_and_json  # noqa: E402

CELLS = ("h3-selcopy", "h3s6-selcopy")
NAMES = {"h3-selcopy": "H3 (S4D)", "h3s6-selcopy": "H3 (S6)"}
# Mamba paper (Gu & Dao 2023), Table 1, selective copying accuracy (%) of the H3 architecture
# with each inner layer: S4 (time-invariant) and S6 (selective). Their task: L = 4096.
MAMBA_TABLE_1 = {"h3-selcopy": 57.0, "h3s6-selcopy": 99.7}


def cell_config(cell: str, steps: int | None, overrides: list[str]) -> RunConfig:
    return shortened(apply_overrides(get_preset(cell), overrides), steps)


def summarize(data: dict) -> dict:
    best = 100 * np.asarray(data["best_test_accuracy"], np.float64)
    final = 100 * np.asarray(data["test_accuracy"], np.float64)
    return {"best_mean": float(best.mean()), "best_per_seed": best.tolist(),
            "final_mean": float(final.mean()), "mamba_table_1": MAMBA_TABLE_1[data["cell"]]}


def markdown(cells: dict[str, dict], notes: str) -> list[str]:
    """The report's lines; the file `notes`, if present (budget, findings), follows the table."""
    any_cell = next(iter(cells.values()))
    task = any_cell["config"]["task"]
    lines = [
        "# Selective copying: H3 with a time-invariant (S4D) and a selective (S6) SSM", "",
        f"Task: {task['num_tokens']} tokens to copy, vocabulary {task['vocab_size']}, sequence "
        f"length {task['seq_len']}; 2 layers, "
        "D = 64; seeds " + ", ".join(map(str, any_cell["seeds"])) + " trained together. "
        "Accuracy: best test accuracy (%) over the evaluations, per copied token; the Mamba "
        "paper's Table 1 at L = 4096 beside it.", "",
        "| model | steps | best per seed (%) | mean | final mean | Mamba Table 1 | wall s "
        "| train steps/s (all seeds) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cell, data in cells.items():
        s = summarize(data)
        shortened_note = " (shortened)" if data["steps_override"] else ""
        lines.append(
            f"| {NAMES[cell]} | {data['final_step']}{shortened_note} "
            f"| {', '.join(f'{a:.1f}' for a in s['best_per_seed'])} | {s['best_mean']:.1f} "
            f"| {s['final_mean']:.1f} | {s['mamba_table_1']:.1f} | {data['elapsed_s']:.0f} "
            f"| {data['steps_per_s']:.2f} |")
    if os.path.exists(notes):
        with open(notes) as f:
            lines += ["", f.read().strip()]
    env = any_cell["environment"]
    lines += ["", "## Commands", ""]
    lines += [f"- {NAMES[c]}: `{d['command']}`" for c, d in cells.items()]
    lines += ["", "## Environment", "",
              "; ".join(f"{k} {v}" for k, v in env["versions"].items())
              + (f"; CPU {cpu_line(env['cpu'])}" if "cpu" in env else "")
              + ". Full configs: the JSON next to this file.", ""]
    return lines


def plot(cells: dict[str, dict], path: str) -> str | None:
    plt = pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for (cell, data), color in zip(cells.items(), ("tab:blue", "tab:green")):
        steps = [h["step"] for h in data["history"]]
        curves = 100 * np.asarray([h["test_accuracy"] for h in data["history"]]).T
        for r, curve in enumerate(curves):
            ax.plot(steps, curve, color=color, lw=1.2, label=NAMES[cell] if r == 0 else None)
        ax.axhline(MAMBA_TABLE_1[cell], color=color, ls="--", lw=0.8)
    ax.set(title="Selective copying (dashed: Mamba Table 1, L = 4096)", xlabel="step",
           ylabel="test accuracy (%)", ylim=(0, 102))
    ax.legend(loc="lower right")
    return save_figure(fig, path)


def write_report(cell_dir: str, stem: str) -> list[str]:
    """`<stem>.md`, `.json` and `.png` from the finished cells in `cell_dir`; their paths."""
    cells = load_cells(cell_dir, CELLS)
    if not cells:
        return []
    summary = {c: summarize(d) for c, d in cells.items()}
    lines = markdown(cells, stem + "_notes.md")
    written = write_markdown_and_json(stem, lines, {"summary": summary, "cells": cells})
    figure = plot(cells, stem + ".png")
    return written + ([figure] if figure else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser, CELLS, "selective_copying")
    parser.set_defaults(seeds="0,1")
    run_study(parser, CELLS, cell_config, write_report)


if __name__ == "__main__":
    restart_with_huge_pages()
    main()
