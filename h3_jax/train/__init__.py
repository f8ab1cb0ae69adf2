"""Training: config, optimizer groups and schedules, pure jitted steps, the run loop, checkpoints.

Entry points: `h3_jax.presets.get_preset(name)` -> `RunConfig`; `train(config, workdir)` runs it
(see `h3_jax.cli` for the command line); `evaluate_checkpoint(workdir)` scores a saved run.
"""

from h3_jax.train.config import ConfigError, OptimConfig, RunConfig, TrainConfig, apply_overrides
from h3_jax.train.loop import RunResult, train
from h3_jax.train.optim import make_optimizer, make_schedule
from h3_jax.train.restore import evaluate_checkpoint, load_state
from h3_jax.train.step import init_train_state, make_eval_step, make_train_step

__all__ = [
    "ConfigError",
    "OptimConfig",
    "RunConfig",
    "RunResult",
    "TrainConfig",
    "apply_overrides",
    "evaluate_checkpoint",
    "init_train_state",
    "load_state",
    "make_eval_step",
    "make_optimizer",
    "make_schedule",
    "make_train_step",
    "train",
]
