"""Sequence parallelism on S fake CPU devices: memory per device, communication, equality.

    python experiments/bench_seq_parallel.py                  # H3 LM, L = 2^14 .. 2^17, S = 4
    python experiments/bench_seq_parallel.py --lengths 2048 --models h3,s4d --out /tmp/sp

For every model and length L it compiles the work of a train step (the LM's loss and its
gradients for one batch) twice: on one device, and with L split over S devices (mesh data 1 x
seq S, as `train.seq_shards=S` sets up). From the compiled programs it reads XLA's buffers per device
(`memory_analysis`: temporaries, arguments, outputs) and counts the bytes the sharded program's
collectives produce per device and step (all-gather, collective-permute, reduce-scatter,
all-reduce, all-to-all, from its HLO). Up to each model's --run-up-to length it then runs both
and compares the logits and the gradients (max |difference| over max |reference|, per
parameter). The fake devices share one CPU, so no timing says anything about speed; none is
reported.

Writes bench_seq_parallel.json, .md and .png to --out (default experiments/results/).
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # before jax is imported: the fake devices
    shards = next((a.split("=")[1] for a in sys.argv if a.startswith("--shards=")), "4")
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_force_host_platform_device_count={shards}")

import argparse  # noqa: E402
import functools  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from reports import cpu_line, pyplot, save_figure, write_markdown_and_json  # noqa: E402

from h3_jax import mixers  # noqa: E402
from h3_jax.models import LM, LMConfig  # noqa: E402
from h3_jax.train.sharding import make_mesh, with_mesh  # noqa: E402
from h3_jax.train.workdir import environment  # noqa: E402

RESULTS = Path(__file__).parent / "results"
VOCAB = 16
COLLECTIVES = ("all-gather", "collective-permute", "reduce-scatter", "all-reduce", "all-to-all")
BYTES = {"f32": 4, "c64": 8, "s32": 4, "u32": 4, "bf16": 2, "f16": 2, "pred": 1, "s8": 1,
         "u8": 1, "f64": 8, "c128": 16, "s64": 8, "u64": 8}


def model_config(name: str) -> LMConfig:
    """2-layer LMs of width 64; "h3+attention" has attention as its second layer; "h3-scan"
    and "h3-s6" run H3's inner SSM (S4D, S6) by the associative scan."""
    base = dict(vocab_size=VOCAB, d_model=64, n_layer=2, embed_dropout=0.0)
    return {
        "h3": LMConfig(**base, mixer=mixers.H3Config(d_state=64)),
        "h3-heads": LMConfig(**base, mixer=mixers.H3Config(d_state=16, head_dim=4)),
        "h3-scan": LMConfig(**base, mixer=mixers.H3Config(d_state=16, algorithm="scan")),
        "h3-s6": LMConfig(**base, mixer=mixers.H3Config(d_state=16, inner_ssm="s6",
                                                        algorithm="scan")),
        "s4d": LMConfig(**base, mixer="s4d"),
        "gss": LMConfig(**base, mixer="gss"),
        "h3+attention": LMConfig(**base, mixer=mixers.H3Config(d_state=64),
                                 attn_layer_idx=(1,)),
    }[name]


def collective_bytes(hlo: str) -> dict[str, int]:
    """Bytes of the results of each kind of collective in a compiled (per-device) program."""
    out = {}
    for op in COLLECTIVES:
        total = 0
        for result in re.findall(rf"= (\(?[^=]*?\)?) {op}(?:-start)?\(", hlo):
            for dtype, dims in re.findall(r"([a-z]+[0-9]*)\[([0-9,]*)\]", result):
                total += BYTES.get(dtype, 4) * int(np.prod([int(d) for d in dims.split(",")
                                                            if d] or [1]))
        out[op] = total
    return out


def loss_and_grads_fn(model):
    """(params, tokens (B, L)) -> ((loss, logits), gradients): the work of a train step."""
    def loss(params, tokens):
        logits = model.apply({"params": params}, tokens)
        targets = jax.nn.one_hot(jnp.roll(tokens, -1, axis=-1), VOCAB)
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * targets, axis=-1)), logits

    return jax.jit(jax.value_and_grad(loss, has_aux=True))


def compiled_for(fn, params, tokens: np.ndarray, mesh):
    """`fn` compiled for one device (mesh None) or with the length split over `mesh`."""
    if mesh is None:
        return fn.lower(params, tokens).compile()
    sharding = NamedSharding(mesh, P("data", "seq"))
    abstract = jax.ShapeDtypeStruct(tokens.shape, tokens.dtype, sharding=sharding)
    return with_mesh(mesh, fn.lower)(params, abstract).compile()


def memory(compiled) -> dict[str, int]:
    m = compiled.memory_analysis()
    return {"temp": m.temp_size_in_bytes, "arguments": m.argument_size_in_bytes,
            "outputs": m.output_size_in_bytes}


def relative_error(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


@functools.cache
def initial_params(name: str) -> dict:
    """The model's parameters, the same at every length (compiled: eager init takes seconds)."""
    model = LM(model_config(name))
    return jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 64), jnp.int32))["params"]


