"""Associative recall (one query), as the H3 paper's code builds it.

One example, with n = input_seq_len, keys = ids 1..K and values = ids K+1..V-2 (`vocab.py`):

1. a fresh dictionary for this example: each key, in key order, gets a value uniform over the
   values (with replacement: values may repeat across keys)
2. n // 2 times: a key uniform over all keys (with replacement), followed by its value
3. a query key uniform over all keys; if it did not occur in step 2 it is redrawn once, uniformly
   among the keys that did occur, listed in order of first occurrence (so the query always
   occurred: the paper's `allow_dot=False`)
4. "=>", the query key, its value are appended                          (2 (n // 2) + 3 tokens)

e.g. V = 10, n = 8: `1 5 3 8 1 5 2 6 => 3 8`. The model sees S[:-1] and predicts S[1:]; the answer,
the final target, is the value of the queried key.

With an odd number of regular tokens (odd V) the paper's split gives the extra token to the values;
so does this one. Exact rng consumption per example: `integers(n_values, size=K)` for the
dictionary, `integers(K, size=n // 2 + 1)` for the context keys and the first query draw (numpy
draws the same numbers for one sized call as for that many scalar `choice` calls), then at most one
`integers(n_present)`. The stream `batch()` draws the same distribution vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from h3_jax.tasks import checks
from h3_jax.tasks.safari_protocol import SafariTask


@dataclass(frozen=True)
class AssociativeRecallTask(SafariTask):
    """The H3 paper's associative-recall task (paper setting: V = 10, n = 20, 5000 / 500 examples).

    vocab_size:        V, including the two specials (model vocabulary size); needs V >= 4.
    input_seq_len:     n; the context holds n // 2 key-value pairs; model input length 2 (n // 2) + 2.
    num_examples:      train split size.
    num_test_examples: test split size.
    train_mask:        "all" (the paper: loss on every position) or "answer" (final token only).
    """

    name: ClassVar[str] = "associative_recall"

    vocab_size: int = 10
    input_seq_len: int = 20
    num_examples: int = 5000
    num_test_examples: int = 500
    train_mask: str = "all"

    def __post_init__(self) -> None:
        checks.require_int(
            self.name, "vocab_size", self.vocab_size, 4, "two specials, at least one key and one value"
        )
        checks.require_int(self.name, "input_seq_len", self.input_seq_len, 2)
        self._check_protocol()

    @property
    def num_pairs(self) -> int:
        return self.input_seq_len // 2

    @property
    def seq_len(self) -> int:
        """Model input length: 2 (n // 2) + 2."""
        return 2 * self.num_pairs + 2

    def draw_example(self, rng: np.random.Generator) -> np.ndarray:
        """int64 (2 (n // 2) + 3,) one full sequence, drawing from `rng` in the paper's order."""
        keys, values = self.vocab.key_ids, self.vocab.value_ids
        value_of_key = values[rng.integers(0, len(values), size=len(keys))]
        drawn = rng.integers(0, len(keys), size=self.num_pairs + 1)
        context, query = drawn[:-1], drawn[-1]
        if query not in context:
            _, first_seen = np.unique(context, return_index=True)
            present_in_order = context[np.sort(first_seen)]
            query = present_in_order[rng.integers(0, len(present_in_order))]
        pairs = np.stack([keys[context], value_of_key[context]], axis=1).reshape(-1)
        tail = [self.vocab.copy_prefix_id, keys[query], value_of_key[query]]
        return np.concatenate([pairs, tail]).astype(np.int64)

    def draw_vectorised(self, rng: np.random.Generator, n_examples: int) -> np.ndarray:
        """int64 (B, 2 (n // 2) + 3) fresh sequences of the same distribution, drawn in one pass."""
        keys, values = self.vocab.key_ids, self.vocab.value_ids
        n_keys = len(keys)
        value_of_key = values[rng.integers(0, len(values), size=(n_examples, n_keys))]
        context = rng.integers(0, n_keys, size=(n_examples, self.num_pairs))
        context_values = np.take_along_axis(value_of_key, context, axis=1)
        # Uniform over the distinct keys present (what draw-then-redraw amounts to): the
        # largest random score among present keys.
        present = np.zeros((n_examples, n_keys), dtype=bool)
        np.put_along_axis(present, context, True, axis=1)
        scores = np.where(present, rng.random((n_examples, n_keys)), -1.0)
        query = scores.argmax(axis=1)
        rows = np.arange(n_examples)
        pairs = np.stack([keys[context], context_values], axis=2).reshape(n_examples, -1)
        tail = np.stack(
            [np.full(n_examples, self.vocab.copy_prefix_id), keys[query], value_of_key[rows, query]],
            axis=1,
        )
        return np.concatenate([pairs, tail], axis=1).astype(np.int64)
