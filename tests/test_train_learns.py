"""End to end, in process: tiny-ar learns associative recall; `h3-jax eval` reads the run back;
a diverging run stops at the first non-finite loss and keeps its last good checkpoint."""

from __future__ import annotations

import json

import pytest

from h3_jax.cli import main


@pytest.fixture(scope="module")
def tiny_ar_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny") / "run"
    code = main(["train", "tiny-ar", "--workdir", str(workdir), "--progress=off"])
    return code, workdir


def test_tiny_ar_reaches_90_percent(tiny_ar_run, capsys):
    code, workdir = tiny_ar_run
    assert code == 0
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["test_accuracy"][0] >= 0.9, summary
    assert summary["best_test_accuracy"][0] >= summary["test_accuracy"][0]
    assert summary["preset"] == "tiny-ar" and summary["train_loss"] is not None
    config = json.loads((workdir / "config.json").read_text())
    assert config["environment"]["versions"]["jax"]
    checkpoints = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()
                         if p.name.isdigit())
    assert len(checkpoints) >= 2 and checkpoints[-1] == summary["final_step"]


def test_eval_command_reproduces_the_final_test_accuracy(tiny_ar_run, capsys):
    _, workdir = tiny_ar_run
    summary = json.loads((workdir / "summary.json").read_text())
    capsys.readouterr()
    assert main(["eval", "--workdir", str(workdir)]) == 0
    out = capsys.readouterr().out
    assert f"test accuracy {summary['test_accuracy'][0]:.4f}" in out
    assert main(["eval", "--workdir", str(workdir), "--checkpoint", "best"]) == 0
    assert f"at step {summary['best_checkpoint']} (best checkpoint)" in capsys.readouterr().out


def test_non_finite_loss_stops_with_one_line_naming_the_step(tmp_path, capsys):
    # Step 1 runs at lr 0 (warmup start); step 2's update at lr ~1e29 blows the weights up, so
    # the loss of step 3 is not finite. The checkpoint after step 2 is the last good one.
    workdir = tmp_path / "nan"
    code = main([
        "train", "tiny-ar", "--workdir", str(workdir), "--progress=off",
        "--model.d_model=8", "--model.n_layer=1", "--model.mixer.d_state=4", "--model.d_inner=16",
        "--task.num_test_examples=8", "--train.eval_batch_size=8",
        "--optim.lr=1e30", "--optim.warmup_steps=10", "--optim.schedule=constant",
        "--train.steps=20", "--train.steps_per_call=2", "--train.log_every=2",
        "--train.checkpoint_every=2", "--train.eval_every=0",
    ])
    err = capsys.readouterr().err
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "at step 3" in lines[0] and "last good checkpoint: step 2" in lines[0]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["final_step"] == 3
