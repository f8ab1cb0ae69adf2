"""The loop keeps at most one compiled call queued behind the running one, so a signal, which
Python handles only when it regains control, stops a run within two calls rather than at the
next log, eval or checkpoint."""

from __future__ import annotations

import jax

from h3_jax.presets import get_preset
from h3_jax.train import loop
from h3_jax.train.config import apply_overrides


def test_at_most_one_call_waits_behind_the_running_one(tmp_path, monkeypatch):
    dispatched, ahead = [0], []
    make = loop.make_replica_train_step

    def probed(*args, **kwargs):
        train_steps = make(*args, **kwargs)
        # Runs when call n's results exist: how many calls Python has dispatched by then.
        probe = jax.jit(lambda n, loss: jax.debug.callback(
            lambda n, _: ahead.append(dispatched[0] - int(n)), n, loss))

        def counted(state, chunk):
            dispatched[0] += 1
            state, metrics = train_steps(state, chunk)
            probe(dispatched[0], metrics["loss"])
            return state, metrics

        return counted

    monkeypatch.setattr(loop, "make_replica_train_step", probed)
    config = apply_overrides(get_preset("tiny-ar"), [
        "model.d_model=8", "model.n_layer=1", "model.mixer.d_state=4", "model.d_inner=16",
        "task.num_test_examples=8", "train.eval_batch_size=8", "train.steps=40",
        "train.steps_per_call=2", "train.log_every=40", "train.eval_every=0",
        "train.checkpoint_every=40", "optim.warmup_steps=10",
    ])
    result = loop.train(config, str(tmp_path / "run"), show_progress=False, echo=lambda _: None)
    jax.effects_barrier()
    assert result.status == "completed" and len(ahead) == dispatched[0] == 20
    assert max(ahead) <= 2, ahead
