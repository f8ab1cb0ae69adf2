"""experiments/annotated_h3.py, the executed document: the script runs end to end as a plain
script (training included) and writes nothing where it runs, and the stored notebook
experiments/annotated_h3.ipynb holds the same code cells as the script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

try:  # in the docs extra, not the test extra: the split below needs no jupytext
    import jupytext
except ImportError:
    jupytext = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "annotated_h3.py")
NOTEBOOK = os.path.join(ROOT, "experiments", "annotated_h3.ipynb")
CELL_MARKER = re.compile(r"^# %%(.*)$")


def percent_code_cells(text: str) -> list[str]:
    """The code cells of a jupytext percent-format script, as jupytext reads them: the lines
    after each `# %%` marker (not `# %% [markdown]`) up to the next marker, without the blank
    lines at either end. Lines before the first marker (the YAML header) belong to no cell."""
    cells, current = [], None
    for line in text.splitlines():
        marker = CELL_MARKER.match(line)
        if marker:
            if current is not None:
                cells.append(current)
            current = None if "[markdown]" in marker.group(1) else []
        elif current is not None:
            current.append(line)
    if current is not None:
        cells.append(current)
    return ["\n".join(lines).strip("\n") for lines in cells]


def notebook_code_cells(notebook: dict) -> list[str]:
    sources = (c["source"] for c in notebook["cells"] if c["cell_type"] == "code")
    return ["".join(s).strip("\n") if isinstance(s, list) else s.strip("\n") for s in sources]


def test_the_notebook_holds_the_scripts_code_cells():
    with open(SCRIPT) as f:
        script = percent_code_cells(f.read())
    if jupytext is not None:  # the split reads the script as jupytext does
        assert [c.source for c in jupytext.read(SCRIPT).cells if c.cell_type == "code"] == script
    with open(NOTEBOOK) as f:
        notebook = json.load(f)
    assert notebook_code_cells(notebook) == script, (
        "experiments/annotated_h3.ipynb is out of date: render it again with the command in the "
        "first cell of experiments/annotated_h3.py")
    executed = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in executed), "the notebook is not executed"
    figures = [o for c in executed for o in c.get("outputs", [])
               if o.get("output_type") == "display_data" and "image/png" in o["data"]]
    assert len(figures) >= 7
    errors = [o for c in executed for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


def test_the_script_runs_and_writes_nothing_where_it_runs(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ANNOTATED_H3_FIGURES"}
    env["MPLBACKEND"] = "Agg"
    run = subprocess.run([sys.executable, SCRIPT], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "test accuracy" in run.stdout and "whole document" in run.stdout
    assert not list(tmp_path.iterdir())
