"""experiments/mqar.py end to end on one tiny cell: the cell JSON, the report beside Zoology's
numbers; unknown cells are refused."""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np

from h3_jax.train.config import config_from_dict, config_to_dict
from h3_jax.train.workdir import environment

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "experiments"))
import mqar  # noqa: E402
from reports import cpu_label  # noqa: E402


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


def test_a_bad_override_stops_the_study_before_any_cell_trains(tmp_path, run_script):
    run = run_script(
        "mqar", "--recipe", "zoology", "--cells", "h3-L64-d64-lr0.00215,h3-L128-d64-lr0.00215",
        "--override=model.bogus=1", "--out-dir", str(tmp_path / "results"),
        "--workdir", str(tmp_path / "runs"), timeout=120,
    )
    assert run.returncode == 2, run.stderr[-2000:]
    assert run.stderr.strip().splitlines()[-1].startswith(
        "mqar.py: error: --override: unknown key model.bogus")
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "runs").exists()  # no cell began


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


def test_zoology_recipe_is_zoology_training():
    config = mqar.config_for("h3-L128-d128-lr0.00215", None, [], recipe="zoology")
    o, t, m = config.optim, config.train, config.model
    assert (t.batch_size, t.steps, o.schedule_every) == (512, 64 * 195, 195)
    assert (o.schedule, o.warmup_steps, o.lr_min) == ("cosine", 0, 0.0)
    assert o.lr == o.lr_ssm == 0.00215 and o.weight_decay == o.weight_decay_ssm == 0.1
    assert m.identity_mlp and m.embed_dropout == 0.1 and m.d_inner == 0
    assert (config.task.seq_len, config.task.num_kv_pairs, config.task.num_examples) == (
        128, 8, 100_000)
    assert t.eval_every == 195 and t.steps % t.steps_per_call == 0


def test_zoology_recipe_pauses_resumes_and_reports_seeds(tmp_path, run_script):
    common = (
        "--recipe", "zoology", "--cells", "attention-L64-d64-lr0.00215", "--steps", "10",
        "--seeds", "0,1", "--out-dir", str(tmp_path / "results"),
        "--workdir", str(tmp_path / "runs"), "--no-progress",
        "--override=task.num_examples=256", "--override=task.num_test_examples=32",
        "--override=train.batch_size=32",
    )
    paused = run_script("mqar", *common, "--budget-minutes", "0.01")
    assert paused.returncode == 0, paused.stderr[-2000:]
    assert "paused at step" in paused.stdout
    partial = json.loads((tmp_path / "results" / "mqar_zoology.json").read_text())
    assert partial["cells"]["attention-L64-d64-lr0.00215"]["status"].startswith("training")
    # Another machine gets the results (with the parked copy of the paused run), not runs/.
    parked, = (tmp_path / "results" / "mqar_zoology" / "paused").iterdir()
    assert [p.name for p in (parked / "checkpoints").iterdir()] == ["5"]
    shutil.rmtree(tmp_path / "runs")
    # A command for another cell (here one that trains nothing) keeps the paused cell's row.
    other = [a.replace("attention-L64", "h3-L64") for a in common]
    reported = run_script("mqar", *other, "--budget-minutes", "0")
    assert reported.returncode == 0, reported.stderr[-2000:]
    kept = json.loads((tmp_path / "results" / "mqar_zoology.json").read_text())
    assert kept["cells"]["attention-L64-d64-lr0.00215"]["status"].startswith("training")
    run = run_script("mqar", *common)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "resuming from step 5" in run.stdout and not parked.exists()
    report = json.loads((tmp_path / "results" / "mqar_zoology.json").read_text())
    cell = report["cells"]["attention-L64-d64-lr0.00215"]
    assert cell["seeds"] == 2 and cell["min"] <= cell["mean"] <= cell["max"]
    assert cell["zoology"] == 1.0 and cell["status"] == "2 epochs"
    assert [h["epoch"] for h in cell["history"]] == [1, 2]
    last = cell["history"][-1]
    assert len(last["train_loss"]) == len(last["test_loss"]) == 2
    train, test = (np.mean(last[k]) for k in ("train_loss", "test_loss"))
    text = (tmp_path / "results" / "mqar_zoology.md").read_text()
    assert "| attention | 64 (4) | 64 |" in text and "2 seeds" in text
    assert f"| {train:.2f} / {test:.2f} | 2 epochs |" in text
    # Both sessions (the start and the resume) ran here: the CPU is named once.
    cpu = environment()["cpu"]
    assert cell["cpus"] == [f"{cpu_label({'cpu': cpu})} {cpu['family_model']}"]
    assert text.count(cell["cpus"][0]) == 1
    stored = json.loads((tmp_path / "results" / "mqar_zoology" /
                         "attention-L64-d64-lr0.00215.json").read_text())
    assert [s["step"] for s in stored["sessions"]] == [0, 5]
    assert (tmp_path / "results" / "mqar_zoology.png").exists()


def test_zoology_figure_shows_the_best_rate_of_each_setting():
    import mqar_zoology_report

    def cell(lr):
        return next(c for c, (m, L, _, d, r) in mqar.ALL_CELLS.items()
                    if (m, L, d, r) == ("h3", 64, 64, lr))

    data = {cell(4.64e-4): {"mean": 0.9}, cell(2.15e-3): {"mean": 0.8}}
    best = mqar_zoology_report.best_rows(data, mqar.ALL_CELLS)
    assert best == {("h3", 64, 64): {"mean": 0.9}}
