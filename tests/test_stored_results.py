"""The numbers on main do not move: the first evaluation of a stored cell of the H3 paper's table
(experiments/results/synthetics/h3-ar.json, seed 0), trained again from its stored config through
today's loop, gives the stored test loss and accuracy."""

from __future__ import annotations

import json
import os

import numpy as np

from h3_jax.train.config import config_from_dict
from h3_jax.train.loop import train

CELL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "experiments", "results", "synthetics", "h3-ar.json")


def test_the_first_evaluation_of_the_stored_h3_ar_cell_is_reproduced(tmp_path):
    with open(CELL) as f:
        stored = json.load(f)
    config = config_from_dict(stored["config"])  # stored in config format 1
    first = stored["history"][0]
    # A deadline in the past pauses the run at its first evaluation (step 1,570 of 31,400).
    run = train(config, str(tmp_path / "run"), seeds=[0], data_seeds=[0], deadline=0.0,
                show_progress=False, echo=lambda _: None)
    assert (run.status, run.summary["final_step"]) == ("paused", first["step"])
    # float32 on another CPU and XLA version: the same to 1e-5 of the loss (measured: 1e-7).
    np.testing.assert_allclose(run.summary["test_loss"], first["test_loss"][:1], rtol=1e-5)
    np.testing.assert_allclose(run.summary["test_accuracy"], first["test_accuracy"][:1],
                               atol=1e-6)
