"""experiments/ih_extrapolation.py end to end on a tiny model: a run paused by its time budget
reports its checkpoint as preliminary; the next run finishes training, scores at several lengths
(FFT prefill and recurrent steps) and writes the report; a third skips training and gives the
same numbers."""

from __future__ import annotations

import json

TINY = ["model.d_model=8", "model.n_layer=1", "model.mixer.d_state=4", "model.d_inner=16",
        "task.num_examples=100", "task.num_test_examples=40"]


def test_ih_extrapolation_script(tmp_path, run_script):
    args = [
        "--steps", "32", "--lengths", "5", "--examples", "8", "--prefill-len", "16",
        "--out-dir", str(tmp_path / "results"), "--workdir", str(tmp_path / "runs"),
        "--no-progress", *(f"--override={o}" for o in TINY),
    ]
    stem = tmp_path / "results" / "ih_extrapolation"
    paused = run_script("ih_extrapolation", *args, "--budget-minutes", "0.01")
    assert paused.returncode == 0, paused.stderr[-2000:]
    early = json.loads(stem.with_suffix(".json").read_text())
    assert early["train"]["final_step"] == 16 and not early["train"]["completed"]
    assert "**Preliminary**: training paused at step 16 of 32" in stem.with_suffix(".md").read_text()

    first = run_script("ih_extrapolation", *args)
    assert first.returncode == 0, first.stderr[-2000:]
    for ext in ("md", "json", "png"):
        assert stem.with_suffix(f".{ext}").exists()
    report = json.loads(stem.with_suffix(".json").read_text())
    assert report["train"]["final_step"] == 32 and report["checkpoint_step"] == 32
    assert report["train"]["completed"] and "Preliminary" not in stem.with_suffix(".md").read_text()
    assert set(report["lengths"]) == {"5"}  # 32 tokens: 16 by FFT prefill, 16 recurrent steps
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in report["lengths"].values())
    assert report["config"]["task"]["vocab_size"] == 16 and report["published_h3"]["9"] == 80.9
    assert "Mamba paper" in stem.with_suffix(".md").read_text()

    second = run_script("ih_extrapolation", *args)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "training done already" in second.stdout
    again = json.loads(stem.with_suffix(".json").read_text())
    assert again["lengths"].keys() == report["lengths"].keys()
    for e in report["lengths"]:
        assert again["lengths"][e]["accuracy"] == report["lengths"][e]["accuracy"]


def test_ih_extrapolation_bad_lengths(run_script):
    run = run_script("ih_extrapolation", "--lengths", "1-4", timeout=120)
    assert run.returncode == 2 and "log2 lengths must lie in [2, 24]" in run.stderr
