"""experiments/mqar.py end to end on one tiny cell: the cell JSON, the report beside Zoology's
numbers; unknown cells are refused."""

from __future__ import annotations

import json
import os
import sys

from h3_jax.train.config import config_from_dict, config_to_dict

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "experiments"))
import mqar  # noqa: E402


def test_mqar_script_one_cell(tmp_path, run_script):
    run = run_script(
        "mqar", "--cells", "attention-L64-d64-lr0.00215", "--steps", "10",
        "--out-dir", str(tmp_path / "results"), "--workdir", str(tmp_path / "runs"),
        "--no-progress", "--override=task.num_examples=128", "--override=task.num_test_examples=32",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads((tmp_path / "results" / "mqar.json").read_text())
    cell = report["cells"]["attention-L64-d64-lr0.00215"]
    assert cell["final_step"] == 10 and cell["seeds"] == [0] and cell["stop_at"] == 0.99
    config = cell["config"]
    assert (config["task"]["seq_len"], config["task"]["num_kv_pairs"]) == (64, 4)
    assert config["model"]["d_inner"] == 0 and config["optim"]["lr"] == 0.00215
    assert report["best"]["attention-L64-d64"]["lr"] == 0.00215
    text = (tmp_path / "results" / "mqar.md").read_text()
    assert "128 train / 32 test" in text and "/ 0.93" in text
    assert "| attention-L64-d64-lr0.00215 | H3 groups |" in text
    assert (tmp_path / "results" / "mqar.png").exists()


def test_mqar_script_unknown_cell(run_script):
    run = run_script("mqar", "--cells", "h3-L32-d64-lr0.001", timeout=120)
    assert run.returncode == 2 and "unknown cells" in run.stderr


def test_report_names_the_optimizer_groups_of_each_cell():
    cell = "h3-L128-d128-lr0.00215"
    paper = mqar.config_for(cell, None, [])
    zoology = mqar.config_for(cell, None, ["optim.lr_ssm=0.00215", "optim.weight_decay_ssm=0.1"])
    assert mqar.optimizer_groups(paper) == "H3 groups"
    assert mqar.optimizer_groups(zoology) == "one AdamW group"
    older = config_to_dict(paper)  # a cell stored before weight_decay_ssm existed
    del older["optim"]["weight_decay_ssm"]
    assert mqar.optimizer_groups(config_from_dict(older)) == "H3 groups"


def test_report_names_the_blocks_of_each_cell():
    cell = "h3-L64-d64-lr0.00215"
    plain = mqar.config_for(cell, None, [])
    identity = mqar.config_for(cell, None, ["model.identity_mlp=true"])
    assert mqar.block_kind(plain) == "mixer only"
    assert mqar.block_kind(identity) == "mixer + norm2(x)"
    older = config_to_dict(plain)  # a cell stored before identity_mlp existed
    del older["model"]["identity_mlp"]
    assert mqar.block_kind(config_from_dict(older)) == "mixer only"
