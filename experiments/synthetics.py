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
import os
import sys

from h3_jax.hugepages import restart_with_huge_pages
from h3_jax.presets import get_preset
from h3_jax.train.config import RunConfig, apply_overrides

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cells import add_arguments, run_study, shortened  # noqa: E402
from synthetics_report import CELLS, write_report  # noqa: E402


def cell_config(cell: str, steps: int | None, overrides: list[str]) -> RunConfig:
    """The preset (plus `overrides`), shortened to `steps` with its cadences scaled to match."""
    return shortened(apply_overrides(get_preset(cell), overrides), steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser, CELLS, "synthetics")
    run_study(parser, CELLS, cell_config, write_report)


if __name__ == "__main__":
    restart_with_huge_pages()
    main()
