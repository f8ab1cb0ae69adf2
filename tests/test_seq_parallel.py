"""Sequence parallelism: the LM with its length split over 4 fake devices (in a subprocess,
through experiments/bench_seq_parallel.py) gives the single-device logits and gradients (FFT
and scan paths, S4D and S6 inside H3), and its per-device buffers at L = 2^16 are about a
quarter of the single-device run's; the settings that cannot work are refused."""

from __future__ import annotations

import dataclasses
import json

import pytest

from h3_jax.presets import get_preset
from h3_jax.train.config import ConfigError, check

# Max |sharded - one device| / max |one device|: float32 FFTs of different lengths and a
# different summation order of the states; measured 3e-7 (logits) and 6e-5 (gradients).
LOGITS_TOLERANCE = 2e-5
GRAD_TOLERANCE = 5e-4


def test_sharded_length_matches_one_device_and_saves_memory(run_script, tmp_path):
    # h3-heads: the (B, P, P, L, H) layout of multi-head H3's inner SSM.
    done = run_script("bench_seq_parallel", "--models", "h3,h3-heads,h3+attention",
                      "--lengths", "1024,65536", "--run-up-to", "1024", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "bench_seq_parallel.json").read_text())["rows"]
    by = {(r["model"], r["L"]): r for r in rows}
    assert set(by) == {("h3", 1024), ("h3", 65536), ("h3-heads", 1024), ("h3+attention", 1024)}
    for key in (("h3", 1024), ("h3-heads", 1024), ("h3+attention", 1024)):
        assert by[key]["logits_error"] < LOGITS_TOLERANCE, key
        assert by[key]["grad_error"] < GRAD_TOLERANCE, key
    long = by[("h3", 65536)]
    assert long["shards"] == 4
    assert long["temp_ratio"] < 0.3  # 1/4 of the activations, plus what every device keeps
    # The state exchange: one all-gather per layer forward, its transpose backward, the halos.
    comm = long["collective_bytes"]
    assert comm["all-gather"] > 0 and comm["collective-permute"] > 0
    assert (tmp_path / "bench_seq_parallel.md").exists()


def test_the_scan_paths_split_over_length_match_one_device(run_script, tmp_path):
    # The associative scan inside H3, with the diagonal SSM (state passing as for the FFT) and
    # with S6 (no length-sharded path of its own: jit's automatic partitioning runs it).
    done = run_script("bench_seq_parallel", "--models", "h3-scan,h3-s6", "--lengths", "256",
                      "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "bench_seq_parallel.json").read_text())["rows"]
    assert [(r["model"], r["L"], r["shards"]) for r in rows] == [("h3-scan", 256, 4),
                                                                 ("h3-s6", 256, 4)]
    for row in rows:
        assert row["logits_error"] < LOGITS_TOLERANCE, row["model"]
        assert row["grad_error"] < GRAD_TOLERANCE, row["model"]


@pytest.mark.parametrize("shards, message", [
    (7, "train.seq_shards=7 does not divide task.seq_len=22"),
    (11, "train.seq_shards=11 leaves 2 steps per device, fewer than the shift SSM's 64 taps"),
    (0, "train.seq_shards must be positive"),
])
def test_impossible_sequence_splits_are_refused(shards, message):
    config = get_preset("h3-ar")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train,
                                                                   seq_shards=shards))
    with pytest.raises(ConfigError, match=message):
        check(config)
