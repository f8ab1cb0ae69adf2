"""restart_with_huge_pages re-executes the program once with the glibc tunable set."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from h3_jax.hugepages import OPT_OUT, TUNABLE

PROGRAM = (
    "import os, sys; from h3_jax.hugepages import restart_with_huge_pages; "
    "print('started', flush=True); restart_with_huge_pages(); "
    "print(os.environ.get('GLIBC_TUNABLES'), sys.argv[1:])"
)

glibc_only = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="needs Linux with glibc"
)


def run(**env) -> list[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", OPT_OUT)}
    done = subprocess.run([sys.executable, "-c", PROGRAM, "a", "--b=1"], env={**environ, **env},
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.splitlines()


@glibc_only
def test_restarts_once_with_the_tunable_and_the_same_arguments():
    assert run() == ["started", "started", f"{TUNABLE}=1 ['a', '--b=1']"]


@glibc_only
def test_keeps_other_tunables():
    out = run(GLIBC_TUNABLES="glibc.malloc.trim_threshold=1")
    assert out[-1] == f"glibc.malloc.trim_threshold=1:{TUNABLE}=1 ['a', '--b=1']"


def test_no_restart_when_set_or_turned_off():
    assert run(GLIBC_TUNABLES=f"{TUNABLE}=0") == ["started", f"{TUNABLE}=0 ['a', '--b=1']"]
    assert run(**{OPT_OUT: "0"}) == ["started", "None ['a', '--b=1']"]
