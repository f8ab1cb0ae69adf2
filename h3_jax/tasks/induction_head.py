"""Induction head, as the H3 paper's code builds it.

One example, with n = input_seq_len and the vocabulary of `vocab.py`:

1. n regular tokens i.i.d. uniform, then the copy prefix "=>"              (n + 1 tokens)
2. a trigger position p uniform in [0, n - 3]; token p becomes "=>", token p + 1 (call it x) stays
3. x is appended                                                            (n + 2 tokens)

so the sequence reads `... => x ... => x`; the model sees S[:-1] (n + 1 tokens, ending in "=>")
and predicts S[1:]. The answer, the final target, is x: the token after the earlier trigger.

Exact rng consumption per example (this is what makes `dataset(seed)` equal the paper's data):
n doubles for the tokens (`Generator.choice` with weights draws `random(n)` and inverts the
cumulative weights), one double for a coin that cannot change anything when `num_triggers` is 1
(the paper's only setting, and the only one offered here), then `integers(n - 2, size=1)`.
The stream `batch()` draws the same distribution vectorised, in a different rng order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np

from h3_jax.tasks import checks
from h3_jax.tasks.safari_protocol import SafariTask


@dataclass(frozen=True)
class InductionHeadTask(SafariTask):
    """The H3 paper's induction-head task (paper setting: V = 20, n = 30, 5000 / 500 examples).

    vocab_size:        V, including the two specials (model vocabulary size).
    input_seq_len:     n, the number of random tokens; the model input length is n + 1.
    num_examples:      train split size.
    num_test_examples: test split size.
    train_mask:        "all" (the paper: loss on every position) or "answer" (final token only).
    """

    name: ClassVar[str] = "induction_head"

    vocab_size: int = 20
    input_seq_len: int = 30
    num_examples: int = 5000
    num_test_examples: int = 500
    train_mask: str = "all"

    def __post_init__(self) -> None:
        checks.require_int(
            self.name, "vocab_size", self.vocab_size, 3, "two specials and at least one regular token"
        )
        checks.require_int(
            self.name, "input_seq_len", self.input_seq_len, 3, "the trigger needs a token after it"
        )
        self._check_protocol()

    @cached_property
    def _token_cdf(self) -> np.ndarray:
        """float64 (V,) the cumulative sampling weights `Generator.choice` inverts."""
        cdf = np.cumsum(self.vocab.regular_token_probs)
        return cdf / cdf[-1]

    @property
    def seq_len(self) -> int:
        """Model input length: n + 1."""
        return self.input_seq_len + 1

    def draw_example(self, rng: np.random.Generator) -> np.ndarray:
        """int64 (n + 2,) one full sequence, drawing from `rng` in the paper's order."""
        n, vocab = self.input_seq_len, self.vocab
        tokens = self._token_cdf.searchsorted(rng.random(n), side="right")
        rng.random()  # the paper's trigger-count coin; no effect with one trigger
        p = int(rng.integers(n - 2, size=1)[0])
        x = tokens[p + 1]
        tokens[p] = vocab.copy_prefix_id
        return np.concatenate([tokens, [vocab.copy_prefix_id, x]]).astype(np.int64)

    def draw_vectorised(self, rng: np.random.Generator, n_examples: int) -> np.ndarray:
        """int64 (B, n + 2) fresh sequences of the same distribution, drawn in one pass."""
        n, vocab = self.input_seq_len, self.vocab
        tokens = vocab.regular_ids[rng.integers(0, len(vocab.regular_ids), size=(n_examples, n))]
        p = rng.integers(0, n - 2, size=n_examples)
        rows = np.arange(n_examples)
        x = tokens[rows, p + 1]
        tokens[rows, p] = vocab.copy_prefix_id
        prefix = np.full((n_examples, 1), vocab.copy_prefix_id, dtype=np.int64)
        return np.concatenate([tokens, prefix, x[:, None]], axis=1)
