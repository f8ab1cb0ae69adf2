"""A run that `h3-jax train` wrote in checkpoint format 1 (before replicas: no replica axis, plain
Adam for the SSM group, scalar metrics; made by commit f992e5c) is read by the converter in
`train/formats.py`: `h3-jax eval` scores it and `--resume` continues it as the old code did."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

from h3_jax.cli import main
from h3_jax.train.metrics_log import read_jsonl

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "format1_run")


def test_a_format_1_run_evaluates_and_resumes_as_the_old_code_did(tmp_path, capsys):
    workdir = tmp_path / "run"
    shutil.copytree(FIXTURE, workdir)
    old = read_jsonl(str(workdir / "metrics.jsonl"))  # steps 10, 20, 30 of the old run
    old_eval = {r["step"]: r for r in old if r["kind"] == "eval"}

    assert main(["eval", "--workdir", str(workdir), "--checkpoint", "20"]) == 0
    printed = capsys.readouterr().out
    assert f"(loss {old_eval[20]['loss']:.4f})" in printed and "at step 20" in printed

    assert main(["train", "--workdir", str(workdir), "--resume", "--progress=off"]) == 0
    new = read_jsonl(str(workdir / "metrics.jsonl"))
    sessions = [r for r in new if r["kind"] == "session"]  # the resume's, at the checkpoint
    assert [r["step"] for r in sessions] == [20] and "cpu" in sessions[0]["environment"]
    new = [r for r in new if r["kind"] != "session"]
    assert [r["step"] for r in new] == [r["step"] for r in old]
    # Records up to the checkpoint are the old ones, now as per-replica lists.
    assert new[2]["loss"] == [old[2]["loss"]] and new[3]["test_loss"] == [old[3]["loss"]]
    # Steps 21..30 rerun from the converted state: the old run's numbers (float32 rounding).
    np.testing.assert_allclose(new[4]["loss"], [old[4]["loss"]], rtol=1e-5)
    np.testing.assert_allclose(new[4]["grad_norm"], [old[4]["grad_norm"]], rtol=1e-4)
    np.testing.assert_allclose(new[5]["test_loss"], [old[5]["loss"]], rtol=1e-5)
    with open(workdir / "summary.json") as f:
        assert json.load(f)["final_step"] == 30
