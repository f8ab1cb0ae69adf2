"""Multi-query associative recall (MQAR), as Zoology builds it (`zoology/data/multiquery_ar.py`).

One example, with V = vocab_size, L = seq_len, kv = num_kv_pairs, C = 2 kv num_passes:

1. kv distinct keys uniform from [1, V // 2) and kv distinct values uniform from [V // 2, V);
   token 0 is never a key or value
2. context: `k1 v1 k2 v2 ... k_kv v_kv`, repeated num_passes times           (C tokens)
3. query region of L - C + 1 zeros with S = (L - C) // 2 slots at even offsets 0, 2, 4, ...
4. kv distinct slots g_1..g_kv drawn one after another with P(g) proportional to
   (g + 1)^(power_a - 1) among slots not yet drawn (a power law: queries cluster right after the
   context); key i is written at region offset 2 g_i, i.e. absolute position C + 2 g_i
5. labels: value i at position C + 2 g_i + 1 of the L + 1 tokens; inputs are the first L tokens
   and labels the last L, so after the shift **the label sits on the query key's own position**:
   the model emits v_i while reading k_i. Exactly kv labelled positions per example.
6. filler: with `random_non_queries` every remaining 0 in the inputs becomes a token uniform over
   [0, V) (it may collide with keys or values, as in Zoology); without it the filler stays 0.

E.g. V = 20, L = 16, kv = 2, keys (3, 7), values (12, 15), gaps (1, 4), no random filler:

    inputs   3 12 7 15 0 0 3  0 0 0 0 0 7  0 0 0
    labels   .  . .  . . . 12 . . . . . 15 . . .     ("." = not labelled)

Batch layout: `targets` holds the value at each query position and 0 elsewhere; `mask` is True
exactly on the kv query positions, for train and test (Zoology's loss and accuracy).

Choices where Zoology leaves something open or cannot be mirrored:
- Random stream: Zoology seeds numpy's global legacy generator per segment and draws the filler
  with torch. Here every draw comes from one `np.random.default_rng`, vectorised over examples, so
  the samples follow Zoology's distribution but are not Zoology's bit-for-bit.
- `dataset(seed)` draws train, then test, from one `default_rng(seed)` (Zoology seeds the two
  segments separately).
- Default filler: 0 (`random_non_queries=False`), the Zoology paper's Figure 2 setting; Zoology's
  config class defaults to random filler; set `random_non_queries=True` for that.
- Defaults are Figure 2's first panel: V = 8192, L = 64, kv = 4, power_a = 0.01, 100,000 train and
  3,000 test examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np

from h3_jax.tasks import checks
from h3_jax.tasks.base import Batch, DrawnTask
from h3_jax.tasks.sampling import distinct_integers, weighted_without_replacement


@dataclass(frozen=True)
class MQARTask(DrawnTask):
    """Zoology's MQAR task.

    vocab_size:         V (model vocabulary size); needs V > seq_len.
    seq_len:            L, the model input length; even, and 2 kv num_passes + 2 kv <= L.
    num_kv_pairs:       kv, key-value pairs in the context and queries per example.
    power_a:            exponent of the gap power law (0.01 ~ 1/(g+1); 1.0 = uniform).
    num_passes:         times the context block is repeated (JRT-style prompts when > 1).
    random_non_queries: random filler tokens instead of 0.
    num_examples:       train split size.
    num_test_examples:  test split size.
    """

    name: ClassVar[str] = "mqar"

    vocab_size: int = 8192
    seq_len: int = 64
    num_kv_pairs: int = 4
    power_a: float = 0.01
    num_passes: int = 1
    random_non_queries: bool = False
    num_examples: int = 100_000
    num_test_examples: int = 3_000

    def __post_init__(self) -> None:
        task = self.name
        checks.require_int(task, "num_kv_pairs", self.num_kv_pairs, 1)
        checks.require_int(task, "num_passes", self.num_passes, 1)
        checks.require_int(task, "seq_len", self.seq_len, 2)
        checks.require_int(task, "vocab_size", self.vocab_size, 2)
        checks.require_positive_float(task, "power_a", self.power_a)
        checks.require_bool(task, "random_non_queries", self.random_non_queries)
        checks.require_int(task, "num_examples", self.num_examples, 1)
        checks.require_int(task, "num_test_examples", self.num_test_examples, 1)
        if self.seq_len % 2:
            checks.fail(task, "seq_len", f"must be even, got {self.seq_len}")
        needed = 2 * self.num_kv_pairs * self.num_passes + 2 * self.num_kv_pairs
        if needed > self.seq_len:
            checks.fail(
                task,
                "seq_len",
                f"must be >= 2 num_kv_pairs num_passes + 2 num_kv_pairs = {needed} "
                f"(context plus one query slot per key), got {self.seq_len}",
            )
        if self.vocab_size <= self.seq_len:
            checks.fail(task, "vocab_size", f"must be > seq_len = {self.seq_len}, got {self.vocab_size}")
        # Redundant given the two checks above (kv <= L / 4 < V / 4), kept so the cause is named.
        n_keys = self.vocab_size // 2 - 1
        if self.num_kv_pairs > n_keys:
            checks.fail(
                task,
                "vocab_size",
                f"has {n_keys} keys ([1, V // 2)), too few for num_kv_pairs = {self.num_kv_pairs}",
            )

    @property
    def labels_per_example(self) -> int:
        """Most labelled (mask True) positions in one example: its queries."""
        return self.num_kv_pairs

    @property
    def context_len(self) -> int:
        """C = 2 kv num_passes."""
        return 2 * self.num_kv_pairs * self.num_passes

    @property
    def num_slots(self) -> int:
        """S = (L - C) // 2 query slots."""
        return (self.seq_len - self.context_len) // 2

    @cached_property
    def gap_probs(self) -> np.ndarray:
        """float64 (S,) P(g) proportional to (g + 1)^(power_a - 1)."""
        weights = self.power_a * np.arange(1, self.num_slots + 1, dtype=np.float64) ** (self.power_a - 1)
        return weights / weights.sum()

    def draw(self, rng: np.random.Generator, n_examples: int) -> Batch:
        """`n_examples` fresh examples; Batch of (n_examples, L), mask on the query positions."""
        n, kv, V, L, C = n_examples, self.num_kv_pairs, self.vocab_size, self.seq_len, self.context_len
        keys = distinct_integers(rng, n, kv, 1, V // 2)
        values = distinct_integers(rng, n, kv, V // 2, V)
        gaps = weighted_without_replacement(rng, n, kv, self.gap_probs)

        context = np.empty((n, 2 * kv), dtype=np.int32)
        context[:, 0::2], context[:, 1::2] = keys, values
        inputs = np.zeros((n, L), dtype=np.int32)
        inputs[:, :C] = np.tile(context, (1, self.num_passes))
        query_positions = C + 2 * gaps
        np.put_along_axis(inputs, query_positions, keys, axis=1)
        targets = np.zeros((n, L), dtype=np.int32)
        np.put_along_axis(targets, query_positions, values, axis=1)
        mask = np.zeros((n, L), dtype=bool)
        np.put_along_axis(mask, query_positions, True, axis=1)
        if self.random_non_queries:
            filler = inputs == 0
            inputs[filler] = rng.integers(0, V, size=int(filler.sum()), dtype=np.int32)
        return Batch(inputs, targets, mask)
