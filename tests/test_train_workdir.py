"""The environment a run records: versions and the source commit."""

from __future__ import annotations

import os
import re

import h3_jax
from h3_jax.train import workdir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(h3_jax.__file__)))


def test_source_commit_names_the_checkout_or_nothing():
    commit = workdir.source_commit()
    if os.path.isdir(os.path.join(ROOT, ".git")):
        assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", commit)
    else:
        assert commit is None


def test_source_commit_is_none_outside_a_checkout(tmp_path, monkeypatch):
    package = tmp_path / "site" / "h3_jax"
    package.mkdir(parents=True)
    monkeypatch.setattr(h3_jax, "__file__", str(package / "__init__.py"))
    assert workdir.source_commit() is None


def test_environment_records_versions_and_commit():
    env = workdir.environment()
    assert env["versions"]["jax"] and "source_commit" in env and "glibc_tunables" in env
    assert env["cpu"]["name"] and env["cpu"]["cores"] >= 1


def test_cpu_reads_the_first_processor_block(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: Example CPU 9000\ncpu family\t: 25\nmodel\t\t: 17\n"
        "flags\t\t: fpu sse2 avx2 fma avx512f avx512bw\n\n"
        "processor\t: 1\nmodel name\t: Other\nflags\t\t: amx_tile\n"
    )
    found = workdir.cpu(str(info))
    assert found["name"] == "Example CPU 9000" and found["family_model"] == "25/17"
    assert found["vector_extensions"] == ["avx2", "fma", "avx512f"]


def test_cpu_without_cpuinfo_still_names_the_machine(tmp_path):
    found = workdir.cpu(str(tmp_path / "missing"))
    assert found["name"] and found["family_model"] == "?/?" and found["vector_extensions"] == []
