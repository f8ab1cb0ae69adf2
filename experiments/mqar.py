"""MQAR (multi-query associative recall) on the Zoology Figure 2 settings, H3 against attention.

Cells are `<mixer>-L<L>-d<d_model>-lr<lr>`: the `h3-mqar` / `attention-mqar` presets (V=8192,
100,000 train and 3,000 test examples, filler 0, mixer-only 2-layer models, H3 with d_state = L
and head_dim 2, one-head attention with learned positions) at (L, kv) in {(64, 4), (128, 8)} and
d_model in {64, 128}, over a learning-rate sweep. The report takes the best rate per setting, as
Zoology's figure does, and prints Zoology's numbers beside ours.

Scaled down for a 2-core CPU (the report says so): batch 64 instead of 512, 6,000 steps per cell
(about 4 of Zoology's 64 epochs) with the cosine schedule over them, the middle two of Zoology's
four rates by default (`--cells all` for the four), one seed; a cell stops once its test accuracy
passes 99% (Zoology's early stop).

    python experiments/mqar.py [--jobs 2] [--cells all|CELL,...] [--steps N]
        [--budget-minutes M] [--seeds 0] [--out-dir experiments/results] [--name mqar]

`--recipe zoology` trains with Zoology's own recipe instead, reported as `mqar_zoology`:
Zoology's blocks (`model.identity_mlp`), embedding dropout 0.1, batch 512 over the 100,000
examples for 64 epochs (195 steps each: the fixed train set drops the last partial batch, where
Zoology's loader keeps it), one AdamW group with weight decay 0.1, a cosine decay stepped once per
epoch with no warmup, an evaluation per epoch, early stop at 0.99; the rate 2.15e-3 (the best of
the scaled sweep) for every setting and seeds 0, 1, 2 by default. A cell takes hours on a CPU:
`--budget-minutes` pauses it with a checkpoint (its latest also copied to
`results/mqar_zoology/paused/`, for another machine: see `parked.py`), the same command continues
it, and the report shows cells still in progress with their curves so far.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

import numpy as np

from h3_jax.hugepages import restart_with_huge_pages
from h3_jax.presets import get_preset
from h3_jax.train.config import RunConfig, apply_overrides, config_from_dict
from h3_jax.train.optim import is_one_group

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mqar_zoology_report as zoology_report  # noqa: E402
from cells import add_arguments, run_study, shortened  # noqa: E402
from reports import (  # noqa: E402
    best_per_setting, cpu_label, load_cells, pyplot, save_figure, write_markdown_and_json,
)

MIXERS = ("h3", "attention")
SETTINGS = ((64, 4), (128, 8))  # (L, kv pairs)
WIDTHS = (64, 128)
ZOOLOGY_LRS = (1e-4, 4.64e-4, 2.15e-3, 1e-2)  # logspace(-4, -2, 4)
DEFAULT_LRS = ZOOLOGY_LRS[1:3]
STEPS = 6_000
# Zoology Figure 2 (best rate, validation accuracy, read from the figure to about +-0.03).
ZOOLOGY = {("attention", 64, 64): 1.00, ("attention", 64, 128): 1.00,
           ("attention", 128, 64): 1.00, ("attention", 128, 128): 1.00,
           ("h3", 64, 64): 0.93, ("h3", 64, 128): 1.00, ("h3", 128, 64): 0.25,
           ("h3", 128, 128): 0.74}


def cell_name(mixer: str, L: int, d: int, lr: float) -> str:
    return f"{mixer}-L{L}-d{d}-lr{lr:.3g}"


ALL_CELLS = {
    cell_name(m, L, d, lr): (m, L, kv, d, lr)
    for m in MIXERS for L, kv in SETTINGS for d in WIDTHS for lr in ZOOLOGY_LRS
}
DEFAULT_CELLS = tuple(c for c, (_, _, _, _, lr) in ALL_CELLS.items() if lr in DEFAULT_LRS)
ZOOLOGY_EPOCHS, ZOOLOGY_BATCH = 64, 512
ZOOLOGY_CELLS = tuple(c for c, (_, _, _, _, lr) in ALL_CELLS.items() if lr == 2.15e-3)


def config_for(cell: str, steps: int | None, overrides: list[str],
               recipe: str = "scaled") -> RunConfig:
    mixer, L, kv, d, lr = ALL_CELLS[cell]
    setting = [f"task.seq_len={L}", f"task.num_kv_pairs={kv}", f"model.d_model={d}",
               f"optim.lr={lr}"]
    setting.append(f"model.mixer.d_state={L}" if mixer == "h3"
                   else f"model.max_position_embeddings={L}")
    config = apply_overrides(get_preset(f"{mixer}-mqar"), setting)
    if recipe == "zoology":
        config = zoology_recipe(config, steps)
    else:
        # STEPS with the preset's warmup, and its 20,000-step cadence scaled to STEPS (or
        # --steps); stored cells were trained so.
        config = apply_overrides(config, [f"train.steps={STEPS}"])
        config = shortened(config, STEPS if steps is None else steps)
    return apply_overrides(config, overrides)


def zoology_recipe(config: RunConfig, steps: int | None) -> RunConfig:
    """Zoology's training of one Figure-2 cell (see the module docstring); `steps` shortens it
    for smoke runs, the epoch shrinking in proportion so the schedule keeps its shape."""
    epoch = config.task.num_examples // ZOOLOGY_BATCH
    total = ZOOLOGY_EPOCHS * epoch
    k = 5  # steps per compiled call: divides the 195-step epoch
    if steps is not None:
        total = max(k, -(-steps // k) * k)
        epoch = max(k, total // ZOOLOGY_EPOCHS // k * k)
    return apply_overrides(config, [
        "model.identity_mlp=true", "model.embed_dropout=0.1",
        f"optim.lr_ssm={config.optim.lr}", f"optim.weight_decay_ssm={config.optim.weight_decay}",
        "optim.schedule=cosine", "optim.warmup_steps=0", "optim.lr_min=0.0",
        f"optim.schedule_every={epoch}", f"train.batch_size={ZOOLOGY_BATCH}",
        f"train.steps={total}", f"train.steps_per_call={k}", f"train.log_every={epoch}",
        f"train.eval_every={epoch}", f"train.checkpoint_every={5 * epoch}",
    ])


def optimizer_groups(config: RunConfig) -> str:
    """A cell's optimizer: "one AdamW group" or "H3 groups"."""
    return "one AdamW group" if is_one_group(config.optim) else "H3 groups"


