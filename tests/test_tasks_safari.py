"""The H3 paper's induction-head and associative-recall generators: layout, rng order, protocol."""

from __future__ import annotations

import numpy as np
import pytest

from h3_jax.tasks import AssociativeRecallTask, InductionHeadTask, SafariVocab


class ScriptedRng:
    """Stands in for np.random.Generator: replies from a script and logs every call."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.calls = []

    def _next(self, call):
        self.calls.append(call)
        return self.replies.pop(0)

    def random(self, size=None):
        return self._next(("random", size))

    def integers(self, *args, size=None):
        return self._next(("integers", args, size))


# ---- vocabulary -------------------------------------------------------------------------------


def test_vocab_v10_table():
    vocab = SafariVocab(10)
    assert vocab.tokens == (".", "0", "1", "2", "3", "4", "5", "6", "7", "=>")
    assert (vocab.noop_id, vocab.copy_prefix_id) == (0, 9)
    assert vocab.key_ids.tolist() == [1, 2, 3, 4]
    assert vocab.value_ids.tolist() == [5, 6, 7, 8]


def test_vocab_v20_table_is_string_sorted():
    vocab = SafariVocab(20)
    expected = [".", "0", "1", "10", "11", "12", "13", "14", "15", "16", "17"]
    expected += ["2", "3", "4", "5", "6", "7", "8", "9", "=>"]
    assert list(vocab.tokens) == expected
    assert vocab.id("10") == 3 and vocab.id("17") == 10 and vocab.id("2") == 11 and vocab.id("9") == 18
    assert vocab.key_ids.tolist() == list(range(1, 10))  # "0", "1", "10".."16"
    assert vocab.value_ids.tolist() == list(range(10, 19))  # "17", "2".."9"
    assert vocab.decode(np.array([0, 3, 19])) == ". 10 =>"


def test_vocab_odd_size_gives_the_extra_token_to_values():
    vocab = SafariVocab(21)  # 19 regular tokens
    assert len(vocab.key_ids) == 9 and len(vocab.value_ids) == 10
    probs = vocab.regular_token_probs
    assert probs[0] == 0 and probs[-1] == 0 and np.allclose(probs[1:-1], 1 / 19)


# ---- induction head ---------------------------------------------------------------------------


def test_induction_head_hand_worked_example_and_rng_order():
    # V = 6: ids 1..4 regular, cumulative weights (0, .25, .5, .75, 1, 1); n = 5.
    task = InductionHeadTask(vocab_size=6, input_seq_len=5)
    rng = ScriptedRng([np.array([0.1, 0.6, 0.3, 0.9, 0.55]), 0.3, np.array([1])])
    sequence = task.draw_example(rng)
    # tokens 1 3 2 4 3; trigger p = 1 -> "=>"(5) at 1, x = token 2 = 2; then "=>", x appended.
    assert sequence.tolist() == [1, 5, 2, 4, 3, 5, 2]
    assert rng.calls == [("random", 5), ("random", None), ("integers", (3,), 1)]


# The paper's generator (sorted-string vocab, rng.choice on strings, torch.unique) run with seed 0
# at the paper settings gives these rows; the first two train rows and the first test row.
PAPER_IH_SEED0_TRAIN = [
    [13, 13, 3, 15, 2, 14, 15, 2, 15, 1, 13, 2, 5, 1, 11, 12, 13, 8, 7, 16, 10, 17, 19, 9, 11, 11, 15, 5, 5, 18, 19, 9],
    [14, 14, 9, 7, 11, 10, 5, 11, 4, 18, 1, 19, 4, 15, 13, 6, 8, 12, 9, 2, 13, 5, 4, 16, 8, 12, 10, 11, 15, 3, 19, 4],
]
PAPER_IH_SEED0_TEST = [13, 2, 12, 14, 12, 3, 10, 10, 14, 13, 2, 10, 19, 7, 14, 4, 11, 2, 12, 16, 6, 12, 3, 5, 1, 9, 8, 8, 2, 14, 19, 7]
PAPER_AR_SEED0_TRAIN = [
    [2, 8, 3, 7, 2, 8, 1, 6, 2, 8, 1, 6, 4, 8, 2, 8, 3, 7, 1, 6, 9, 2, 8],
    [2, 8, 2, 8, 3, 6, 2, 8, 2, 8, 3, 6, 3, 6, 2, 8, 4, 7, 1, 8, 9, 3, 6],
]
PAPER_AR_SEED0_TEST = [3, 5, 3, 5, 4, 6, 1, 5, 1, 5, 4, 6, 2, 5, 1, 5, 2, 5, 1, 5, 9, 1, 5]


@pytest.fixture(scope="module")
def ih_paper():
    return InductionHeadTask().dataset(0)


@pytest.fixture(scope="module")
def ar_paper():
    return AssociativeRecallTask().dataset(0)


def full_sequences(batch) -> np.ndarray:
    """The (n, L + 1) sequences a Batch was cut from."""
    assert (batch.inputs[:, 1:] == batch.targets[:, :-1]).all()
    return np.concatenate([batch.inputs, batch.targets[:, -1:]], axis=1)


@pytest.mark.parametrize(
    "name, train_rows, test_row",
    [("ih", PAPER_IH_SEED0_TRAIN, PAPER_IH_SEED0_TEST), ("ar", PAPER_AR_SEED0_TRAIN, PAPER_AR_SEED0_TEST)],
)
def test_dataset_matches_the_paper_generator_rows(name, train_rows, test_row, ih_paper, ar_paper):
    train, test = ih_paper if name == "ih" else ar_paper
    assert full_sequences(train)[:2].tolist() == train_rows
    assert full_sequences(test)[0].tolist() == test_row


def check_induction_rows(sequences: np.ndarray, vocab_size: int) -> None:
    copy = vocab_size - 1
    assert ((sequences >= 1) & (sequences <= copy)).all()  # never the noop
    assert ((sequences == copy).sum(axis=1) == 2).all()  # the trigger and the final prefix
    assert (sequences[:, -2] == copy).all()
    trigger = (sequences[:, :-2] == copy).argmax(axis=1)
    assert trigger.max() <= sequences.shape[1] - 5  # p in [0, n - 3]
    rows = np.arange(len(sequences))
    assert (sequences[rows, trigger + 1] == sequences[:, -1]).all()  # answer = token after the trigger
    assert (sequences[:, -1] != copy).all()


def test_induction_head_paper_dataset_layout(ih_paper):
    train, test = ih_paper
    assert train.inputs.shape == (5000, 31) and test.inputs.shape == (500, 31)
    for batch in (train, test):
        assert batch.inputs.dtype == np.int32 and batch.targets.dtype == np.int32 and batch.mask.dtype == bool
        check_induction_rows(full_sequences(batch), 20)
    assert train.mask.all()
    assert test.mask[:, -1].all() and not test.mask[:, :-1].any()
    # Every trigger position in [0, 27] occurs.
    trigger = (train.inputs[:, :-1] == 19).argmax(axis=1)
    assert set(trigger.tolist()) == set(range(28))


# ---- associative recall -----------------------------------------------------------------------


def test_associative_recall_hand_worked_example_with_redraw():
    # V = 10: keys 1..4, values 5..8; n = 6 -> 3 pairs.
    task = AssociativeRecallTask(vocab_size=10, input_seq_len=6)
    rng = ScriptedRng(
        [
            np.array([3, 0, 0, 2]),  # dictionary: 1->8, 2->5, 3->5, 4->7
            np.array([0, 2, 0, 3]),  # context keys 1, 3, 1; first query draw key 4 (absent)
            1,  # redraw among present keys in first-seen order (1, 3): key 3
        ]
    )
    assert task.draw_example(rng).tolist() == [1, 8, 3, 5, 1, 8, 9, 3, 5]
    assert rng.calls == [("integers", (0, 4), 4), ("integers", (0, 4), 4), ("integers", (0, 2), None)]


def test_associative_recall_hand_worked_example_without_redraw():
    task = AssociativeRecallTask(vocab_size=10, input_seq_len=7)  # odd n: still 3 pairs
    rng = ScriptedRng([np.array([1, 1, 2, 0]), np.array([3, 3, 1, 1])])
    # dictionary 1->6, 2->6, 3->7, 4->5; context 4 5 4 5 2 6; query key 2, present.
    assert task.draw_example(rng).tolist() == [4, 5, 4, 5, 2, 6, 9, 2, 6]
    assert len(rng.calls) == 2
    assert task.seq_len == 8


def check_recall_rows(sequences: np.ndarray, vocab_size: int) -> None:
    vocab = SafariVocab(vocab_size)
    keys, values = sequences[:, :-3:2], sequences[:, 1:-3:2]
    assert np.isin(keys, vocab.key_ids).all() and np.isin(values, vocab.value_ids).all()
    assert (sequences[:, -3] == vocab.copy_prefix_id).all()
    for row_keys, row_values, query, answer in zip(keys, values, sequences[:, -2], sequences[:, -1]):
        assert query in row_keys  # allow_dot=False: the query always occurred
        for key in np.unique(row_keys):  # one dictionary per example: a key keeps its value
            assert len(np.unique(row_values[row_keys == key])) == 1
        assert answer == row_values[row_keys == query][0]


def test_associative_recall_paper_dataset_layout(ar_paper):
    train, test = ar_paper
    assert train.inputs.shape == (5000, 22) and test.inputs.shape == (500, 22)
    for batch in (train, test):
        check_recall_rows(full_sequences(batch)[:1000], 10)
    assert train.mask.all()
    assert test.mask[:, -1].all() and not test.mask[:, :-1].any()
    # Dictionaries are per example: key 1 maps to every value somewhere in the train set.
    sequences = full_sequences(train)
    assert set(sequences[:, 1:-3:2][sequences[:, :-3:2] == 1].tolist()) == {5, 6, 7, 8}


# ---- protocol shared by both ------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["ih_paper", "ar_paper"])
def test_splits_have_no_duplicate_rows(fixture, request):
    for batch in request.getfixturevalue(fixture):
        sequences = full_sequences(batch)
        assert len(np.unique(sequences, axis=0)) == len(sequences)


def test_dedup_tops_up_to_the_requested_size():
    # V = 4, n = 5: 2 regular tokens and 3 trigger positions give 3 * 2**4 = 48 distinct sequences,
    # so 30 draws repeat and the split must be topped up.
    task = InductionHeadTask(vocab_size=4, input_seq_len=5, num_examples=30, num_test_examples=20)
    rng = np.random.default_rng(3)
    first_draws = np.stack([task.draw_example(rng) for _ in range(30)])
    assert len(np.unique(first_draws, axis=0)) < 30
    train, test = task.dataset(3)
    for batch, n in ((train, 30), (test, 20)):
        assert len(np.unique(full_sequences(batch), axis=0)) == n


def test_too_few_distinct_sequences_is_an_error():
    task = AssociativeRecallTask(vocab_size=4, input_seq_len=2, num_examples=3)  # one key, one value
    with pytest.raises(ValueError, match="cannot draw 3 distinct examples"):
        task.dataset(0)


@pytest.mark.parametrize("cls", [InductionHeadTask, AssociativeRecallTask])
def test_dataset_is_deterministic_in_seed(cls):
    task = cls(num_examples=200, num_test_examples=50)
    first, again, other = task.dataset(5), task.dataset(5), task.dataset(6)
    for a, b in zip(first, again):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(first[0].inputs, other[0].inputs)
    assert not np.array_equal(first[1].inputs, other[1].inputs)


@pytest.mark.parametrize("cls", [InductionHeadTask, AssociativeRecallTask])
def test_answer_train_mask_option(cls):
    train, _ = cls(num_examples=20, num_test_examples=5, train_mask="answer").dataset(0)
    assert train.mask[:, -1].all() and not train.mask[:, :-1].any()


def test_stream_batches_follow_the_same_layout():
    ih = InductionHeadTask(vocab_size=16, input_seq_len=64)
    check_induction_rows(full_sequences(ih.batch(0, 0, 512)), 16)
    ar = AssociativeRecallTask(vocab_size=20, input_seq_len=40)
    batch = ar.batch(0, 0, 512)
    assert batch.inputs.shape == (512, ar.seq_len) and batch.mask.all()
    check_recall_rows(full_sequences(batch), 20)


def test_stream_query_is_uniform_over_present_keys():
    # With 2 pairs and 4 keys, the query is each present key with probability 1/2 when 2 are present.
    ar = AssociativeRecallTask(vocab_size=10, input_seq_len=4)
    sequences = full_sequences(ar.batch(1, 0, 20000))
    two_present = sequences[:, 0] != sequences[:, 2]
    first_chosen = sequences[two_present, -2] == sequences[two_present, 0]
    assert abs(first_chosen.mean() - 0.5) < 0.02


@pytest.mark.parametrize("cls", [InductionHeadTask, AssociativeRecallTask])
def test_stream_is_deterministic_in_seed_and_index(cls):
    task = cls()
    a = task.batch(1, 7, 32)
    for x, y in zip(a, task.batch(1, 7, 32)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.inputs, task.batch(1, 8, 32).inputs)
    assert not np.array_equal(a.inputs, task.batch(2, 7, 32).inputs)
    assert a.inputs.dtype == np.int32 and a.mask.dtype == bool
