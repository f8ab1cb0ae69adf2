"""The h3-jax command line: presets, help, overrides, and every error path (status 2, one line)."""

from __future__ import annotations

import json

import pytest

from h3_jax import mixers
from h3_jax.cli import main, split_overrides
from h3_jax.presets import PRESETS, get_preset
from h3_jax.train.config import ConfigError, apply_overrides

PAPER = ["h3-ar", "h3-ih", "s4d-ar", "s4d-ih", "gss-ar", "gss-ih", "attention-ar", "attention-ih"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_presets_lists_every_required_preset_one_line_each(capsys):
    code, out, _ = run_cli(capsys, "presets")
    assert code == 0
    names = [line.split()[0] for line in out.strip().splitlines()]
    assert set(PAPER + ["h3-mqar", "attention-mqar", "h3-selcopy", "tiny-ar"]) <= set(names)
    assert len(names) == len(PRESETS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_checkpoints_and_splits_over_1_2_4_8_devices(name):
    config = get_preset(name)
    t = config.train
    assert all(t.batch_size % n == 0 for n in (1, 2, 4, 8))
    assert t.checkpoint_every < t.steps, "checkpoints periodically, not only at the end"
    assert config.model.vocab_size == config.task.vocab_size


def test_paper_presets_use_the_paper_settings():
    ar, ih = get_preset("h3-ar"), get_preset("attention-ih")
    assert (ar.task.vocab_size, ar.task.input_seq_len, ar.train.steps) == (10, 20, 31_400)
    assert (ar.optim.lr, ar.optim.weight_decay, ar.optim.schedule) == (5e-4, 0.1, "linear")
    model = ar.model
    assert (model.d_model, model.n_layer, model.mixer.d_state, model.d_inner) == (32, 2, 64, 128)
    assert (ih.task.vocab_size, ih.task.input_seq_len, ih.train.steps) == (20, 30, 62_800)
    assert (ih.optim.schedule, ih.optim.warmup_steps, ih.optim.lr_min) == ("cosine", 6280, 5e-5)
    assert isinstance(ih.model.mixer, mixers.AttentionConfig) and ih.model.max_position_embeddings == ih.task.seq_len


def test_train_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    config = get_preset("h3-ar")
    for section in ("task", "model", "optim", "train"):
        for field in vars(getattr(config, section)):
            assert f"--{section}.{field}" in out, f"{section}.{field} undocumented"
    for flag in ("--workdir", "--resume", "--progress", "--distributed"):
        assert flag in out


def test_overrides_are_parsed_against_field_types():
    config = apply_overrides(get_preset("h3-ar"), [
        "model.d_model=64", "optim.lr=1e-3", "optim.clip_norm=none", "model.attn_layer_idx=1",
        "train.data=stream", "task.input_seq_len=10", "model.d_inner=None",
    ])
    assert config.model.d_model == 64 and config.optim.lr == 1e-3
    assert config.optim.clip_norm is None and config.model.attn_layer_idx == (1,)
    assert config.train.data == "stream" and config.task.seq_len == 12
    assert config.model.d_inner is None


def test_attention_positions_follow_the_task_length():
    config = apply_overrides(get_preset("attention-ar"), ["task.input_seq_len=40"])
    assert config.model.max_position_embeddings == config.task.seq_len == 42


def test_split_overrides_accepts_both_spellings():
    assert split_overrides(["--model.d_model=64", "--optim.lr", "1e-3"]) == [
        "model.d_model=64", "optim.lr=1e-3"]


@pytest.mark.parametrize("argv, needle", [
    (["train", "no-such-preset"], "unknown preset 'no-such-preset'"),
    (["train", "--model.no_such_key=1"], "unknown key model.no_such_key"),
    (["train", "--nosection.x=1"], "unknown section 'nosection'"),
    (["train", "--model.d_model=abc"], "bad value for model.d_model"),
    (["train", "--train.data=disk"], "bad value for train.data"),
    (["train", "--model.d_model=30", "--model.mixer.head_dim=4"], "head_dim"),
    (["train", "--model.vocab_size=12"], "model.vocab_size=12 differs"),
    (["train", "--optim.warmup_steps=99999"], "optim.warmup_steps=99999"),
    (["train", "--train.log_every=7"], "not a multiple of train.steps_per_call"),
    (["train", "--train.batch_size=0"], "train.batch_size must be positive"),
    (["train", "--optim.weight_decay_ssm=-0.1"], "optim.weight_decay_ssm=-0.1 must be >= 0"),
    (["train", "--task.vocab_size=2"], "vocab_size"),
    (["train", "--bogus"], "unrecognized argument '--bogus'"),
    (["train", "--resume"], "--resume needs --workdir"),
    (["eval", "--workdir", "/nonexistent/run"], "no run in /nonexistent/run"),
    (["eval"], "--workdir"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_configuration_exits_2_with_one_readable_line(capsys, tmp_path, argv, needle):
    code, out, err = run_cli(capsys, *argv, *(["--workdir", str(tmp_path / "w")]
                                              if argv[0] == "train" and "--resume" not in argv
                                              else []))
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "w" / "config.json").exists()


def test_existing_run_needs_resume(capsys, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({}))
    code, _, err = run_cli(capsys, "train", "tiny-ar", "--workdir", str(tmp_path))
    assert code == 2 and "already holds a run" in err


def test_config_error_is_a_value_error():
    with pytest.raises(ConfigError):
        get_preset("nope")