def block_kind(config: RunConfig) -> str:
    """A cell's blocks: "mixer only", or "mixer + norm2(x)" (Zoology's Identity state mixer,
    `model.identity_mlp`)."""
    return "mixer + norm2(x)" if config.model.identity_mlp else "mixer only"


def write_report(cell_dir: str, stem: str) -> list[str]:
    cells = load_cells(cell_dir, ALL_CELLS)
    best = {setting: {"accuracy": float(np.mean(data["best_test_accuracy"])),
                      "lr": ALL_CELLS[cell][4], "cell": cell, "steps": data["final_step"],
                      "elapsed_s": data["elapsed_s"]}
            for setting, (cell, data) in best_per_setting(
                cells, ALL_CELLS, lambda data: np.mean(data["best_test_accuracy"])).items()}
    lrs = sorted({ALL_CELLS[c][4] for c in cells})
    steps = sorted({d["config"]["train"]["steps"] for d in cells.values()})
    batches = sorted({d["config"]["train"]["batch_size"] for d in cells.values()})
    tasks = [d["config"]["task"] for d in cells.values()]
    examples = sorted({(t["num_examples"], t["num_test_examples"]) for t in tasks})
    lines = [
        "# MQAR (Zoology Figure 2 settings): H3 against attention",
        "",
        "Best test accuracy over the evaluations, best of the rates run for the setting "
        f"(of {', '.join(f'{x:g}' for x in lrs)}; the cells below say which ran), mean over "
        "seeds; Zoology's Figure 2 (read from the plot, +-0.03) after the slash. "
        f"V=8192, {', '.join(f'{a:,} train / {b:,} test' for a, b in examples)} examples, filler "
        "0, 2 layers without an MLP: mixer-only blocks by default, or Zoology's blocks, whose "
        "Identity state mixer adds norm2(x) to the residual (`model.identity_mlp`; the `blocks` "
        "column of the cells below says which). Scaled down "
        f"for a 2-core CPU: batch {', '.join(map(str, batches))}, {', '.join(map(str, steps))} "
        "steps per cell (Zoology: 64 epochs of batch 512, about 12,500 steps), early "
        "stop above 99%. Optimizer: by default the H3 paper's groups (SSM dynamics without "
        "weight decay, at a rate of at most 1e-3); Zoology trains every parameter in one AdamW "
        "group (the `optimizer` column of the cells below says which each cell used).",
        "",
        "| L (kv) | model | " + " | ".join(f"d={d}" for d in WIDTHS) + " |",
        "|---|---|" + "---|" * len(WIDTHS),
    ]
    for L, kv in SETTINGS:
        for mixer in MIXERS:
            row = []
            for d in WIDTHS:
                b = best.get((mixer, L, d))
                ours = "-" if b is None else f"{b['accuracy']:.2f} (lr {b['lr']:g})"
                row.append(f"{ours} / {ZOOLOGY[(mixer, L, d)]:.2f}")
            lines.append(f"| {L} ({kv}) | {mixer} | " + " | ".join(row) + " |")
    lines += ["", "Every cell (times depend on the CPU several-fold, and on what ran beside it):",
              "", "| cell | optimizer | blocks | best accuracy | steps | time (s) | CPU |",
              "|---|---|---|---:|---:|---:|---|"]
    for cell, data in sorted(cells.items()):
        # Read through the config converter: settings a cell predates count at their defaults.
        config = config_from_dict(data["config"])
        lines.append(f"| {cell} | {optimizer_groups(config)} | {block_kind(config)} | "
                     f"{np.mean(data['best_test_accuracy']):.3f} | "
                     f"{data['final_step']} | {data['elapsed_s']:.0f} | "
                     f"{cpu_label(data['environment'])} |")
    commands = sorted({d["command"] for d in cells.values()})
    lines += ["", "Commands:", ""] + [f"- `{c}`" for c in commands]
    files = write_markdown_and_json(stem, lines, {
        "best": {f"{m}-L{L}-d{d}": v for (m, L, d), v in best.items()},
        "zoology": {f"{m}-L{L}-d{d}": v for (m, L, d), v in ZOOLOGY.items()},
        "cells": cells,
    })
    files.append(plot(best, stem + ".png"))
    return [f for f in files if f]


