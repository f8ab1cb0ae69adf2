"""Zoology's MQAR generator and the samplers under it."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from h3_jax.tasks import MQARTask, mqar
from h3_jax.tasks.sampling import distinct_integers, weighted_without_replacement


def test_hand_worked_layout(monkeypatch):
    # V = 20, L = 16, kv = 2: keys (3, 7), values (12, 15), gaps (1, 4); context C = 4.
    draws = iter([np.array([[3, 7]]), np.array([[12, 15]])])
    monkeypatch.setattr(mqar, "distinct_integers", lambda rng, n, k, low, high: next(draws))
    monkeypatch.setattr(mqar, "weighted_without_replacement", lambda rng, n, k, p: np.array([[1, 4]]))
    task = MQARTask(vocab_size=20, seq_len=16, num_kv_pairs=2)
    batch = task.draw(np.random.default_rng(0), 1)
    assert batch.inputs[0].tolist() == [3, 12, 7, 15, 0, 0, 3, 0, 0, 0, 0, 0, 7, 0, 0, 0]
    assert np.flatnonzero(batch.mask[0]).tolist() == [6, 12]  # the label sits on the query key
    assert batch.targets[0].tolist() == [0] * 6 + [12] + [0] * 5 + [15, 0, 0, 0]


def test_hand_worked_layout_two_passes(monkeypatch):
    draws = iter([np.array([[3, 7]]), np.array([[12, 15]])])
    monkeypatch.setattr(mqar, "distinct_integers", lambda rng, n, k, low, high: next(draws))
    monkeypatch.setattr(mqar, "weighted_without_replacement", lambda rng, n, k, p: np.array([[0, 2]]))
    task = MQARTask(vocab_size=20, seq_len=16, num_kv_pairs=2, num_passes=2)
    batch = task.draw(np.random.default_rng(0), 1)
    assert task.num_slots == 4
    assert batch.inputs[0].tolist() == [3, 12, 7, 15, 3, 12, 7, 15, 3, 0, 0, 0, 7, 0, 0, 0]
    assert np.flatnonzero(batch.mask[0]).tolist() == [8, 12]


def check_mqar_rows(task: MQARTask, batch) -> None:
    V, kv, C = task.vocab_size, task.num_kv_pairs, task.context_len
    keys, values = batch.inputs[:, 0:2 * kv:2], batch.inputs[:, 1:2 * kv:2]
    assert ((keys >= 1) & (keys < V // 2)).all() and ((values >= V // 2) & (values < V)).all()
    assert all(len(set(row)) == kv for row in keys) and all(len(set(row)) == kv for row in values)
    assert (batch.mask.sum(axis=1) == kv).all()
    assert not batch.mask[:, :C].any()
    rows, positions = np.nonzero(batch.mask)
    assert ((positions - C) % 2 == 0).all()  # even offsets in the query region
    for row, position in zip(rows, positions):
        key = batch.inputs[row, position]
        i = list(keys[row]).index(key)
        assert batch.targets[row, position] == values[row, i]
    queried = np.sort(batch.inputs[batch.mask].reshape(-1, kv), axis=1)
    assert (queried == np.sort(keys, axis=1)).all()  # every key queried exactly once
    assert (batch.targets[~batch.mask] == 0).all()


def test_dataset_layout_and_zero_filler():
    task = MQARTask(num_examples=2000, num_test_examples=300)
    train, test = task.dataset(0)
    assert train.inputs.shape == (2000, 64) and test.inputs.shape == (300, 64)
    for batch in (train, test):
        assert batch.inputs.dtype == np.int32 and batch.targets.dtype == np.int32 and batch.mask.dtype == bool
        check_mqar_rows(task, batch)
        filler = ~batch.mask
        filler[:, : task.context_len] = False
        assert (batch.inputs[filler] == 0).all()


def test_random_filler_changes_only_the_filler():
    zero = MQARTask(vocab_size=100, seq_len=32, num_kv_pairs=4, random_non_queries=False)
    rand = MQARTask(vocab_size=100, seq_len=32, num_kv_pairs=4, random_non_queries=True)
    a, b = zero.batch(0, 0, 500), rand.batch(0, 0, 500)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.targets, b.targets)
    kept = a.inputs != 0
    np.testing.assert_array_equal(a.inputs[kept], b.inputs[kept])
    filler = b.inputs[~kept]
    assert filler.min() == 0 and filler.max() == 99 and len(np.unique(filler)) == 100  # all of [0, V)
    check_mqar_rows(rand, b)


def test_gaps_follow_the_power_law():
    task = MQARTask()  # L = 64, kv = 4: 28 slots, a = 0.01
    p = task.gap_probs
    assert len(p) == 28 and abs(p.sum() - 1) < 1e-12
    np.testing.assert_allclose(p / p[0], np.arange(1, 29) ** -0.99, rtol=1e-12)
    assert abs(p[0] - 0.25) < 0.005
    batch = task.batch(0, 0, 20000)
    gaps = (np.nonzero(batch.mask)[1] - task.context_len) // 2
    assert abs(np.mean(gaps < 4) - 0.46) < 0.02  # about 46 % of gaps are below kv
    # Uniform gaps (a = 1) put 4 / 28 of them there instead.
    uniform = MQARTask(power_a=1.0).batch(0, 0, 20000)
    uniform_gaps = (np.nonzero(uniform.mask)[1] - task.context_len) // 2
    assert abs(np.mean(uniform_gaps < 4) - 4 / 28) < 0.01


def test_weighted_without_replacement_is_sequential_sampling():
    p = np.array([0.5, 0.3, 0.2])
    draws = weighted_without_replacement(np.random.default_rng(0), 60000, 2, p)
    counts = Counter(map(tuple, draws.tolist()))
    for a in range(3):
        for b in range(3):
            expected = 0.0 if a == b else p[a] * p[b] / (1 - p[a])
            assert abs(counts[(a, b)] / 60000 - expected) < 0.01, (a, b)


def test_weighted_without_replacement_skips_zero_weights():
    draws = weighted_without_replacement(np.random.default_rng(0), 1000, 2, np.array([0.0, 1.0, 3.0]))
    assert set(np.unique(draws)) == {1, 2}
    with pytest.raises(ValueError, match="nonzero weight"):
        weighted_without_replacement(np.random.default_rng(0), 1, 3, np.array([0.0, 1.0, 3.0]))


@pytest.mark.parametrize("pool, k", [(4, 2), (3, 3)])  # rejection path, permutation path
def test_distinct_integers_uniform_over_ordered_tuples(pool, k):
    draws = distinct_integers(np.random.default_rng(1), 30000, k, 10, 10 + pool)
    counts = Counter(map(tuple, draws.tolist()))
    n_tuples = int(np.prod(range(pool - k + 1, pool + 1)))
    assert len(counts) == n_tuples
    assert all(len(set(t)) == k and min(t) >= 10 and max(t) < 10 + pool for t in counts)
    assert max(abs(c / 30000 - 1 / n_tuples) for c in counts.values()) < 0.01


def test_paper_defaults_and_sizes():
    task = MQARTask()
    assert (task.vocab_size, task.seq_len, task.num_kv_pairs, task.power_a) == (8192, 64, 4, 0.01)
    assert (task.num_examples, task.num_test_examples, task.random_non_queries) == (100_000, 3_000, False)
    train, test = task.dataset(0)
    assert train.inputs.shape == (100_000, 64) and test.inputs.shape == (3_000, 64)
    assert train.inputs.max() < 8192


def test_deterministic_in_seed_and_index():
    task = MQARTask(num_examples=100, num_test_examples=10, random_non_queries=True)
    a, b = task.dataset(4), task.dataset(4)
    for split_a, split_b in zip(a, b):
        for x, y in zip(split_a, split_b):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0].inputs, task.dataset(5)[0].inputs)
    s = task.batch(2, 9, 16)
    np.testing.assert_array_equal(s.inputs, task.batch(2, 9, 16).inputs)
    assert not np.array_equal(s.inputs, task.batch(2, 10, 16).inputs)
    assert not np.array_equal(s.inputs, task.batch(3, 9, 16).inputs)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"seq_len": 63}, "seq_len must be even"),
        ({"seq_len": 30, "num_kv_pairs": 8}, "seq_len must be >= .* = 32"),
        ({"vocab_size": 64}, "vocab_size must be > seq_len = 64"),
        ({"power_a": 0.0}, "power_a must be a number > 0"),
        ({"random_non_queries": 1}, "random_non_queries must be true or false"),
    ],
)
def test_bad_values_are_named(overrides, message):
    with pytest.raises(ValueError, match=f"task 'mqar': {message}"):
        MQARTask(**overrides)
