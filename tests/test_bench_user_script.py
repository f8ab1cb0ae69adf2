"""bench_user_script.py's report: the command that wrote it (with --name) and every way's
ratios, read back from the stored Xeon run."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "experiments"))

import bench_user_script  # noqa: E402

STORED = Path(__file__).parents[1] / "experiments" / "results" / "bench_user_script_xeon.json"


def test_report_names_its_command_and_ratios():
    result = json.loads(STORED.read_text())
    text = bench_user_script.markdown(result)
    assert "--official PATH --torch-python PY --name bench_user_script_xeon`" in text
    ways = result["ways"]
    own = ways["own step, nothing set"]["median"] / ways[bench_user_script.OFFICIAL]["median"]
    row = next(line for line in text.splitlines() if line.startswith("| own step, nothing set |"))
    assert row.endswith(f"| {own:.2f} |")
    default = dict(result, name=bench_user_script.DEFAULT_NAME)
    assert "--name" not in bench_user_script.markdown(default)
