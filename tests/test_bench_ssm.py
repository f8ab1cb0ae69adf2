"""The SSM benchmark script runs end to end and writes its three outputs (timings are not tested)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "experiments"))

import bench_ssm  # noqa: E402


def test_bench_ssm_smoke_run(tmp_path):
    # --tokens 64 at L = 32: a batch of 2.
    results = bench_ssm.main(["--tokens", "64", "--channels", "4", "--modes", "4", "--chunk", "16",
                              "--repeats", "2", "--paths", "fft", "toeplitz", "sequential",
                              "--lengths", "32",
                              "--state-passing-length", "100", "--state-passing-chunk", "32",
                              "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "bench_ssm.json").read_text())
    assert {r["path"] for r in saved["rows"]} == {"fft", "toeplitz", "sequential"}
    assert all(r["max_rel_err"] < 1e-5 for r in results["rows"] if "max_rel_err" in r)
    assert saved["state_passing"]["max_rel_err"] < 1e-5
    assert (tmp_path / "bench_ssm.png").stat().st_size > 0
    table = (tmp_path / "bench_ssm.md").read_text()
    assert "| fft | forward | 32 |" in table and "B L = 64," in table
    assert "S6" not in table.splitlines()[0] and "chunk" not in table.splitlines()[0]


def test_bench_ssm_selective_paths(tmp_path):
    results = bench_ssm.main(["--batch", "2", "--channels", "4", "--selective-modes", "3",
                              "--chunk", "8", "--repeats", "1", "--lengths", "32",
                              "--paths", "s6_assoc_scan", "s6_chunked_scan", "s6_sequential",
                              "--out", str(tmp_path)])
    rows = {(r["path"], r["mode"]): r for r in results["rows"]}
    assert len(rows) == 6 and all("median_s" in r for r in rows.values())
    # float32 against the float64 recurrence over 32 steps.
    assert all(r["max_rel_err"] < 1e-5 for r in rows.values() if r["mode"] == "forward")
    assert results["state_passing"] is None and results["floor"] == {}
    table = (tmp_path / "bench_ssm.md").read_text()
    assert "| s6_chunked_scan | forward_backward | 32 |" in table
    assert "(S6: 3 real modes), chunk 8." in table.splitlines()[0]
