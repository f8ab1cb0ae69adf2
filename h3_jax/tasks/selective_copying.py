"""Selective copying, the task of the Mamba paper (§4.1.1, App. E.1).

The Mamba paper's generator was not released. This follows the closest public definition from the
same authors' line of work: the variable-spacing copying data of the state-spaces/s4 repository
(`torch_copying_data(..., variable=True)`), with A = vocab_size and M = num_tokens:

1. M data tokens uniform over [1, A - 2] (with replacement)
2. a region of seq_len - M tokens, all noise token 0, where the data tokens are written, in order,
   at M distinct positions drawn uniformly and sorted
3. M marker tokens A - 1 are appended                                      (seq_len tokens)

The answer is the data tokens in order, one at each marker position: the target at the j-th
marker is data token j, and the mask is True exactly on the M marker positions (train and test).
E.g. A = 6, M = 3, seq_len = 10, data (4, 1, 3) at positions (1, 2, 5):

    inputs   0 4 1 0 0 3 0 5 5 5
    targets  0 0 0 0 0 0 0 4 1 3      mask only on the last 3 positions

Choices: `seq_len` is the whole model input (noise region plus markers), so the Mamba paper's
"length 4096" gives 4064 noise tokens; the s4 code's own length knob counts the noise only. With
A = 16 there are 14 data-token values (the noise and the marker take two). The paper trains on
fresh examples every step (the `batch()` stream); `dataset()` gives fixed sets for evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from h3_jax.tasks import checks
from h3_jax.tasks.base import Batch, DrawnTask
from h3_jax.tasks.sampling import distinct_integers


@dataclass(frozen=True)
class SelectiveCopyingTask(DrawnTask):
    """Selective copying (Mamba paper setting: A = 16, seq_len = 4096, M = 16).

    vocab_size:        A, including the noise token 0 and the marker A - 1; needs A >= 3.
    seq_len:           model input length (noise region + M markers); needs >= 2 M.
    num_tokens:        M, data tokens to remember and copy.
    num_examples:      train split size of `dataset()`.
    num_test_examples: test split size of `dataset()`.
    """

    name: ClassVar[str] = "selective_copying"

    vocab_size: int = 16
    seq_len: int = 4096
    num_tokens: int = 16
    num_examples: int = 1000
    num_test_examples: int = 500

    def __post_init__(self) -> None:
        task = self.name
        checks.require_int(
            task, "vocab_size", self.vocab_size, 3, "noise, marker and at least one data token"
        )
        checks.require_int(task, "num_tokens", self.num_tokens, 1)
        checks.require_int(
            task, "seq_len", self.seq_len, 2 * self.num_tokens, "num_tokens data tokens plus as many markers"
        )
        checks.require_int(task, "num_examples", self.num_examples, 1)
        checks.require_int(task, "num_test_examples", self.num_test_examples, 1)

    @property
    def labels_per_example(self) -> int:
        """Most labelled (mask True) positions in one example: the markers."""
        return self.num_tokens

    @property
    def marker_id(self) -> int:
        return self.vocab_size - 1

    def draw(self, rng: np.random.Generator, n_examples: int) -> Batch:
        """`n_examples` fresh examples; Batch of (n_examples, seq_len), mask on the markers."""
        n, M, L = n_examples, self.num_tokens, self.seq_len
        data = rng.integers(1, self.vocab_size - 1, size=(n, M))
        positions = np.sort(distinct_integers(rng, n, M, 0, L - M), axis=1)
        inputs = np.zeros((n, L), dtype=np.int32)
        np.put_along_axis(inputs, positions, data, axis=1)
        inputs[:, L - M :] = self.marker_id
        targets = np.zeros((n, L), dtype=np.int32)
        targets[:, L - M :] = data
        mask = np.zeros((n, L), dtype=bool)
        mask[:, L - M :] = True
        return Batch(inputs, targets, mask)
