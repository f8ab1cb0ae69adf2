"""The bf16 matmul benchmark runs end to end; its bf16 products stay within bf16's rounding."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "experiments"))

import bench_bf16_matmul  # noqa: E402


def test_bench_bf16_matmul_smoke_run(tmp_path):
    result = bench_bf16_matmul.main(["--scale", "64", "--repeats", "1", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "bench_bf16_matmul.json").read_text())
    assert [r["product"] for r in saved["rows"]] == [p[0] for p in bench_bf16_matmul.products()]
    for row in result["rows"]:
        assert row["float32_rel_err"] == 0.0
        # Operands rounded to 8 mantissa bits: products of N(0, 1) sums err ~1e-2 at worst.
        assert 0 < row["bf16_cast_inside_rel_err"] < 2e-2
        assert row["bf16_operands_rel_err"] == pytest.approx(row["bf16_cast_inside_rel_err"], rel=0.1)
        assert all(row[way] > 0 for way in bench_bf16_matmul.WAYS)
    assert "| LM head, forward | (64 x 128) @ (128 x 8192) |" in (tmp_path / "bench_bf16_matmul.md").read_text()
