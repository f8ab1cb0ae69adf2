"""The fixed-dataset protocol of the H3 paper's synthetic tasks.

One `np.random.default_rng(seed)` draws the train split first, then the test split. Each split is
built the same way: draw `n` examples one at a time, drop duplicate rows (the paper's code uses
`torch.unique(dim=0)`, which returns the distinct rows sorted lexicographically, the order
`np.unique(axis=0)` gives), top up with freshly drawn examples that are not already present until
there are `n`, then shuffle the rows with the same rng. Train and test are not checked against
each other, as in the paper.
"""

from __future__ import annotations

from functools import cached_property
from typing import Callable, ClassVar

import numpy as np

from h3_jax.tasks import checks
from h3_jax.tasks.base import Batch, final_position_mask, shifted_batch, stream_rng
from h3_jax.tasks.vocab import SafariVocab

ExampleFn = Callable[[np.random.Generator], np.ndarray]


def build_split(rng: np.random.Generator, n: int, draw_example: ExampleFn, task: str) -> np.ndarray:
    """int64 (n, T): `n` distinct sequences drawn with `draw_example`, de-duplicated, topped up, shuffled."""
    drawn = np.stack([draw_example(rng) for _ in range(n)])
    rows = list(np.unique(drawn, axis=0))
    seen = {row.tobytes() for row in rows}
    # Every top-up draw consumes rng whether or not it is kept; a cap turns a task with fewer
    # distinct sequences than `n` into an error instead of an endless loop.
    attempts_left = 100 * n + 10_000
    while len(rows) < n:
        if attempts_left == 0:
            raise ValueError(
                f"task '{task}': cannot draw {n} distinct examples; "
                "increase vocab_size or input_seq_len, or lower the number of examples"
            )
        attempts_left -= 1
        candidate = draw_example(rng)
        key = candidate.tobytes()
        if key not in seen:
            seen.add(key)
            rows.append(candidate)
    # Shuffling an index vector consumes the rng exactly as shuffling the list of rows does.
    order = np.arange(n)
    rng.shuffle(order)
    return np.stack(rows)[order]


def build_train_test(
    seed: int, n_train: int, n_test: int, draw_example: ExampleFn, task: str
) -> tuple[np.ndarray, np.ndarray]:
    """(train int64 (n_train, T), test int64 (n_test, T)) from one rng, train first."""
    rng = np.random.default_rng(seed)
    train = build_split(rng, n_train, draw_example, task)
    test = build_split(rng, n_test, draw_example, task)
    return train, test


TRAIN_MASKS = ("all", "answer")


class SafariTask:
    """What the H3 paper's tasks share: the safari vocabulary, the fixed train / test split above,
    an endless stream of fresh examples, and the train mask ("all" positions, as the paper, or
    the final "answer" only; the test mask is always the answer).

    A task is a frozen dataclass with the fields `vocab_size`, `num_examples`,
    `num_test_examples` and `train_mask`, and defines `name`, `seq_len`, `draw_example(rng)`
    (one full sequence of seq_len + 1 tokens, in the paper's rng order) and
    `draw_vectorised(rng, n)` (n such sequences of the same distribution, in one pass).
    """

    name: ClassVar[str]

    def _check_protocol(self) -> None:
        checks.require_int(self.name, "num_examples", self.num_examples, 1)
        checks.require_int(self.name, "num_test_examples", self.num_test_examples, 1)
        checks.require_choice(self.name, "train_mask", self.train_mask, TRAIN_MASKS)

    @cached_property
    def vocab(self) -> SafariVocab:
        return SafariVocab(self.vocab_size)

    @property
    def labels_per_example(self) -> int:
        """Most labelled (mask True) positions in one train example."""
        return self.seq_len if self.train_mask == "all" else 1

    def _train_batch(self, sequences: np.ndarray) -> Batch:
        n = len(sequences)
        if self.train_mask == "all":
            mask = np.ones((n, self.seq_len), dtype=bool)
        else:
            mask = final_position_mask(n, self.seq_len)
        return shifted_batch(sequences, mask)

    def dataset(self, seed: int) -> tuple[Batch, Batch]:
        """(train, test) as in the paper; train mask per `train_mask`, test mask on the answer only.

        Shapes: (num_examples, seq_len) and (num_test_examples, seq_len).
        """
        checks.require_seed("seed", seed)
        train, test = build_train_test(
            seed, self.num_examples, self.num_test_examples, self.draw_example, self.name
        )
        return self._train_batch(train), shifted_batch(test, final_position_mask(len(test), self.seq_len))

    def batch(self, seed: int, index: int, batch_size: int) -> Batch:
        """Batch `index` of an endless stream of fresh (not de-duplicated) examples, train mask.

        Shape: (batch_size, seq_len).
        """
        checks.require_seed("seed", seed)
        checks.require_seed("index", index)
        checks.require_batch_size(batch_size)
        return self._train_batch(self.draw_vectorised(stream_rng(seed, index), batch_size))
