"""`h3-jax convert`: writes a checkpoint that `load` restores exactly; clear failures."""

import argparse
import json

import jax
import numpy as np
import pytest

from h3_jax import convert, generate
from h3_jax.convert.cli import add_convert_subcommand, main
from official_state_dict import official_state_dict


def write_official(tmp_path, **sizes):
    sd = official_state_dict(0, **sizes)
    path = tmp_path / "model.npz"
    convert.write_state_dict(path, sd)
    return sd, path


def test_convert_then_load_gives_the_same_model(tmp_path, capsys):
    sd, path = write_official(tmp_path, n_layer=3, attn_layer_idx=(2,))
    outdir = tmp_path / "converted"
    assert main([str(path), str(outdir), "--attn-heads", "2"]) == 0
    assert "attention at [2]" in capsys.readouterr().out
    config, params = convert.load(outdir)
    expected_config, expected_params = convert.from_official(sd, n_heads=2)
    assert config == expected_config
    assert jax.tree.structure(params) == jax.tree.structure(expected_params)
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(expected_params)):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    saved = json.loads((outdir / "config.json").read_text())
    assert saved["format"] == "h3-jax-lm" and saved["config"]["attn_layer_idx"] == [2]
    # Ready for generation as loaded.
    prompt = jax.numpy.zeros((1, 3), jax.numpy.int32)
    tokens = generate.generate(config, params, prompt, max_new_tokens=2, key=jax.random.key(0))
    assert tokens.shape == (1, 2)


def test_failures_exit_2_with_the_reason(tmp_path, capsys):
    _, path = write_official(tmp_path, n_layer=2, attn_layer_idx=(1,))
    assert main([str(path), str(tmp_path / "out")]) == 2  # heads unknown
    assert "pass n_heads (--attn-heads)" in capsys.readouterr().err
    assert main([str(path), str(tmp_path / "out"), "--attn-heads", "2"]) == 0
    assert main([str(path), str(tmp_path / "out"), "--attn-heads", "2"]) == 2  # no overwrite
    assert "already holds" in capsys.readouterr().err
    assert main([str(tmp_path / "absent.npz"), str(tmp_path / "x")]) == 2
    assert main(["--attn-heads"]) == 2  # argparse usage error


def test_load_refuses_a_directory_without_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        convert.load(tmp_path)


def test_subcommand_hooks_into_a_main_parser(tmp_path):
    parser = argparse.ArgumentParser(prog="h3-jax")
    add_convert_subcommand(parser.add_subparsers(dest="command"))
    _, path = write_official(tmp_path, n_layer=2)
    args = parser.parse_args(["convert", str(path), str(tmp_path / "out")])
    assert args.command == "convert" and args.run(args) == 0
    bad = parser.parse_args(["convert", str(tmp_path / "absent.npz"), str(tmp_path / "x")])
    assert bad.run(bad) == 2
    config, _ = convert.load(tmp_path / "out")
    assert config.n_layer == 2 and config.attn_layer_idx == ()


def test_main_command_dispatches_convert(tmp_path, capsys):
    from h3_jax import cli

    _, path = write_official(tmp_path, n_layer=2)
    assert cli.main(["convert", str(path), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "config.json").exists()
    assert cli.main(["convert", str(tmp_path / "missing.npz"), str(tmp_path / "out2")]) == 2
    assert "no such file" in capsys.readouterr().err
