"""Shared test helpers: random SSMs, a float64 switch, the jit / no-jit variants, and a runner
for the scripts under experiments/."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from h3_jax import ssm


def _share_the_cores_among_workers() -> None:
    """Give each pytest-xdist worker its own share of the cores (and its subprocesses, which
    inherit it), before XLA starts its threads. Unpinned, every worker's XLA splits each op
    over all cores that the other workers keep busy; with `-n 2` on 2 cores, pinning ran a
    quarter of the suite 9-15% faster in three paired runs."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get(
        "PYTEST_XDIST_WORKER_COUNT")
    if not (worker and count and hasattr(os, "sched_setaffinity")):
        return
    cores, index, count = sorted(os.sched_getaffinity(0)), int(worker[2:]), int(count)
    share = cores[index::count] if count <= len(cores) else [cores[index % len(cores)]]
    os.sched_setaffinity(0, set(share))


_share_the_cores_among_workers()


def random_ssm(seed: int, H: int, N: int, *, method: str = "bilinear", A_init: str = "lin"):
    """(dA, dB, C) of an S4D-initialised SSM with a perturbed B, in complex64."""
    key_init, key_b = jax.random.split(jax.random.key(seed))
    p = ssm.init_diag_ssm(key_init, H, N, A_init=A_init)
    B = p["B"] + 0.5 * jax.random.normal(key_b, (H, N), jnp.complex64)
    dA, dB = ssm.discretize(p["A"], B, jnp.exp(p["log_dt"]), method)
    return dA, dB, p["C"]


def random_input(seed: int, shape) -> jax.Array:
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def to64(*arrays):
    """Copies of the arrays in float64 / complex128 (call inside `jax.enable_x64(True)`)."""
    out = []
    for a in arrays:
        a = np.asarray(a)
        out.append(jnp.asarray(a, np.complex128 if np.iscomplexobj(a) else np.float64))
    return out


def assert_close(actual, expected, *, rtol: float, atol: float, err_msg: str = ""):
    np.testing.assert_allclose(
        np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol, err_msg=err_msg
    )


@pytest.fixture(params=[False, True], ids=["eager", "jit"])
def maybe_jit(request):
    """maybe_jit(fn, *static_argnames): fn itself, or fn under jax.jit."""

    def wrap(fn, *static_argnames):
        return jax.jit(fn, static_argnames=static_argnames) if request.param else fn

    return wrap


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def run_script(tmp_path_factory):
    """run_script(name, *args, timeout=300): `python experiments/<name>.py args` in a subprocess.

    The processes share one persistent compilation cache, so a second run of the same script
    (the "skips finished work" checks) does not pay for compiling again."""
    env = os.environ | {"JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax-cache"))}

    def run(name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        script = os.path.join(ROOT, "experiments", f"{name}.py")
        return subprocess.run([sys.executable, script, *args], env=env, capture_output=True,
                              text=True, timeout=timeout)

    return run
