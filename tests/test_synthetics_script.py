"""experiments/synthetics.py end to end on a tiny model: two cells trained by two worker
processes, report files, per-seed results, and a second invocation that skips finished cells."""

from __future__ import annotations

import json

TINY = ["model.d_model=8", "model.n_layer=1", "model.d_inner=16",
        "task.num_examples=200", "task.num_test_examples=40", "train.batch_size=8"]


def test_synthetics_script_two_cells_in_two_workers(tmp_path, run_script):
    args = ["--cells", "h3-ar,attention-ar", "--seeds", "0,1", "--steps", "20", "--jobs", "2",
            "--stop-at", "none", "--out-dir", str(tmp_path / "results"),
            "--workdir", str(tmp_path / "runs"), "--no-progress",
            *(f"--override={o}" for o in TINY)]
    first = run_script("synthetics", *args)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "started in worker 0" in first.stdout and "started in worker 1" in first.stdout
    stem = tmp_path / "results" / "synthetics"
    for ext in ("md", "json", "png"):
        assert stem.with_suffix(f".{ext}").exists()
    report = json.loads(stem.with_suffix(".json").read_text())
    assert set(report["cells"]) == {"h3-ar", "attention-ar"}
    cell = report["cells"]["h3-ar"]
    assert cell["seeds"] == [0, 1] and cell["final_step"] == 20
    assert len(cell["best_test_accuracy"]) == 2 and cell["history"][-1]["step"] == 20
    assert cell["config"]["model"]["d_model"] == 8
    assert "--jobs 2" in cell["command"] and "--cpu" not in cell["command"]  # the user's command
    assert report["cells"]["attention-ar"]["final_step"] == 20
    assert "H3" in stem.with_suffix(".md").read_text()

    second = run_script("synthetics", *args)
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.count("skipped") == 2


def test_synthetics_script_bad_jobs(run_script):
    run = run_script("synthetics", "--jobs", "0", timeout=120)
    assert run.returncode == 2 and "--jobs: must be >= 1, got 0" in run.stderr
