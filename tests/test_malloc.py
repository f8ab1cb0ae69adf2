"""`import h3_jax` tunes glibc's allocator (h3_jax/malloc.py) unless H3_JAX_MALLOC=0; where it
does not apply, nothing is set. The speed it buys is measured by
experiments/bench_user_script.py, not here."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from h3_jax import malloc

GLIBC = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"


def tuned_in_a_fresh_process(**env: str) -> bool:
    done = subprocess.run([sys.executable, "-c", "import h3_jax; print(h3_jax.MALLOC_TUNED)"],
                          env=os.environ | env, capture_output=True, text=True, timeout=60,
                          check=True)
    return done.stdout.strip() == "True"


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_import_tunes_the_allocator_unless_told_not_to():
    assert tuned_in_a_fresh_process()
    assert not tuned_in_a_fresh_process(H3_JAX_MALLOC="0")


def test_the_opt_out_and_other_platforms_set_nothing(monkeypatch):
    monkeypatch.setenv(malloc.OPT_OUT, "0")
    assert malloc.keep_freed_memory() is False
    monkeypatch.delenv(malloc.OPT_OUT)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert malloc.keep_freed_memory() is False
