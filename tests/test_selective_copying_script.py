"""experiments/selective_copying.py end to end at a toy size: both cells (H3 with S4D and with
S6) train through the study loop and the report sets them beside the Mamba paper's Table 1."""

import json

TOY = ["model.d_model=8", "model.n_layer=1", "model.d_inner=16", "task.seq_len=16",
       "task.num_tokens=4", "task.num_test_examples=8", "train.batch_size=4",
       "train.eval_batch_size=8"]


def test_selective_copying_script(tmp_path, run_script):
    run = run_script("selective_copying", "--seeds", "0", "--steps", "20", "--stop-at", "none",
                     "--out-dir", str(tmp_path / "results"), "--workdir", str(tmp_path / "runs"),
                     "--no-progress", *(f"--override={o}" for o in TOY))
    assert run.returncode == 0, run.stderr[-2000:]
    stem = tmp_path / "results" / "selective_copying"
    report = json.loads(stem.with_suffix(".json").read_text())
    assert set(report["cells"]) == {"h3-selcopy", "h3s6-selcopy"}
    s6 = report["cells"]["h3s6-selcopy"]
    assert s6["config"]["model"]["mixer"]["inner_ssm"] == "s6" and s6["final_step"] == 20
    assert report["summary"]["h3s6-selcopy"]["mamba_table_1"] == 99.7
    markdown = stem.with_suffix(".md").read_text()
    assert "| H3 (S4D) | 20 (shortened) |" in markdown and "| 57.0 |" in markdown
    assert "4 tokens to copy, vocabulary 16, sequence length 16" in markdown
    assert stem.with_suffix(".png").exists()
