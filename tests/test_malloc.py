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


def fresh_process(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=os.environ | env,
                          capture_output=True, text=True, timeout=60, check=True)


def tuned_in_a_fresh_process(**env: str) -> bool:
    done = fresh_process("import h3_jax; print(h3_jax.MALLOC_TUNED)", **env)
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


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_an_import_after_jax_started_sets_nothing_and_says_how_to_fix_it():
    imported_first = fresh_process("import jax; import h3_jax; print(h3_jax.MALLOC_TUNED)")
    assert imported_first.stdout.strip() == "True" and "RuntimeWarning" not in imported_first.stderr
    late = fresh_process("import jax.numpy as jnp; jnp.ones(2).block_until_ready(); "
                         "import h3_jax; print(h3_jax.MALLOC_TUNED)")
    assert late.stdout.strip() == "False"
    assert "import h3_jax before running anything in JAX" in late.stderr
    assert malloc.OPT_OUT in late.stderr
