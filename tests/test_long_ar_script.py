"""experiments/long_ar.py: each cell's run config follows the Hyena protocol as documented, and
the report puts finished cells beside the Hyena paper's Table C.1. The training itself is the
shared cell runner, run end to end by the synthetics script test."""

from __future__ import annotations

import json
import os
import sys

import pytest

from h3_jax import mixers
from h3_jax.train.config import config_to_dict

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "experiments"))
import long_ar  # noqa: E402


@pytest.mark.parametrize("cell", ["h3-L2048-V10", "attention-L2048-V40"])
def test_cell_config_follows_the_protocol(cell):
    config = long_ar.config_for(cell, None, [])
    mixer, V = long_ar.ALL_CELLS[cell]
    task, model, optim, train = config.task, config.model, config.optim, config.train
    assert (task.vocab_size, task.input_seq_len, task.train_mask) == (V, 2048, "all")
    assert (task.num_examples, task.num_test_examples) == (2000, 500)
    assert (mixers.spec_of(model.mixer), model.n_layer, model.d_model, model.d_inner) == (
        mixer, 2, 64, 256)
    assert model.embed_dropout == 0.0
    assert mixer != "attention" or model.mixer.dropout == 0.0
    assert model.max_position_embeddings == (2050 if mixer == "attention" else 0)
    assert (optim.lr, optim.b1, optim.b2, optim.weight_decay) == (5e-4, 0.9, 0.98, 0.1)
    assert optim.schedule == "cosine" and optim.warmup_steps == train.steps // 20
    assert train.steps == long_ar.STEPS[mixer] and train.batch_size == 8
    assert train.eval_every == train.steps // 10


def test_steps_and_overrides_apply_last():
    config = long_ar.config_for("h3-L2048-V20", 40, ["task.input_seq_len=64"])
    assert config.train.steps == 40 and config.optim.warmup_steps == 2
    assert config.task.input_seq_len == 64


def test_report_beside_hyena_table_c1(tmp_path):
    cell_dir = tmp_path / "long_ar"
    cell_dir.mkdir()
    for cell, best in (("h3-L2048-V10", 0.875), ("attention-L2048-V20", 1.0)):
        config = long_ar.config_for(cell, None, [])
        data = {"cell": cell, "command": "python experiments/long_ar.py",
                "config": json.loads(json.dumps(config_to_dict(config))),
                "best_test_accuracy": [best], "test_accuracy": [best - 0.125],
                "final_step": config.train.steps, "elapsed_s": 12.0,
                "history": [{"step": config.train.steps, "test_accuracy": [best]}]}
        (cell_dir / f"{cell}.json").write_text(json.dumps(data))
    files = long_ar.write_report(str(cell_dir), str(tmp_path / "long_ar"))
    text = (tmp_path / "long_ar.md").read_text()
    assert "| h3 | 87.5 / 92 | - / 60 | - / 10 | - / 13 |" in text
    assert "| attention | - / 100 | 100.0 / 100 | - / 82 | - / 92 |" in text
    assert "batch 8 (Hyena 32)" in text and "2,000 train / 500 test" in text
    report = json.loads((tmp_path / "long_ar.json").read_text())
    assert report["ours"] == {"h3-L2048-V10": 87.5, "attention-L2048-V20": 100.0}
    assert report["hyena_table_c1"]["h3-L2048-V20"] == 60
    assert (tmp_path / "long_ar.png").exists() and str(tmp_path / "long_ar.png") in files
