"""The token layout of the H3 paper's synthetic tasks (induction head, associative recall).

The paper's code names its V - 2 regular tokens by the strings "0" .. "V-3", adds two specials,
the copy prefix "=>" and the noop ".", and numbers all V strings by their position in a
lexicographic string sort. Since "." < "0".."9" < "=>" in that order, the ids come out as

    0 = "."   1 .. V-2 = the regular tokens   V-1 = "=>"

with the regular strings in string order ("10" sorts before "2"). For V = 10 that is
"." 0, "0".."7" 1..8, "=>" 9; for V = 20: "." 0, "0" 1, "1" 2, "10".."17" 3..10, "2".."9" 11..18,
"=>" 19. Associative recall uses the first half of the sorted regular tokens as keys and the rest
as values, i.e. ids 1..K and K+1..V-2 with K = (V - 2) // 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

COPY_PREFIX = "=>"
NOOP = "."


@dataclass(frozen=True)
class SafariVocab:
    """The sorted-string vocabulary of size `vocab_size` (specials included)."""

    vocab_size: int

    @cached_property
    def tokens(self) -> tuple[str, ...]:
        """All V token strings; the position of a string is its id."""
        regular = [str(i) for i in range(self.vocab_size - 2)]
        return tuple(sorted(regular + [COPY_PREFIX, NOOP]))

    @cached_property
    def regular_tokens(self) -> tuple[str, ...]:
        """The V - 2 regular strings in sorted order."""
        return tuple(t for t in self.tokens if t not in (COPY_PREFIX, NOOP))

    def id(self, token: str) -> int:
        return self.tokens.index(token)

    def decode(self, ids: np.ndarray) -> str:
        """Space-separated token strings for a 1-D sequence of ids."""
        return " ".join(self.tokens[int(i)] for i in ids)

    @property
    def copy_prefix_id(self) -> int:
        return self.id(COPY_PREFIX)

    @property
    def noop_id(self) -> int:
        return self.id(NOOP)

    @cached_property
    def regular_ids(self) -> np.ndarray:
        """int64 (V - 2,) ids of the regular tokens, in sorted-string order."""
        return np.array([self.id(t) for t in self.regular_tokens], dtype=np.int64)

    @property
    def key_ids(self) -> np.ndarray:
        """Associative-recall keys: the first (V - 2) // 2 regular tokens."""
        return self.regular_ids[: len(self.regular_ids) // 2]

    @property
    def value_ids(self) -> np.ndarray:
        """Associative-recall values: the remaining regular tokens."""
        return self.regular_ids[len(self.regular_ids) // 2 :]

    @cached_property
    def regular_token_probs(self) -> np.ndarray:
        """float64 (V,) uniform over regular tokens, 0 on the specials (the paper's sampling weights)."""
        n_regular = len(self.regular_tokens)
        return np.array(
            [0.0 if t in (COPY_PREFIX, NOOP) else 1 / n_regular for t in self.tokens],
            dtype=np.float64,
        )
