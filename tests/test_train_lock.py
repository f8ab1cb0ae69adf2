"""One run per work directory (a second one exits 2 naming the holder; a dead holder's lock is
taken over), a work directory that cannot be written, and optimizer settings refused up front."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from h3_jax.cli import main
from h3_jax.train.lock import LOCK, WorkdirBusy, workdir_lock

HOLD = """
import sys, time
from h3_jax.train.lock import workdir_lock
with workdir_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
    """A live process that holds tmp_path / "run" (killed with SIGKILL at the end)."""
    workdir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(workdir)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    yield workdir, process
    process.kill()
    process.wait()
    process.stdout.close()


def test_a_second_run_in_a_held_workdir_exits_2_naming_the_holder(holder, capsys):
    workdir, process = holder
    code = main(["train", "tiny-ar", "--workdir", str(workdir), "--progress=off"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"is in use by pid {process.pid} on host {socket.gethostname()}" in err
    assert not (workdir / "config.json").exists()  # nothing of the second run was written


def test_the_lock_of_a_killed_holder_is_taken_over(holder):
    workdir, process = holder
    with pytest.raises(WorkdirBusy, match=f"pid {process.pid}"):
        with workdir_lock(str(workdir)):
            pass
    process.send_signal(signal.SIGKILL)
    process.wait()
    with workdir_lock(str(workdir)):
        held = json.loads((workdir / LOCK).read_text())
        assert held["pid"] == os.getpid()
    with workdir_lock(str(workdir)):  # released on leaving, and taken again
        pass


def test_a_workdir_that_cannot_be_created_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    for workdir in ("/proc/h3-jax/run", str(blocker / "run")):
        assert main(["train", "tiny-ar", "--workdir", workdir, "--progress=off"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"h3-jax: error: workdir {workdir}: cannot create it")
        assert err.count("\n") == 1


@pytest.mark.parametrize("option, message", [
    ("--optim.lr=nan", "optim.lr=nan must be a finite number"),
    ("--optim.lr_ssm=inf", "optim.lr_ssm=inf must be a finite number"),
    ("--optim.weight_decay=-0.1", "optim.weight_decay=-0.1 must be >= 0"),
    ("--optim.b2=1", "optim.b2=1.0 must lie in [0, 1)"),
    ("--optim.eps=0", "optim.eps=0.0 must be positive"),
    ("--optim.clip_norm=nan", "optim.clip_norm=nan must be a finite number"),
    ("--optim.warmup_steps=501", "optim.warmup_steps=501 must lie in [0, train.steps=500]"),
])
def test_bad_optimizer_settings_exit_2_before_anything_runs(tmp_path, capsys, option, message):
    workdir = tmp_path / "run"
    start = time.perf_counter()
    assert main(["train", "tiny-ar", option, "--workdir", str(workdir)]) == 2
    assert capsys.readouterr().err == f"h3-jax: error: {message}\n"
    assert not workdir.exists() and time.perf_counter() - start < 30


TINY = ["--model.d_model=8", "--model.n_layer=1", "--model.mixer.d_state=4", "--model.d_inner=16",
        "--task.num_test_examples=8", "--train.eval_batch_size=8", "--optim.warmup_steps=2",
        "--train.steps=12", "--train.steps_per_call=2", "--train.log_every=2",
        "--train.checkpoint_every=4", "--train.eval_every=4", "--progress=off"]


def test_a_full_disk_stops_with_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys,
                                                                      monkeypatch):
    # The second checkpoint's write fails as tensorstore reports a full disk (a ValueError out of
    # orbax); the first one stays loadable, and the run resumes from it once there is room.
    import orbax.checkpoint as ocp

    original, calls = ocp.CheckpointManager.save, []

    def save(self, step, *args, **kwargs):
        calls.append(step)
        if len(calls) == 2:
            raise ValueError('RESOURCE_EXHAUSTED: Error writing local file "x": Failed to write '
                             "15738 bytes to file 6: No space left on device [os_error_code='28']")
        return original(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", save)
    workdir = tmp_path / "run"
    assert main(["train", "tiny-ar", "--workdir", str(workdir), *TINY]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "writing the checkpoint of step 8 (or the one before) failed: no space left on " \
           "device; stopped (last complete checkpoint: step 4 in" in err
    assert json.loads((workdir / "summary.json").read_text())["status"] == "failed"
    monkeypatch.setattr(ocp.CheckpointManager, "save", original)
    assert main(["eval", "--workdir", str(workdir)]) == 0
    assert "at step 4 (latest checkpoint)" in capsys.readouterr().out
    assert main(["train", "--workdir", str(workdir), "--resume", "--progress=off"]) == 0
    out = capsys.readouterr().out
    assert "resuming from step 4" in out and "at step 12" in out
