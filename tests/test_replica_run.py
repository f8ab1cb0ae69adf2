"""Study cells run through the loop of `h3-jax train`: a run of several replicas paused at a
deadline and resumed ends exactly where an uninterrupted one ends, and a one-replica run is the
CLI's run."""

from __future__ import annotations

import json

import jax
import pytest

from h3_jax.cli import main
from h3_jax.presets import get_preset
from h3_jax.train.config import apply_overrides
from h3_jax.train.loop import train
from h3_jax.train.metrics_log import read_jsonl

TINY = [
    "model.d_model=8", "model.n_layer=1", "model.mixer.d_state=4", "model.d_inner=16",
    "task.num_examples=200", "task.num_test_examples=40", "train.batch_size=8",
    "train.steps=40", "train.steps_per_call=10", "train.eval_every=10", "train.log_every=10",
    "train.checkpoint_every=20", "optim.warmup_steps=5",
]


@pytest.fixture
def compile_cache(tmp_path):
    """Each train call builds fresh jitted functions; a persistent cache compiles once."""
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    before = {name: getattr(jax.config, name) for name in names}
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "jax-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    yield
    for name, value in before.items():
        jax.config.update(name, value)


def evals(workdir) -> list[dict]:
    return [r for r in read_jsonl(str(workdir / "metrics.jsonl")) if r["kind"] == "eval"]


def test_pause_and_resume_equals_uninterrupted(tmp_path, compile_cache):
    config = apply_overrides(get_preset("h3-ar"), TINY)
    seeds = (0, 1)
    quiet = dict(show_progress=False, echo=lambda _: None)
    whole = train(config, str(tmp_path / "whole"), seeds=seeds, **quiet)

    paused = train(config, str(tmp_path / "split"), seeds=seeds, deadline=0.0, **quiet)
    assert (paused.status, paused.summary["final_step"]) == ("paused", 10)
    messages = []
    resumed = train(config, str(tmp_path / "split"), seeds=seeds, resume=True,
                    show_progress=False, echo=messages.append)
    assert messages == ["resuming from step 10"]
    assert resumed.status == whole.status == "completed"
    assert resumed.summary["final_step"] == whole.summary["final_step"] == 40
    # Same compiled step, same data order and RNG from the checkpoint: bitwise the same run.
    assert evals(tmp_path / "split") == evals(tmp_path / "whole")
    assert len(evals(tmp_path / "whole")) == 4
    sessions = [r for r in read_jsonl(str(tmp_path / "split" / "metrics.jsonl"))
                if r["kind"] == "session"]
    assert [r["step"] for r in sessions] == [0, 10]  # the start and the resume
    assert len(evals(tmp_path / "whole")[0]["test_accuracy"]) == 2
    for key in ("test_accuracy", "best_test_accuracy", "best_step"):
        assert resumed.summary[key] == whole.summary[key]


def test_the_cli_run_is_the_one_replica_study_run(tmp_path, compile_cache):
    """`h3-jax train` and a study cell with the same config and seed log the same metrics."""
    config = apply_overrides(get_preset("h3-ar"), TINY + ["train.seed=3", "train.data_seed=5"])
    study = train(config, str(tmp_path / "study"), seeds=[3], data_seeds=[5],
                  show_progress=False, echo=lambda _: None)
    code = main(["train", "h3-ar", "--workdir", str(tmp_path / "cli"), "--progress=off",
                 "--train.seed=3", "--train.data_seed=5", *(f"--{o}" for o in TINY)])
    assert code == 0
    records = [read_jsonl(str(tmp_path / name / "metrics.jsonl")) for name in ("study", "cli")]
    # Both start with a session record (the time and environment of the start), at step 0.
    assert [r["step"] for r in records[0] if r["kind"] == "session"] == [0]
    assert [r["step"] for r in records[1] if r["kind"] == "session"] == [0]
    strip = lambda r: {k: v for k, v in r.items() if k not in ("steps_per_s", "tokens_per_s")}  # noqa: E731
    results = [[strip(r) for r in run if r["kind"] != "session"] for run in records]
    assert results[0] == results[1]
    with open(tmp_path / "cli" / "summary.json") as f:
        cli = json.load(f)
    assert cli["test_accuracy"] == study.summary["test_accuracy"]
    assert cli["seeds"] == [3] and cli["data_seeds"] == [5]
