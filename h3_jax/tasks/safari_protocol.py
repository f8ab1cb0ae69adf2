"""The fixed-dataset protocol of the H3 paper's synthetic tasks.

One `np.random.default_rng(seed)` draws the train split first, then the test split. Each split is
built the same way: draw `n` examples one at a time, drop duplicate rows (the paper's code uses
`torch.unique(dim=0)`, which returns the distinct rows sorted lexicographically, the order
`np.unique(axis=0)` gives), top up with freshly drawn examples that are not already present until
there are `n`, then shuffle the rows with the same rng. Train and test are not checked against
each other, as in the paper.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

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
