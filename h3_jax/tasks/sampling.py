"""Vectorised sampling without replacement, one independent draw per row."""

from __future__ import annotations

import numpy as np

# Row blocks are sized so a block of random scores stays near this many floats.
_BLOCK_FLOATS = 1 << 22


def distinct_integers(rng: np.random.Generator, n_rows: int, k: int, low: int, high: int) -> np.ndarray:
    """int64 (n_rows, k): per row, k distinct integers from [low, high), uniform over ordered k-tuples.

    Rejection (redraw rows with a repeat) when a repeat is unlikely; otherwise the first k of a
    random permutation of the pool, in row blocks.
    """
    pool = high - low
    if k > pool:
        raise ValueError(f"cannot draw {k} distinct integers from a pool of {pool}")
    if k * (k - 1) <= pool:  # a row repeats with probability below about 1 - e^(-1/2)
        out = rng.integers(low, high, size=(n_rows, k))
        redrawn = np.arange(n_rows)
        while redrawn.size:
            ordered = np.sort(out[redrawn], axis=1)
            redrawn = redrawn[(ordered[:, 1:] == ordered[:, :-1]).any(axis=1)]
            out[redrawn] = rng.integers(low, high, size=(redrawn.size, k))
        return out
    out = np.empty((n_rows, k), dtype=np.int64)
    block = max(1, _BLOCK_FLOATS // pool)
    for start in range(0, n_rows, block):
        stop = min(start + block, n_rows)
        scores = rng.random((stop - start, pool))
        out[start:stop] = low + np.argsort(scores, axis=1)[:, :k]
    return out


def weighted_without_replacement(rng: np.random.Generator, n_rows: int, k: int, p: np.ndarray) -> np.ndarray:
    """int64 (n_rows, k): per row, k distinct indices into `p` drawn one after another, each with
    probability proportional to `p` among those not yet drawn (what numpy's
    `choice(len(p), k, replace=False, p=p)` samples). An exponential race: index i finishes at
    time E_i / p_i with E_i ~ Exp(1), and the order of finishing is exactly that sequential draw.
    """
    p = np.asarray(p, dtype=np.float64)
    n_nonzero = int(np.count_nonzero(p))
    if k > n_nonzero:
        raise ValueError(f"cannot draw {k} distinct indices from {n_nonzero} with nonzero weight")
    rate = np.where(p > 0, p, 1.0)
    never = p <= 0
    out = np.empty((n_rows, k), dtype=np.int64)
    block = max(1, _BLOCK_FLOATS // len(p))
    for start in range(0, n_rows, block):
        stop = min(start + block, n_rows)
        finish = rng.standard_exponential((stop - start, len(p))) / rate
        finish[:, never] = np.inf
        out[start:stop] = np.argsort(finish, axis=1)[:, :k]
    return out
