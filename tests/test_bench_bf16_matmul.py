"""The bf16 matmul benchmark runs end to end; each way's product stays within its rounding of
the float64 product."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "experiments"))

import bench_bf16_matmul  # noqa: E402


def test_bench_bf16_matmul_smoke_run(tmp_path):
    argv = ["--scale", "64", "--repeats", "1", "--out", str(tmp_path), "--name", "bf16"]
    result = bench_bf16_matmul.main(argv)
    saved = json.loads((tmp_path / "bf16.json").read_text())
    assert [r["product"] for r in saved["rows"]] == [p[0] for p in bench_bf16_matmul.products()]
    for row in result["rows"]:
        # Against the float64 product: float32 sums err ~1e-7 relative; bf16 operands, rounded
        # to 8 mantissa bits, ~1e-3 per term and ~1e-2 at worst for sums of N(0, 1) products.
        assert 0 < row["float32_rel_err"] < 1e-5
        bf16_err = row["bf16_cast_inside_rel_err"]
        assert 100 * row["float32_rel_err"] < bf16_err < 2e-2
        assert row["bf16_operands_rel_err"] == pytest.approx(bf16_err, rel=0.1)
        assert all(row[way] > 0 for way in bench_bf16_matmul.WAYS)
    report = (tmp_path / "bf16.md").read_text()
    assert "| LM head, forward | (64 x 128) @ (128 x 8192) |" in report
