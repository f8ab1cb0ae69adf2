"""Associative recall at long sequences (the Hyena paper's protocol), H3 against attention.

Cells are `<mixer>-L<L>-V<V>`: the safari AR task (per-example dictionaries, loss on every
position, accuracy on the final answer) at input length L and vocabulary V, 2 layers of width 64
(MLP width 256, no dropout), AdamW (0.9, 0.98), lr 5e-4, weight decay 0.1, a cosine schedule
after a linear warmup over 5% of the steps (10 of 200 epochs), 2,000 train and 500 test
examples (Hyena Table A.1). The report puts the Hyena paper's Table C.1 (L = 2048) beside ours.

Scaled down for a 2-core CPU (the report says so): batch 8 instead of 32 and 3,000 steps per
cell, 24,000 examples seen (Hyena: 200 epochs of batch 32, 12,600 steps, 400,000 examples), the
schedule over them; one seed; a cell stops once its test accuracy reaches 100%. Default cells:
L = 2048, V in {10, 20}; `--cells all` adds V = 30 and 40.

    python experiments/long_ar.py [--jobs 2] [--cells all|CELL,...] [--steps N]
        [--budget-minutes M] [--seeds 0] [--out-dir experiments/results] [--name long_ar]
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
from reports import load_cells, pyplot, save_figure, write_markdown_and_json  # noqa: E402

MIXERS = ("h3", "attention")
LENGTH = 2048
VOCABS = (10, 20, 30, 40)
DEFAULT_VOCABS = (10, 20)
TRAIN_EXAMPLES, TEST_EXAMPLES = 2_000, 500
BATCH = 8
STEPS = {"h3": 3_000, "attention": 3_000}
# Hyena paper, Table C.1: AR test accuracy (%) at L = 2048 by vocabulary size.
HYENA_C1 = {("h3", 10): 92, ("h3", 20): 60, ("h3", 30): 10, ("h3", 40): 13,
            ("attention", 10): 100, ("attention", 20): 100, ("attention", 30): 82,
            ("attention", 40): 92}


def cell_name(mixer: str, L: int, V: int) -> str:
    return f"{mixer}-L{L}-V{V}"


ALL_CELLS = {cell_name(m, LENGTH, V): (m, V) for m in MIXERS for V in VOCABS}
DEFAULT_CELLS = tuple(c for c, (_, V) in ALL_CELLS.items() if V in DEFAULT_VOCABS)


def config_for(cell: str, steps: int | None, overrides: list[str]) -> RunConfig:
    mixer, V = ALL_CELLS[cell]
    steps = STEPS[mixer] if steps is None else steps
    setting = [
        f"task.vocab_size={V}", f"task.input_seq_len={LENGTH}",
        f"task.num_examples={TRAIN_EXAMPLES}", f"task.num_test_examples={TEST_EXAMPLES}",
        "model.d_model=64", "model.d_inner=256", "model.embed_dropout=0.0",
        "optim.lr=5e-4", "optim.b2=0.98", "optim.weight_decay=0.1", "optim.schedule=cosine",
        "optim.warmup_init_lr=0.0", "optim.lr_min=0.0",
        f"optim.warmup_steps={steps // 20}",  # Hyena: 10 of 200 epochs
        # 20 test sequences per call keep attention's (20, 1, L, L) scores near 300 MB.
        f"train.batch_size={BATCH}", "train.eval_batch_size=20", "train.steps_per_call=1",
        f"train.steps={steps}",
    ]
    if mixer == "attention":
        setting += [f"model.max_position_embeddings={2 * (LENGTH // 2) + 2}",
                    "model.mixer.dropout=0.0"]
    config = apply_overrides(get_preset(f"{mixer}-ar"), setting)
    return apply_overrides(shortened(config, steps), overrides)


def write_report(cell_dir: str, stem: str) -> list[str]:
    cells = load_cells(cell_dir, ALL_CELLS)
    ours = {ALL_CELLS[c]: 100 * float(np.mean(d["best_test_accuracy"]))
            for c, d in cells.items()}
    steps = sorted({d["config"]["train"]["steps"] for d in cells.values()})
    batches = sorted({d["config"]["train"]["batch_size"] for d in cells.values()})
    tasks = [d["config"]["task"] for d in cells.values()]
    examples = sorted({(t["num_examples"], t["num_test_examples"]) for t in tasks})
    lines = [
        f"# Associative recall at L = {LENGTH} (Hyena paper protocol): H3 against attention",
        "",
        "Best test accuracy (%) on the final answer over the evaluations, mean over seeds; the "
        "Hyena paper's Table C.1 after the slash. 2 layers of width 64, "
        f"{', '.join(f'{a:,} train / {b:,} test' for a, b in examples)} examples (Hyena "
        f"{TRAIN_EXAMPLES:,} / {TEST_EXAMPLES}), loss on every position. "
        f"Scaled down for a 2-core CPU: batch {', '.join(map(str, batches))} (Hyena 32), "
        f"{', '.join(f'{s:,}' for s in steps)} steps per cell (Hyena: 200 epochs, 12,600 "
        "steps of batch 32), the cosine schedule and its 5% warmup over them, one seed.",
        "",
        "| model | " + " | ".join(f"V={V}" for V in VOCABS) + " |",
        "|---|" + "---|" * len(VOCABS),
    ]
    for mixer in MIXERS:
        row = [("-" if (mixer, V) not in ours else f"{ours[(mixer, V)]:.1f}")
               + f" / {HYENA_C1[(mixer, V)]}" for V in VOCABS]
        lines.append(f"| {mixer} | " + " | ".join(row) + " |")
    lines += ["", "| cell | best accuracy (%) | final accuracy (%) | steps | time (s) |",
              "|---|---:|---:|---:|---:|"]
    for cell, data in sorted(cells.items()):
        lines.append(f"| {cell} | {100 * np.mean(data['best_test_accuracy']):.1f} | "
                     f"{100 * np.mean(data['test_accuracy']):.1f} | {data['final_step']} | "
                     f"{data['elapsed_s']:.0f} |")
    commands = sorted({d["command"] for d in cells.values()})
    lines += ["", "Commands:", ""] + [f"- `{c}`" for c in commands]
    files = write_markdown_and_json(stem, lines, {
        "ours": {cell_name(m, LENGTH, V): a for (m, V), a in ours.items()},
        "hyena_table_c1": {cell_name(m, LENGTH, V): a for (m, V), a in HYENA_C1.items()},
        "cells": cells,
    })
    files.append(plot(cells, stem + ".png"))
    return [f for f in files if f]


def plot(cells: dict[str, dict], path: str) -> str | None:
    plt = pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for i, (cell, data) in enumerate(sorted(cells.items())):
        steps = [h["step"] for h in data["history"]]
        accuracy = [100 * np.mean(h["test_accuracy"]) for h in data["history"]]
        ax.plot(steps, accuracy, "o-", color=f"C{i}", label=cell)
        ax.axhline(HYENA_C1[ALL_CELLS[cell]], color=f"C{i}", ls="--", alpha=0.5)
    ax.set(xlabel="step", ylabel="test accuracy (%)", ylim=(0, 102),
           title=f"AR at L={LENGTH} (dashed: Hyena Table C.1)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser, DEFAULT_CELLS, "long_ar")
    parser.set_defaults(seeds="0")
    run_study(parser, tuple(ALL_CELLS), config_for, write_report)


if __name__ == "__main__":
    restart_with_huge_pages()
    main()