def measure(name: str, L: int, S: int, run: bool) -> dict:
    model = LM(model_config(name))
    params = initial_params(name)
    tokens = np.random.default_rng(0).integers(0, VOCAB, (1, L), dtype=np.int32)
    mesh = make_mesh(S)
    fn = loss_and_grads_fn(model)
    one, many = compiled_for(fn, params, tokens, None), compiled_for(fn, params, tokens, mesh)
    row = {"model": name, "L": L, "shards": S, "one_device": memory(one),
           "per_device": memory(many), "collective_bytes": collective_bytes(many.as_text())}
    row["temp_ratio"] = row["per_device"]["temp"] / row["one_device"]["temp"]
    if run:
        (_, logits_1), grads_1 = one(params, tokens)
        sharded = jax.device_put(tokens, NamedSharding(mesh, P("data", "seq")))
        (_, logits_s), grads_s = many(params, sharded)
        row["logits_error"] = relative_error(logits_s, logits_1)
        row["grad_error"] = max(jax.tree.leaves(jax.tree.map(relative_error, grads_s, grads_1)))
    return row


def markdown(result: dict) -> str:
    S = result["shards"]
    lines = [
        f"# Sequence parallelism: the length split over {S} devices",
        "",
        f"`python experiments/bench_seq_parallel.py`; {result['cpu']}, {S} fake CPU devices "
        "(one process). 2-layer LMs of width 64, vocabulary 16, batch 1; the program is the "
        "next-token loss and its gradients. Memory is XLA's buffer assignment per device "
        "(`compiled.memory_analysis()`); communication is the size of the collectives' "
        "results per device and step, from the compiled program. Errors: max |sharded - "
        "one device| / max |one device| of the logits and of every parameter's gradient "
        "(the worst is shown).",
        "",
        "| model | L | temp, 1 device (MiB) | temp per device (MiB) | ratio | collectives per "
        "device (KiB) | logits error | gradient error |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        err = lambda k: f"{r[k]:.1e}" if k in r else "-"  # noqa: E731
        lines.append(
            f"| {r['model']} | {r['L']:,} | {r['one_device']['temp'] / 2**20:,.0f} | "
            f"{r['per_device']['temp'] / 2**20:,.0f} | {r['temp_ratio']:.2f} | "
            f"{sum(r['collective_bytes'].values()) / 2**10:,.0f} | {err('logits_error')} | "
            f"{err('grad_error')} |")
    lines += ["", "Collectives per device and step, by kind (KiB):", "",
              "| model | L | " + " | ".join(COLLECTIVES) + " |",
              "|---|---:|" + "---:|" * len(COLLECTIVES)]
    for r in result["rows"]:
        lines.append(f"| {r['model']} | {r['L']:,} | " + " | ".join(
            f"{r['collective_bytes'][op] / 2**10:,.1f}" for op in COLLECTIVES) + " |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    curves = [[r for r in result["rows"] if r["model"] == name]
              for name in dict.fromkeys(r["model"] for r in result["rows"])]
    curves = [rows for rows in curves if len(rows) > 1]
    if not curves:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for rows in curves:
        name = rows[0]["model"]
        Ls = [r["L"] for r in rows]
        ax.plot(Ls, [r["one_device"]["temp"] / 2**20 for r in rows], "o-",
                label=f"{name}, 1 device")
        ax.plot(Ls, [r["per_device"]["temp"] / 2**20 for r in rows], "s--",
                label=f"{name}, per device of {result['shards']}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sorted({r["L"] for r in result["rows"]}))
    ax.set_xticklabels([f"$2^{{{int(np.log2(L))}}}$" for L in ax.get_xticks()])
    ax.minorticks_off()
    ax.set_xlabel("sequence length L")
    ax.set_ylabel("XLA temporaries of loss + gradients (MiB)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="h3,h3-heads,s4d,gss,h3+attention")
    parser.add_argument("--lengths", default="16384,32768,65536,131072",
                        help="for the first model; the others run at the smallest")
    parser.add_argument("--shards", default="4", help="S, the fake devices (--shards=S)")
    parser.add_argument("--run-up-to", type=int, default=131072,
                        help="compare logits and gradients up to this length "
                             "(attention models: up to 4096)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    S, names = int(args.shards), args.models.split(",")
    lengths = sorted(int(x) for x in args.lengths.split(","))
    rows = []
    for i, name in enumerate(names):
        for L in lengths if i == 0 else lengths[:1]:
            limit = min(args.run_up_to, 4096) if "attention" in name else args.run_up_to
            row = measure(name, L, S, run=L <= limit)
            rows.append(row)
            print(f"{name} L={L}: temp {row['one_device']['temp'] / 2**20:.0f} MiB on 1 device,"
                  f" {row['per_device']['temp'] / 2**20:.0f} MiB per device of {S}; "
                  f"errors {row.get('logits_error', '-')} {row.get('grad_error', '-')}",
                  flush=True)
    env = environment()
    result = {"shards": S, "rows": rows, "cpu": cpu_line(env["cpu"]), "environment": env}
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, "bench_seq_parallel")
    write_markdown_and_json(stem, markdown(result).splitlines(), result)
    plot(result, Path(stem + ".png"))
    print(f"wrote {stem}.md, .json, .png")


if __name__ == "__main__":
    main()
