"""What the study reports share: reading finished cells, writing markdown + JSON, saving a plot."""

from __future__ import annotations

import glob
import json
import os
from typing import Any, Callable, Iterable, TypeVar

from h3_jax.train.workdir import write_json


def load_cells(cell_dir: str, known: Iterable[str]) -> dict[str, dict]:
    """The finished cells stored in `cell_dir` (one JSON each), in the order of `known`."""
    found = {}
    for path in sorted(glob.glob(os.path.join(cell_dir, "*.json"))):
        with open(path) as f:
            data = json.load(f)
        found[data["cell"]] = data
    return {c: found[c] for c in known if c in found}


Row = TypeVar("Row")


def best_per_setting(rows: dict[str, Row], all_cells: dict, score: Callable[[Row], float]
                     ) -> dict[tuple[str, int, int], tuple[str, Row]]:
    """(mixer, L, d_model) -> (cell, row) of its best learning rate by `score`, as Zoology's
    figures show the best of their rates; `all_cells` maps a cell to (mixer, L, pairs, d, lr)."""
    best: dict[tuple[str, int, int], tuple[str, Row]] = {}
    for cell, row in rows.items():
        mixer, L, _, d, _ = all_cells[cell]
        key = (mixer, L, d)
        if key not in best or score(row) > score(best[key][1]):
            best[key] = (cell, row)
    return best


def cpu_line(cpu: dict) -> str:
    """The `cpu` record of `h3_jax.train.workdir.environment()` as one phrase."""
    extensions = " ".join(cpu["vector_extensions"]) or "no AVX2"
    return f"{cpu['name']} (family/model {cpu['family_model']}, {cpu['cores']} cores, {extensions})"


def cpu_label(environment: dict) -> str:
    """Short name of the CPU a result ran on; results from before the record say so."""
    cpu = environment.get("cpu")
    if cpu is None:
        return "not recorded"
    return cpu["name"] + (" (AVX-512)" if "avx512f" in cpu["vector_extensions"] else "")


def write_markdown_and_json(stem: str, lines: list[str], data: Any) -> list[str]:
    """`<stem>.md` from the lines and `<stem>.json` from the data; their paths."""
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    write_json(stem + ".json", data)
    return [stem + ".md", stem + ".json"]


def pyplot():
    """matplotlib.pyplot drawing to files only, or None (with a hint) when it is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot (pip install -e '.[bench]')")
        return None
    return plt


def save_figure(fig, path: str) -> str:
    """Write the figure to `path` and free it; the path."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
