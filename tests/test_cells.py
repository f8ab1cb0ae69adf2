"""experiments/cells.py: a finished cell is recognised (and skipped) by its config, seeds and
stopping rule, also after config fields were added to the package; a parked copy of a paused
run (experiments/parked.py) replaces only an older work directory."""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from h3_jax.train.checkpoint import Checkpoints
from h3_jax.train.config import apply_overrides, config_to_dict

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "experiments"))
import cells  # noqa: E402
import mqar  # noqa: E402
import parked  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "experiments", "results")


def test_fields_added_after_a_cell_ran_count_at_their_defaults(tmp_path):
    config = mqar.config_for("h3-L64-d64-lr0.00215", None, [])
    stored = config_to_dict(config)
    del stored["optim"]["weight_decay_ssm"], stored["train"]["micro_batches"]
    path = tmp_path / "cell.json"
    path.write_text(json.dumps({"config": stored, "seeds": [0], "stop_at": 0.99}))
    assert cells.cell_is_done(str(path), config, [0], 0.99)
    assert not cells.cell_is_done(str(path), apply_overrides(config, ["optim.weight_decay_ssm=0.1"]),
                                  [0], 0.99)
    assert not cells.cell_is_done(str(path), apply_overrides(config, ["train.micro_batches=2"]),
                                  [0], 0.99)
    assert not cells.cell_is_done(str(path), config, [0, 1], 0.99)
    assert not cells.cell_is_done(str(path), config, [0], None)
    assert not cells.cell_is_done(str(tmp_path / "missing.json"), config, [0], 0.99)


def test_committed_mqar_cells_are_done():
    """Rerunning the MQAR study rewrites its report from the committed cells instead of training."""
    cell = "h3-L128-d64-lr0.00215"
    path = os.path.join(RESULTS, "mqar", f"{cell}.json")
    with open(path) as f:
        stored = json.load(f)
    assert "format" not in stored["config"]  # stored in format 1, read through the converter
    assert cells.cell_is_done(path, mqar.config_for(cell, None, []), stored["seeds"],
                              stored["stop_at"])


def test_a_parked_run_replaces_only_an_older_work_directory(tmp_path):
    def checkpoint(path, step):
        checkpoints = Checkpoints(str(path / "checkpoints"))
        checkpoints.save(step, {"w": np.full(2, step, np.float32)}, {"step": step})
        checkpoints.close()

    def run(path, step, metrics):
        checkpoint(path, step)
        (path / "config.json").write_text("{}")
        (path / "metrics.jsonl").write_text(metrics)
        return path

    results, runs = tmp_path / "results", tmp_path / "runs"
    checkpoint(tmp_path / "machine1" / "cell-abc", 5)
    source = run(tmp_path / "machine1" / "cell-abc", 10, "ten")
    (source / "lock").write_text("pid")
    copy = parked.park(str(source), str(results))
    assert sorted(os.listdir(copy)) == ["checkpoints", "config.json", "metrics.jsonl"]
    assert os.listdir(os.path.join(copy, "checkpoints")) == ["10"]
    run(runs / "cell-abc", 5, "five")
    run(runs / "cell-new", 20, "twenty")
    assert parked.unpark(str(results), str(runs), ["cell-other"]) == []  # not this study's run
    assert parked.unpark(str(results), str(runs), ["cell-abc"]) == [str(runs / "cell-abc")]
    assert (runs / "cell-abc" / "metrics.jsonl").read_text() == "ten"
    parked.park(str(runs / "cell-new"), str(results))
    # Nothing newer than the work directory.
    assert parked.unpark(str(results), str(runs), ["cell-abc", "cell-new"]) == []
    parked.discard(str(runs / "cell-new"), str(results))
    assert sorted(os.listdir(results / "paused")) == ["cell-abc"]


def test_sessions_name_each_stretch_and_fall_back_to_the_start_in_config(tmp_path):
    def session(step, name):
        return {"kind": "session", "step": step, "started": f"t{step}",
                "environment": {"cpu": {"name": name}}}

    old, new = tmp_path / "old", tmp_path / "new"
    for run, records in ((old, [session(30, "B")]), (new, [session(0, "A"), session(30, "B")])):
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"environment": {"cpu": {"name": "A"}}}))
        lines = [json.dumps(r) for r in [{"kind": "eval", "step": 10}, *records]]
        (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    # A run begun before session records: its start comes from config.json, without a time.
    assert cells.sessions(str(old)) == [{"step": 0, "started": None, "cpu": {"name": "A"}},
                                        {"step": 30, "started": "t30", "cpu": {"name": "B"}}]
    assert cells.sessions(str(new)) == [{"step": 0, "started": "t0", "cpu": {"name": "A"}},
                                        {"step": 30, "started": "t30", "cpu": {"name": "B"}}]
    assert cells.sessions(str(tmp_path / "missing")) == []
