"""The report of `mqar.py --recipe zoology`: Zoology Figure 2's cells trained with Zoology's recipe,
mean and range over seeds beside Zoology's values, cells still training with their curves so far.

Writes <stem>.md, .json and .png: the best accuracy per (mixer, L, d_model) against Zoology's,
drawn as Zoology draws Figure 2 (one panel per L, d_model across), and the test-accuracy curves
per epoch (mean over seeds, the band from the worst to the best) with the training and test
losses beside them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from h3_jax.train.config import RunConfig
from cells import cell_workdir, eval_history, sessions
from parked import parked_path
from reports import (
    best_per_setting, cpu_label, load_cells, pyplot, save_figure, write_markdown_and_json,
)

CLOSE_ENOUGH = 0.05  # the bar: a cell's mean within 5 points of Zoology's


def in_progress(cell_dir: str, workdir: str, cell: str, config: RunConfig, seeds: list[int],
                stop_at: float | None) -> dict | None:
    """A paused cell's evaluations so far, read from its run directory or from its parked copy,
    whichever has gone further, or None."""
    run_dir = cell_workdir(workdir, cell, config, seeds, stop_at)
    found = [(eval_history(d), d) for d in (run_dir, parked_path(cell_dir, run_dir))]
    history, source = max(found, key=lambda h: h[0][-1]["step"] if h[0] else -1)
    if not history:
        return None
    best = np.max([h["test_accuracy"] for h in history], axis=0)
    return {"history": history, "best_test_accuracy": best.tolist(),
            "final_step": history[-1]["step"], "sessions": sessions(source),
            "in_progress": True}


def cpus(result: dict) -> list[str]:
    """The CPUs a cell trained on, in the order first used, as far as its records go: its
    sessions (see `cells.sessions`) and, for a finished cell, the one it finished on."""
    found = [s["cpu"] for s in result.get("sessions", [])]
    if "environment" in result:
        found.append(result["environment"].get("cpu"))
    labels = (f"{cpu_label({'cpu': c})} {c['family_model']}" if c else "not recorded"
              for c in found)
    return list(dict.fromkeys(labels))


def summarize(accuracies: list[float]) -> dict:
    a = np.asarray(accuracies, dtype=float)
    return {"mean": float(a.mean()), "min": float(a.min()), "max": float(a.max()),
            "seeds": len(a)}


def write_report(cell_dir: str, stem: str, *, all_cells: dict, zoology: dict,
                 config_for: Callable[[str], RunConfig], workdir: str, seeds: list[int],
                 stop_at: float | None) -> list[str]:
    """The report of every cell, finished or paused, whichever command trained it (a run of
    some cells rewrites the report with the others kept)."""
    done = load_cells(cell_dir, all_cells)
    cells = dict(done)
    for cell in all_cells:
        if cell not in cells:
            partial = in_progress(cell_dir, workdir, cell, config_for(cell), seeds, stop_at)
            if partial is not None:
                cells[cell] = partial
    rows, data = [], {}
    for cell, result in cells.items():
        mixer, L, kv, d, lr = all_cells[cell]
        config = config_for(cell)
        total, epoch = config.train.steps, config.optim.schedule_every
        stats = summarize(result["best_test_accuracy"])
        theirs = zoology[(mixer, L, d)]
        status = (f"training: epoch {result['final_step'] // epoch} of {total // epoch}"
                  if result.get("in_progress") else
                  "stopped early" if any(np.atleast_1d(result.get("stopped_early", False)))
                  else f"{total // epoch} epochs")
        history = [{"epoch": h["step"] // epoch, "test_accuracy": h["test_accuracy"],
                    "train_loss": h.get("train_loss"), "test_loss": h.get("test_loss")}
                   for h in result["history"]]
        data[cell] = {**stats, "zoology": theirs, "status": status, "lr": lr,
                      "cpus": cpus(result), "history": history}
        near = "yes" if abs(stats["mean"] - theirs) <= CLOSE_ENOUGH else "no"
        rows.append(f"| {mixer} | {L} ({kv}) | {d} | {stats['mean']:.3f} "
                    f"({stats['min']:.3f}-{stats['max']:.3f}, {stats['seeds']} seeds) | "
                    f"{theirs:.2f} | {stats['mean'] - theirs:+.3f} | "
                    f"{near if not result.get('in_progress') else '-'} | "
                    f"{losses(history[-1])} | {status} | {', '.join(data[cell]['cpus'])} |")
    lines = [
        "# MQAR, Zoology Figure 2 with Zoology's recipe",
        "",
        "`python experiments/mqar.py --recipe zoology`: V = 8192, 100,000 train / 3,000 test "
        "examples, filler 0; 2 layers with Zoology's blocks (mixer, then the Identity state "
        "mixer's norm2(x) added to the residual), embedding dropout 0.1; batch 512 for 64 "
        "epochs of 195 steps; one AdamW group (weight decay 0.1), cosine decay stepped once per "
        "epoch, no warmup; evaluation every epoch, early stop at 0.99. Best test accuracy over "
        "the evaluations: the mean over seeds with the range (worst-best); Zoology's Figure 2 "
        "(best of four rates, read from the plot to +-0.03) beside. `within 5` says whether the "
        "mean lies within 5 points of Zoology's; cells still training show their best so far. "
        "`train / test loss` is at the last evaluation, mean over seeds: the training loss "
        "averaged over that epoch's steps (embedding dropout on), the test loss on the 3,000 "
        "test examples; a test loss well above the training loss is the model learning the "
        "100,000 training examples rather than the recall rule. Why a cell falls short, read "
        "from its curves: [mqar_study.md](mqar_study.md#zoologys-recipe-all-64-epochs).",
        "",
        "| mixer | L (kv) | d_model | h3-jax, mean (range) | Zoology | difference | within 5 "
        "| train / test loss | status | CPUs |",
        "|---|---|---:|---|---:|---:|---|---|---|---|",
        *rows,
        "",
        "CPUs: where each cell trained (name, family/model), in the order first used. Resumes "
        "from before the metrics logs kept a record per session are missing: such a cell names "
        "the CPU it started on, those of later sessions and, once finished, its last.",
    ]
    files = write_markdown_and_json(stem, lines, {"cells": data, "seeds": seeds})
    files.append(plot(data, all_cells, zoology, stem + ".png"))
    return [f for f in files if f]


def mean_loss(values: list[float | None] | None) -> float | None:
    """The mean over the seeds whose loss is finite (a diverged seed logs None)."""
    finite = [v for v in values or [] if v is not None]
    return float(np.mean(finite)) if finite else None


def losses(evaluation: dict) -> str:
    """'train / test' loss of one evaluation, each the mean over seeds ('-' where not logged)."""
    train, test = mean_loss(evaluation["train_loss"]), mean_loss(evaluation["test_loss"])
    return " / ".join("-" if v is None else f"{v:.2f}" for v in (train, test))


def plot(data: dict, all_cells: dict, zoology: dict, path: str) -> str | None:
    """Top row, Figure 2's layout: one panel per L, best accuracy against d_model per mixer
    (h3-jax: mean and range over seeds, hollow while still training; Zoology: dashed). Bottom
    row: every cell's test-accuracy curve and its losses, per epoch."""
    plt = pyplot()
    if plt is None or not data:
        return None
    lengths = sorted({all_cells[c][1] for c in data})
    fig, axes = plt.subplots(2, max(2, len(lengths)), figsize=(12, 8), squeeze=False)
    for L, ax in zip(lengths, axes[0]):
        figure_2_panel(ax, L, data, all_cells, zoology)
    for ax in axes[0][len(lengths):]:
        ax.axis("off")
    # One legend for the top row, above it: inside a panel it would hide markers in any corner.
    entries = {label: handle for ax in axes[0]
               for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(entries.values(), entries.keys(), loc="upper center", ncol=len(entries), fontsize=8,
               bbox_to_anchor=(0.5, 0.955))
    curves, loss = axes[1][:2]
    for i, (cell, row) in enumerate(sorted(data.items())):
        mixer, L, _, d, _ = all_cells[cell]
        color, label = f"C{i % 10}", f"{mixer} L={L} d={d}"
        epochs = [h["epoch"] for h in row["history"]]
        acc = np.asarray([h["test_accuracy"] for h in row["history"]], dtype=float)
        curves.plot(epochs, acc.mean(axis=1), color=color, label=label)
        curves.fill_between(epochs, acc.min(axis=1), acc.max(axis=1), color=color, alpha=0.2)
        for key, style in (("train_loss", "--"), ("test_loss", "-")):
            points = [(h["epoch"], m) for h in row["history"]
                      if (m := mean_loss(h[key])) is not None]
            if points:
                loss.plot(*zip(*points), style, color=color,
                          label=label if key == "test_loss" else None)
    curves.set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1.02),
               title="learning curves (mean, range over seeds)")
    curves.legend(fontsize=7)
    loss.set(xlabel="epoch", ylabel="loss (mean over seeds)", yscale="log",
             title="test loss (solid), training loss (dashed)")
    loss.legend(fontsize=7)
    fig.suptitle("Zoology Figure 2's cells: h3-jax's best test accuracy (o: mean, bar: range over "
                 "seeds, hollow: still training) and Zoology's (x, dashed)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return save_figure(fig, path)


def best_rows(data: dict, all_cells: dict) -> dict[tuple[str, int, int], dict]:
    """(mixer, L, d_model) -> the report row of its best learning rate (highest mean)."""
    return {setting: row for setting, (_, row)
            in best_per_setting(data, all_cells, lambda row: row["mean"]).items()}


def figure_2_panel(ax, L: int, data: dict, all_cells: dict, zoology: dict) -> None:
    """Best accuracy against d_model at sequence length L, one colour per mixer."""
    widths = sorted({d for (_, length, d) in zoology if length == L}
                    | {all_cells[c][3] for c in data if all_cells[c][1] == L})
    mixers = sorted({m for (m, _, _) in zoology} | {all_cells[c][0] for c in data})
    pairs = next(kv for (_, length, kv, _, _) in all_cells.values() if length == L)
    for j, mixer in enumerate(mixers):
        color = f"C{j}"
        theirs = [(widths.index(d), zoology[(mixer, L, d)]) for d in widths
                  if (mixer, L, d) in zoology]
        if theirs:
            ax.plot(*zip(*theirs), "x--", color=color, markersize=9, label=f"{mixer}, Zoology")
        ours = sorted((widths.index(d), row) for (m, length, d), row
                      in best_rows(data, all_cells).items() if m == mixer and length == L)
        if not ours:
            continue
        x = [i for i, _ in ours]
        ax.plot(x, [r["mean"] for _, r in ours], "-", color=color, label=f"{mixer}, h3-jax")
        for i, r in ours:
            ax.errorbar([i], [r["mean"]], yerr=[[r["mean"] - r["min"]], [r["max"] - r["mean"]]],
                        fmt="o", color=color, capsize=3,
                        mfc="white" if r["status"].startswith("training") else color)
    # Only the widths in the figure, as plain numbers: no log-scale ticks in between.
    ax.set_xticks(range(len(widths)), [str(w) for w in widths])
    ax.set_xlim(-0.5, len(widths) - 0.5)
    ax.set(xlabel="d_model", ylabel="best test accuracy", ylim=(0, 1.02),
           title=f"L = {L}, {pairs} key-value pairs")
