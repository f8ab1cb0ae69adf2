"""A replica run paused at a deadline and resumed ends exactly where an uninterrupted one ends."""

from __future__ import annotations

import jax
import pytest

from h3_jax.presets import get_preset
from h3_jax.train.replica_run import train_replicas
from h3_jax.train.run_config import apply_overrides

TINY = [
    "model.d_model=8", "model.n_layer=1", "model.mixer.d_state=4", "model.d_inner=16",
    "task.num_examples=200", "task.num_test_examples=40", "train.batch_size=8",
    "train.steps=40", "train.steps_per_call=10", "train.eval_every=10",
    "train.checkpoint_every=20", "optim.warmup_steps=5",
]


@pytest.fixture
def compile_cache(tmp_path):
    """Each train_replicas call builds fresh jitted functions; a persistent cache compiles once."""
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    before = {name: getattr(jax.config, name) for name in names}
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "jax-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    yield
    for name, value in before.items():
        jax.config.update(name, value)


def test_pause_and_resume_equals_uninterrupted(tmp_path, compile_cache):
    config = apply_overrides(get_preset("h3-ar"), TINY)
    seeds = (0, 1)
    whole = train_replicas(config, seeds, workdir=str(tmp_path / "whole"), show_progress=False)

    paused = train_replicas(config, seeds, workdir=str(tmp_path / "split"), deadline=0.0,
                            show_progress=False)
    assert paused == {"paused": True, "step": 10}
    messages = []
    resumed = train_replicas(config, seeds, workdir=str(tmp_path / "split"),
                             show_progress=False, echo=messages.append)
    assert messages == ["resuming from step 10"]
    assert resumed["final_step"] == whole["final_step"] == 40
    # Same compiled step, same data order and RNG from the checkpoint: bitwise the same run.
    assert resumed["history"] == whole["history"]
    assert resumed["best_test_accuracy"] == whole["best_test_accuracy"]