def plot(best: dict, path: str) -> str | None:
    plt = pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, len(SETTINGS), figsize=(4 * len(SETTINGS), 3.5), sharey=True)
    for ax, (L, kv) in zip(np.atleast_1d(axes), SETTINGS):
        for mixer, color in zip(MIXERS, ("C0", "C1")):
            ours = [(d, best[(mixer, L, d)]["accuracy"]) for d in WIDTHS if (mixer, L, d) in best]
            if ours:
                ax.plot(*zip(*ours), "o-", color=color, label=f"{mixer} (h3-jax)")
            ax.plot(WIDTHS, [ZOOLOGY[(mixer, L, d)] for d in WIDTHS], "s--", color=color,
                    alpha=0.5, label=f"{mixer} (Zoology)")
        ax.set(title=f"L={L}, {kv} pairs", xlabel="d_model", xscale="log", ylim=(0, 1.02))
        ax.set_xticks(WIDTHS, [str(d) for d in WIDTHS])
        ax.minorticks_off()  # a log axis would print its own minor ticks ("7x10^1")
    np.atleast_1d(axes)[0].set_ylabel("best test accuracy")
    np.atleast_1d(axes)[-1].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def main() -> None:
    recipe_arg = argparse.ArgumentParser(add_help=False)
    recipe_arg.add_argument("--recipe", choices=("scaled", "zoology"), default="scaled",
                            help="the scaled-down sweep (default) or Zoology's own recipe")
    recipe = recipe_arg.parse_known_args()[0].recipe
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], parents=[recipe_arg])
    if recipe == "scaled":
        add_arguments(parser, DEFAULT_CELLS, "mqar")
        parser.set_defaults(seeds="0", stop_at=0.99)
        run_study(parser, tuple(ALL_CELLS), config_for, write_report)
        return
    add_arguments(parser, ZOOLOGY_CELLS, "mqar_zoology")
    parser.set_defaults(stop_at=0.99)
    args = parser.parse_known_args()[0]
    seeds = [int(s) for s in args.seeds.split(",")]

    def zoology_config(cell, steps, overrides):
        return config_for(cell, steps, overrides, recipe="zoology")

    report = functools.partial(
        zoology_report.write_report, all_cells=ALL_CELLS, zoology=ZOOLOGY,
        config_for=lambda cell: zoology_config(cell, args.steps, args.override),
        workdir=args.workdir, seeds=seeds, stop_at=args.stop_at,
    )
    run_study(parser, tuple(ALL_CELLS), zoology_config, report)


if __name__ == "__main__":
    restart_with_huge_pages()
    main()
