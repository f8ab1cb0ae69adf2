"""What every task hands the trainer: a `Batch` of token ids, next-token targets and a label mask."""

from __future__ import annotations

from typing import ClassVar, NamedTuple, Protocol

import numpy as np

from h3_jax.tasks import checks

# Appended to (seed, index) so the stream never shares a seed sequence with `dataset(seed)`,
# which seeds numpy with the bare integer as the paper's code does.
_STREAM_TAG = 0x5EED_57EA


class Batch(NamedTuple):
    """One split or one batch; a pytree of numpy arrays.

    inputs:  int32 (B, L) token ids fed to the model.
    targets: int32 (B, L) the token to predict at each position (0 where `mask` is False and the
             task defines no target there).
    mask:    bool  (B, L) positions that count for loss and accuracy.
    """

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray


class Task(Protocol):
    """What the trainer needs of a task: a frozen dataclass of its parameters (their defaults the
    paper's) with these members. `DrawnTask` below derives `dataset` and `batch` from `draw`."""

    name: ClassVar[str]  # used in error messages: "task '<name>': <field> <problem>"
    vocab_size: int  # token ids lie in [0, vocab_size)
    num_examples: int
    num_test_examples: int

    @property
    def seq_len(self) -> int:
        """L of every Batch."""

    @property
    def labels_per_example(self) -> int:
        """The most labelled (mask True) positions in one row: the LM head runs only there."""

    def dataset(self, seed: int) -> tuple[Batch, Batch]:
        """(train, test), fixed by `seed`."""

    def batch(self, seed: int, index: int, batch_size: int) -> Batch:
        """Batch `index` of an endless stream of fresh examples, fixed by (seed, index)."""


def shifted_batch(sequences: np.ndarray, mask: np.ndarray) -> Batch:
    """Next-token pairs from full sequences: inputs = S[:, :-1], targets = S[:, 1:].

    sequences: int (B, L + 1); mask: bool (B, L), aligned with the targets.
    """
    sequences = np.asarray(sequences)
    return Batch(
        inputs=np.ascontiguousarray(sequences[:, :-1], dtype=np.int32),
        targets=np.ascontiguousarray(sequences[:, 1:], dtype=np.int32),
        mask=np.ascontiguousarray(mask, dtype=bool),
    )


def final_position_mask(n: int, length: int) -> np.ndarray:
    """bool (n, length), True only at the last position (the answer token)."""
    mask = np.zeros((n, length), dtype=bool)
    mask[:, -1] = True
    return mask


def stream_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for batch `index` of the stream seeded by `seed`.

    Depends on (seed, index) only, so a resumed run draws the same batch for the same step.
    """
    return np.random.default_rng([seed, index, _STREAM_TAG])


class DrawnTask:
    """`dataset` and `batch` for a task whose examples are drawn independently, `draw(rng, n)`;
    the task has the fields `num_examples` and `num_test_examples`."""

    def draw(self, rng: np.random.Generator, n_examples: int) -> Batch:
        raise NotImplementedError

    def dataset(self, seed: int) -> tuple[Batch, Batch]:
        """(train, test): (num_examples, L) and (num_test_examples, L), train drawn first."""
        checks.require_seed("seed", seed)
        rng = np.random.default_rng(seed)
        train = self.draw(rng, self.num_examples)
        return train, self.draw(rng, self.num_test_examples)

    def batch(self, seed: int, index: int, batch_size: int) -> Batch:
        """Batch `index` of an endless stream of fresh examples; (batch_size, L)."""
        checks.require_seed("seed", seed)
        checks.require_seed("index", index)
        checks.require_batch_size(batch_size)
        return self.draw(stream_rng(seed, index), batch_size)
