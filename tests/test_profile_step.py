"""experiments/profile_step.py reads FLOPs and op kinds from compiled HLO correctly."""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "experiments"))
import profile_step  # noqa: E402


def compiled_ops(f, *args):
    text = jax.jit(f).lower(*args).compile().as_text()
    ops = profile_step.parse_hlo(text)
    profile_step.mark_computations(text, ops)
    return ops


def test_matmul_flops_and_kind():
    x, w = jnp.ones((96, 40)), jnp.ones((40, 24))
    ops = compiled_ops(lambda x, w: jnp.tanh(x @ w), x, w)
    matmuls = [n for n, e in ops.items() if e["entry"] and profile_step.kind(e, n) == "matmul"]
    assert matmuls
    assert sum(profile_step.dot_flops(ops, n) for n in matmuls) == 2 * 96 * 40 * 24


def test_fft_flops_and_kind():
    x = jnp.ones((6, 256))
    ops = compiled_ops(lambda x: jnp.fft.rfft(x, n=512), x)
    ffts = [e for n, e in ops.items() if e["entry"] and profile_step.kind(e, n) == "fft"]
    assert len(ffts) == 1
    assert profile_step.fft_op_flops(ffts[0]) == profile_step.fft_flops(512, 6)


def test_set_with_the_lm_workload_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["profile_step.py", "--set", "model.d_model=64"])
    with pytest.raises(SystemExit) as stop:
        profile_step.main()
    assert stop.value.code == 2
    assert "--set applies to --workload mqar only" in capsys.readouterr().err


@pytest.mark.parametrize("workload, restarts", [("mqar", 1), ("lm", 0)])
def test_only_the_cli_workload_restarts_with_huge_pages(monkeypatch, workload, restarts):
    calls = []

    class Stop(Exception):
        pass

    def profile(*args):
        raise Stop

    monkeypatch.setattr(profile_step, "restart_with_huge_pages", lambda: calls.append(1))
    monkeypatch.setattr(profile_step, "profile", profile)
    monkeypatch.setattr(sys, "argv", ["profile_step.py", "--workload", workload])
    with pytest.raises(Stop):
        profile_step.main()
    assert len(calls) == restarts
