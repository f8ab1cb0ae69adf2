"""A task defined outside the package, named by its import path, trains through the same config,
CLI override and stored run as the built-in ones; check_task fails a task that breaks its
contract."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pytest

from h3_jax import tasks
from h3_jax.presets import get_preset
from h3_jax.testing import check_task
from h3_jax.train.config import ConfigError, apply_overrides, config_from_dict, config_to_dict

SPEC = f"{__name__}:Reverse"


@dataclasses.dataclass(frozen=True)
class Reverse(tasks.DrawnTask):
    """Read `n` tokens and a separator, then write them in reverse order (labelled positions)."""

    name: ClassVar[str] = "reverse"
    vocab_size: int = 8
    n: int = 4
    num_examples: int = 64
    num_test_examples: int = 16

    @property
    def seq_len(self) -> int:
        return 2 * self.n

    @property
    def labels_per_example(self) -> int:
        return self.n

    def draw(self, rng: np.random.Generator, n_examples: int) -> tasks.Batch:
        tokens = rng.integers(1, self.vocab_size, (n_examples, self.n))
        sequence = np.concatenate([tokens, np.zeros((n_examples, 1), int), tokens[:, ::-1]], 1)
        mask = np.zeros((n_examples, self.seq_len), bool)
        mask[:, self.n :] = True  # the targets after the separator: the reversed tokens
        return tasks.Batch(sequence[:, :-1].astype(np.int32), sequence[:, 1:].astype(np.int32),
                           mask)


@dataclasses.dataclass(frozen=True)
class Replaying(Reverse):
    """Its stream starts with the dataset's examples: a stream run would replay the train set."""

    def batch(self, seed, index, batch_size):
        rows = slice(index * batch_size, (index + 1) * batch_size)
        return tasks.Batch(*(a[rows] for a in self.dataset(seed)[0]))


def test_a_task_from_outside_keeps_the_contract():
    check_task(SPEC)
    assert tasks.spec_of(tasks.get_task(SPEC)) == SPEC
    assert tasks.spec_of(tasks.get_task("mqar")) == "mqar"


def test_check_task_fails_a_broken_task():
    with pytest.raises(AssertionError, match="start of dataset"):
        check_task(f"{__name__}:Replaying")


def test_task_override_swaps_in_a_task_and_the_run_config_stores_it():
    config = apply_overrides(get_preset("tiny-ar"), [f"task={SPEC}", "task.n=5"])
    assert config.task_name == SPEC and config.task == Reverse(n=5)
    assert config.model.vocab_size == 8  # the model follows the task
    assert config_from_dict(config_to_dict(config)) == config


@pytest.mark.parametrize("spec, message", [
    ("nosuchmodule:Task", "cannot import 'nosuchmodule'"),
    (f"{__name__}:SPEC", "is not a task class"),
    ("copying", "unknown task 'copying'"),
])
def test_a_bad_task_spec_is_one_clear_error(spec, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(get_preset("tiny-ar"), [f"task={spec}"])


def test_the_cli_trains_and_evaluates_a_task_from_outside(tmp_path, capsys):
    from h3_jax.cli import main

    workdir = str(tmp_path / "run")
    tiny = ["--model.d_model=16", "--model.n_layer=1", "--model.d_inner=32",
            "--model.mixer.d_state=8", "--train.steps=20", "--train.steps_per_call=10",
            "--train.eval_every=10", "--train.log_every=10", "--train.checkpoint_every=10",
            "--optim.warmup_steps=0"]
    assert main(["train", "tiny-ar", f"--task={SPEC}", "--workdir", workdir,
                 "--progress=off", *tiny]) == 0
    assert main(["eval", "--workdir", workdir]) == 0  # config.json names the task by its spec
    assert "test accuracy" in capsys.readouterr().out
