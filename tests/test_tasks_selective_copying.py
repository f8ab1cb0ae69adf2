"""Selective copying (s4's variable-spacing copying data, Mamba's setting)."""

from __future__ import annotations

import numpy as np
import pytest

from h3_jax.tasks import SelectiveCopyingTask, selective_copying


class FixedDataRng:
    """Returns fixed data tokens from `integers`; checks the range asked for."""

    def __init__(self, data, expected_range):
        self.data, self.expected_range = data, expected_range

    def integers(self, low, high, size):
        assert (low, high) == self.expected_range and size == self.data.shape
        return self.data


def test_hand_worked_layout(monkeypatch):
    # A = 6, M = 3, seq_len = 10: data (4, 1, 3) at positions drawn as (5, 1, 2), used sorted.
    positions = np.array([[5, 1, 2]])
    monkeypatch.setattr(selective_copying, "distinct_integers", lambda rng, n, k, low, high: positions)
    task = SelectiveCopyingTask(vocab_size=6, seq_len=10, num_tokens=3)
    batch = task.draw(FixedDataRng(np.array([[4, 1, 3]]), expected_range=(1, 5)), 1)
    assert batch.inputs[0].tolist() == [0, 4, 1, 0, 0, 3, 0, 5, 5, 5]
    assert batch.targets[0].tolist() == [0, 0, 0, 0, 0, 0, 0, 4, 1, 3]
    assert batch.mask[0].tolist() == [False] * 7 + [True] * 3


def test_mamba_setting_layout():
    task = SelectiveCopyingTask(num_examples=64, num_test_examples=16)
    assert (task.vocab_size, task.seq_len, task.num_tokens) == (16, 4096, 16)
    train, test = task.dataset(0)
    assert train.inputs.shape == (64, 4096) and test.inputs.shape == (16, 4096)
    for batch in (train, test):
        assert batch.inputs.dtype == np.int32 and batch.targets.dtype == np.int32 and batch.mask.dtype == bool
        region, markers = batch.inputs[:, :-16], batch.inputs[:, -16:]
        assert (markers == 15).all()
        assert (batch.mask[:, -16:]).all() and not batch.mask[:, :-16].any()
        assert ((region >= 0) & (region <= 14)).all()
        for row, targets in zip(region, batch.targets[:, -16:]):
            data = row[row != 0]
            assert len(data) == 16  # data tokens are never the noise token
            np.testing.assert_array_equal(data, targets)  # copied in order
    # Positions are spread over the whole region, not packed at the start.
    last_data = [np.flatnonzero(row)[-1] for row in train.inputs[:, :-16]]
    assert np.mean(last_data) > 3000


def test_deterministic_in_seed_and_index():
    task = SelectiveCopyingTask(seq_len=256, num_examples=8, num_test_examples=4)
    a = task.dataset(1)
    np.testing.assert_array_equal(a[0].inputs, task.dataset(1)[0].inputs)
    assert not np.array_equal(a[0].inputs, task.dataset(2)[0].inputs)
    s = task.batch(0, 3, 8)
    np.testing.assert_array_equal(s.inputs, task.batch(0, 3, 8).inputs)
    assert not np.array_equal(s.inputs, task.batch(0, 4, 8).inputs)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"vocab_size": 2}, "vocab_size must be >= 3"),
        ({"seq_len": 31}, "seq_len must be >= 32"),
        ({"num_tokens": 0}, "num_tokens must be >= 1"),
    ],
)
def test_bad_values_are_named(overrides, message):
    with pytest.raises(ValueError, match=f"task 'selective_copying': {message}"):
        SelectiveCopyingTask(**overrides)
