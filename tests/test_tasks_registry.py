"""get_task / TASKS: lookup, overrides, the shared interface (h3_jax.testing.check_task) and the
error messages."""

from __future__ import annotations

import pytest

from h3_jax.tasks import TASKS, get_task
from h3_jax.testing import check_task

SMALL = {
    "induction_head": {"num_examples": 50, "num_test_examples": 10},
    "associative_recall": {"num_examples": 50, "num_test_examples": 10},
    "mqar": {"num_examples": 50, "num_test_examples": 10},
    "selective_copying": {"seq_len": 128, "num_examples": 50, "num_test_examples": 10},
}


def test_task_names():
    assert sorted(TASKS) == ["associative_recall", "induction_head", "mqar", "selective_copying"]


def test_paper_defaults():
    ih, ar = get_task("induction_head"), get_task("associative_recall")
    assert (ih.vocab_size, ih.input_seq_len, ih.seq_len) == (20, 30, 31)
    assert (ar.vocab_size, ar.input_seq_len, ar.seq_len) == (10, 20, 22)
    assert (ih.num_examples, ih.num_test_examples) == (ar.num_examples, ar.num_test_examples) == (5000, 500)
    assert ih.train_mask == ar.train_mask == "all"


@pytest.mark.parametrize("name", sorted(SMALL))
def test_built_in_tasks_keep_the_contract(name):
    check_task(name, **SMALL[name])


def test_overrides_reach_the_task():
    task = get_task("associative_recall", vocab_size=20, input_seq_len=40)
    assert task.vocab_size == 20 and task.seq_len == 42


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task 'copying'; choose one of: .*mqar"):
        get_task("copying")


def test_unknown_field():
    expected = "task 'induction_head' has no field 'seq_len'; its fields are: vocab_size"
    with pytest.raises(ValueError, match=expected):
        get_task("induction_head", seq_len=10)


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("associative_recall", {"vocab_size": 3}, "vocab_size must be >= 4 \\(two specials, at least one"),
        ("induction_head", {"vocab_size": 2}, "vocab_size must be >= 3"),
        ("induction_head", {"input_seq_len": 2}, "input_seq_len must be >= 3"),
        ("induction_head", {"vocab_size": 20.0}, "vocab_size must be an integer, got 20.0"),
        ("induction_head", {"num_examples": True}, "num_examples must be an integer"),
        ("associative_recall", {"train_mask": "last"}, "train_mask must be one of all, answer, got 'last'"),
        ("mqar", {"seq_len": 64, "num_kv_pairs": 17}, "seq_len must be >= "),
    ],
)
def test_bad_values(name, overrides, message):
    with pytest.raises(ValueError, match=f"task '{name}': {message}"):
        get_task(name, **overrides)
