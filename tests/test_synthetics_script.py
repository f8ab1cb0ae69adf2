"""experiments/synthetics.py end to end on a tiny model: report files, per-seed results, and a
second invocation that skips the finished cell."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["model.d_model=8", "model.n_layer=1", "model.d_state=4", "model.d_inner=16",
        "task.num_examples=200", "task.num_test_examples=40", "train.batch_size=8"]


def test_synthetics_script_one_cell(tmp_path):
    command = [
        sys.executable, os.path.join(ROOT, "experiments", "synthetics.py"),
        "--cells", "h3-ar", "--seeds", "0,1", "--steps", "20", "--stop-at", "none",
        "--out-dir", str(tmp_path / "results"), "--workdir", str(tmp_path / "runs"),
        "--no-progress", *(f"--override={o}" for o in TINY),
    ]
    first = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert first.returncode == 0, first.stderr[-2000:]
    stem = tmp_path / "results" / "synthetics"
    for ext in ("md", "json", "png"):
        assert (tmp_path / "results" / f"synthetics.{ext}").exists()
    report = json.loads(stem.with_suffix(".json").read_text())
    cell = report["cells"]["h3-ar"]
    assert cell["seeds"] == [0, 1] and cell["final_step"] == 20
    assert len(cell["best_test_accuracy"]) == 2 and cell["history"][-1]["step"] == 20
    assert cell["config"]["model"]["d_model"] == 8
    assert "H3" in stem.with_suffix(".md").read_text()

    second = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "skipped" in second.stdout


def test_synthetics_script_jobs(tmp_path):
    """--jobs 2: two cells trained by two worker processes, one report from both."""
    command = [
        sys.executable, os.path.join(ROOT, "experiments", "synthetics.py"),
        "--cells", "h3-ar,attention-ar", "--seeds", "0", "--steps", "10", "--jobs", "2",
        "--stop-at", "none", "--out-dir", str(tmp_path / "results"),
        "--workdir", str(tmp_path / "runs"), "--no-progress", *(f"--override={o}" for o in TINY),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "started in worker 0" in run.stdout and "started in worker 1" in run.stdout
    report = json.loads((tmp_path / "results" / "synthetics.json").read_text())
    assert set(report["cells"]) == {"h3-ar", "attention-ar"}
    assert all(c["final_step"] == 10 for c in report["cells"].values())


def test_synthetics_script_bad_jobs():
    run = subprocess.run(
        [sys.executable, os.path.join(ROOT, "experiments", "synthetics.py"), "--jobs", "0"],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 2 and "--jobs: must be >= 1, got 0" in run.stderr
