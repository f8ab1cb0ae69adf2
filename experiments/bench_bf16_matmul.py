"""What bfloat16 buys the matmuls of a train step on this CPU, and what the casts cost.

    python experiments/bench_bf16_matmul.py [--scale 1] [--repeats 7] [--out experiments/results]
                                            [--name bench_bf16_matmul]

Times each product of the MQAR step at L = 128, d_model 128, batch 512 (the q/k/v projection
and the LM head on 8,192 labelled positions, forward and both backward products) three ways:
float32; bfloat16 operands cast from float32 inside the jitted function (what a layer with
float32 activations and bf16 matmuls runs); operands already bfloat16 (what bf16 activations
give). Both bf16 forms accumulate in float32. `--scale s` divides the row counts by s (tests).
Writes NAME.md and .json (a name per CPU keeps them side by side); medians of `--repeats`
calls after one warm-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from reports import cpu_line, write_markdown_and_json  # noqa: E402
from step_timing import repeat_seconds  # noqa: E402

from h3_jax.hugepages import restart_with_huge_pages  # noqa: E402
from h3_jax.train.workdir import environment  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DEFAULT_NAME = "bench_bf16_matmul"
D, V = 128, 8192


def products(scale: int = 1) -> list[tuple[str, int, int, int]]:
    """(name, M, K, N) of each product (M x K) @ (K x N); `scale` divides the token counts."""
    tokens, labelled = 512 * 128 // scale, 512 * 8 // scale
    return [
        ("q/k/v projection, forward", tokens, D, 3 * D),
        ("q/k/v projection, input gradient", tokens, 3 * D, D),
        ("q/k/v projection, weight gradient", D, tokens, 3 * D),
        ("LM head, forward", labelled, D, V),
        ("LM head, input gradient", labelled, V, D),
        ("LM head, weight gradient", D, labelled, V),
        ("square 4096", 4096 // scale, 4096 // scale, 4096 // scale),
    ]


WAYS = {
    "float32": lambda a, b: a @ b,
    "bf16_cast_inside": lambda a, b: jnp.matmul(
        a.astype(jnp.bfloat16), b.astype(jnp.bfloat16), preferred_element_type=jnp.float32),
    "bf16_operands": lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32),
}


def median_seconds(f, *args, repeats: int) -> float:
    return statistics.median(repeat_seconds(f, *args, repeats=repeats)[1])


def run(scale: int, repeats: int) -> list[dict]:
    rows = []
    key_a, key_b = jax.random.split(jax.random.PRNGKey(0))
    for name, m, k, n in products(scale):
        a, b = jax.random.normal(key_a, (m, k)), jax.random.normal(key_b, (k, n))
        shape = f"({m} x {k}) @ ({k} x {n})"
        row = {"product": name, "shape": shape, "gflop": 2 * m * k * n / 1e9}
        # The float64 product is the oracle; bf16 rounds each operand to 8 bits of mantissa,
        # ~2^-8 relative per product term, float32 to 24.
        reference = np.asarray(a, np.float64) @ np.asarray(b, np.float64)
        for way, f in WAYS.items():
            operands = (a, b) if way != "bf16_operands" else (a.astype(jnp.bfloat16),
                                                               b.astype(jnp.bfloat16))
            jitted = jax.jit(f)
            out = np.asarray(jitted(*operands), np.float64)
            row[way] = row["gflop"] / median_seconds(jitted, *operands, repeats=repeats)
            error = np.max(np.abs(out - reference)) / np.max(np.abs(reference))
            row[f"{way}_rel_err"] = float(error)
        rows.append(row)
    return rows


def _error_range(result: dict, way: str) -> str:
    errors = [row[f"{way}_rel_err"] for row in result["rows"]]
    return f"{min(errors):.1e} to {max(errors):.1e}"


def markdown(result: dict) -> list[str]:
    name = result.get("name", DEFAULT_NAME)
    name_flag = "" if name == DEFAULT_NAME else f" --name {name}"
    lines = [
        "# bfloat16 matmuls against float32, and the cost of casting to bf16",
        "",
        f"`python experiments/bench_bf16_matmul.py{name_flag}`; {result['cpu']}. GFLOP/s, "
        f"medians of {result['repeats']} calls. \"cast inside\": float32 operands cast to bf16 "
        "in the jitted function (XLA:CPU runs each cast as its own pass over memory); \"bf16 "
        "operands\": already bf16. Both accumulate in float32. Largest error over the largest "
        f"entry, against the float64 product: float32 {_error_range(result, 'float32')}, bf16 "
        f"{_error_range(result, 'bf16_cast_inside')}.",
        "",
        "| product | shape | float32 | bf16, cast inside | bf16 operands | cast inside / float32 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['product']} | {r['shape']} | {r['float32']:.0f} | "
                     f"{r['bf16_cast_inside']:.0f} | {r['bf16_operands']:.0f} | "
                     f"{r['bf16_cast_inside'] / r['float32']:.2f}x |")
    return lines


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--name", default=DEFAULT_NAME, help="report file stem")
    args = parser.parse_args(argv)
    env = environment()
    result = {"cpu": cpu_line(env["cpu"]), "environment": env, "repeats": args.repeats,
              "scale": args.scale, "name": args.name, "rows": run(args.scale, args.repeats)}
    os.makedirs(args.out, exist_ok=True)
    lines = markdown(result)
    write_markdown_and_json(os.path.join(args.out, args.name), lines, result)
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    restart_with_huge_pages()
    main()
