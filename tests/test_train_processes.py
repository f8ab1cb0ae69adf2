"""Two real processes on this machine (coordinator on 127.0.0.1, gloo collectives, one CPU
device each) train as one run: the loss curve of one process with two fake devices, files
written once, checkpoints written together, and a resume after both are killed with kill -9.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from h3_jax.cli import main
from h3_jax.launch import free_port

# Small enough that the three launches (compiles included) take well under a minute.
RUN_ARGS = [
    "tiny-ar", "--progress=off",
    "--model.d_model=8", "--model.n_layer=1", "--model.mixer.d_state=4", "--model.d_inner=16",
    "--model.embed_dropout=0.1",  # the dropout RNG must agree across processes and the restart
    "--task.num_examples=200", "--task.num_test_examples=40",
    "--train.data=fixed", "--train.batch_size=8", "--train.steps=60",
    "--train.steps_per_call=2", "--train.log_every=10", "--train.eval_every=30",
    "--train.checkpoint_every=10", "--train.keep_checkpoints=2",
    "--optim.warmup_steps=20",
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("jax-cache")
    return {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PLATFORMS": "cpu",
        "H3_JAX_HUGE_PAGES": "0",  # one process start each, not two
    }


def h3_jax(*args) -> list[str]:
    return [sys.executable, "-m", "h3_jax.cli", *args]


def records(workdir, kind):
    with open(workdir / "metrics.jsonl") as f:
        return [r for r in map(json.loads, f) if r["kind"] == kind]


def checkpoint_steps(workdir) -> list[int]:
    ckpts = workdir / "checkpoints"
    return sorted(int(p.name) for p in ckpts.glob("*") if p.name.isdigit()) \
        if ckpts.exists() else []


@pytest.fixture(scope="module")
def one_process_two_devices(tmp_path_factory, env):
    workdir = tmp_path_factory.mktemp("run") / "one"
    two = env | {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run(h3_jax("train", *RUN_ARGS, "--workdir", str(workdir)), env=two,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return workdir


def test_two_processes_train_as_one_and_resume_after_kill_9(tmp_path, env,
                                                            one_process_two_devices):
    workdir = tmp_path / "two"
    port = free_port()
    # The two commands a user types, one per process (here: per terminal).
    procs = [subprocess.Popen(
        h3_jax("train", *RUN_ARGS, "--workdir", str(workdir), "--coordinator",
               f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    deadline = time.time() + 120
    while time.time() < deadline and all(p.poll() is None for p in procs):
        if any(s >= 20 for s in checkpoint_steps(workdir)):
            break
        time.sleep(0.01)
    for p in procs:
        p.send_signal(signal.SIGKILL)
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [-signal.SIGKILL] * 2, outs
    killed_at = max(checkpoint_steps(workdir))
    assert 20 <= killed_at < 60, "the run ended before it could be killed"
    # Only process 0 printed; config.json names both processes.
    assert "tiny-ar: 60 steps" in outs[0][0] and "tiny-ar" not in outs[1][0]
    config = json.loads((workdir / "config.json").read_text())
    assert config["environment"]["process_count"] == 2
    assert config["environment"]["device_count"] == 2

    # Both resume from the latest complete checkpoint, this time through the launcher.
    done = subprocess.run(h3_jax("launch", "-n", "2", "train", "--workdir", str(workdir),
                                 "--resume"), env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("resuming from step") == 1  # process 0 speaks for the run
    resumed_at = int(done.stdout.split("resuming from step ")[1].split()[0])
    assert 20 <= resumed_at <= killed_at

    # Written once: one record per logged step (none doubled by the second process).
    one, two = (records(w, "train") for w in (one_process_two_devices, workdir))
    assert [r["step"] for r in two] == [r["step"] for r in one] == list(range(10, 61, 10))
    # gloo's all-reduce against XLA's in-process one: only the summation order may differ.
    # Stated tolerances over 60 steps: loss 1e-5 relative, grad norm 1e-4 relative,
    # accuracy 0.01 absolute (argmax ties).
    for key, rtol, atol in (("loss", 1e-5, 0.0), ("grad_norm", 1e-4, 0.0), ("accuracy", 0, 1e-2)):
        np.testing.assert_allclose([r[key] for r in two], [r[key] for r in one],
                                   rtol=rtol, atol=atol, err_msg=key)
    evals = [records(w, "eval") for w in (one_process_two_devices, workdir)]
    np.testing.assert_allclose([r["test_loss"] for r in evals[1]],
                               [r["test_loss"] for r in evals[0]], rtol=1e-5)
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["final_step"] == 60


def test_launch_refuses_a_command_it_cannot_run(capsys):
    for args, message in ((["launch", "-n", "2"], "give the command to run"),
                          (["launch", "-n", "0", "train"], "-n must be at least 1"),
                          (["launch", "presets"], "give the command to run")):
        assert main(args) == 2
        assert message in capsys.readouterr().err, args


def test_half_the_multi_process_options_is_refused(capsys, tmp_path):
    assert main(["train", "tiny-ar", "--workdir", str(tmp_path), "--coordinator",
                 "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "--coordinator, --num-processes and --process-id go together" in err
