"""Time one H3 layer against one attention layer, recurrent generation, and LM training.

    python experiments/bench_layers.py            # the full run (B=8, D in {64, 256}, L 256..16384)
    python experiments/bench_layers.py --quick    # a small smoke run

1. Layers: forward and forward + backward (grad of a scalar w.r.t. params and input) of one H3
   mixer (d_state 64, head_dim 1) and one causal attention layer (heads of size 64) of the same
   width. Past 128 tokens attention runs in causal blocks (no L x L score matrix), so every
   length fits in memory; --max-attention-len skips the longest, slowest cases.
2. Generation: time per new token of a 2-layer LM (H3 recurrent step vs attention KV cache) with
   the context already at 1k, 4k, 16k tokens: n steps in one compiled lax.scan, batch 8.
3. Training: h3_jax's train step (AdamW) of the 2-layer H3 LM (d_model 64, d_inner 256, vocab
   30) at L = 1024, batch 32, in tokens/s, on the whole batch at once and in 4 micro-batches of
   8 rows, and of the tiny synthetic-task model (d_model 32, L 30, batch 32) in steps/s;
   compile time reported apart.

Every time is the median of --repeats calls after one warm-up call (compilation), or a single
call when the warm-up took more than 5 s. The machine's load average is recorded: on a shared
machine the times are upper bounds.
Writes bench_layers.json, bench_layers.md and bench_layers.png to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from h3_jax import tasks
from h3_jax.hugepages import restart_with_huge_pages
from h3_jax.mixers import AttentionConfig, H3Config, Shared, mixer_of
from h3_jax.models import LM, LMConfig
from h3_jax.train.step import init_train_state, make_train_step
from h3_jax.train.workdir import environment

RESULTS = Path(__file__).parent / "results"


def timed(fn, *args, repeats: int, slow_seconds: float = 5.0):
    """(compile + first call seconds, median seconds of the next calls); one repeat only when
    the first call already took more than slow_seconds."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    times = []
    for _ in range(1 if first > slow_seconds else repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def bench_layer(kind: str, D: int, L: int, B: int, repeats: int) -> dict:
    mixer = H3Config() if kind == "h3" else AttentionConfig(n_heads=max(1, D // 64))
    module = mixer_of(mixer)(mixer, Shared(d_model=D))
    x = jax.random.normal(jax.random.key(0), (B, L, D))
    params = jax.jit(module.init)(jax.random.key(1), x[:, :8])["params"]

    def forward(p, x):
        return module.apply({"params": p}, x)

    def loss(p, x):
        return jnp.mean(forward(p, x) ** 2)

    row = {"layer": kind, "d_model": D, "L": L, "batch": B}
    for name, fn in (("fwd", forward), ("fwd_bwd", jax.grad(loss, argnums=(0, 1)))):
        compile_s, run_s = timed(jax.jit(fn), params, x, repeats=repeats)
        row[f"{name}_ms"] = 1e3 * run_s
        row[f"{name}_compile_s"] = compile_s
    return row


def generation_runner(kind: str, context: int, B: int, D: int, steps: int):
    """(call, compile seconds): call() runs `steps` greedy steps of a 2-layer LM from a state
    whose position is `context`."""
    mixer = AttentionConfig(n_heads=max(1, D // 64)) if kind == "attention" else H3Config()
    config = LMConfig(vocab_size=30, d_model=D, n_layer=2, mixer=mixer)
    from h3_jax import generate as gen

    params = jax.jit(LM(config).init)(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"]
    state = gen.init_state(config, B, max_len=context + steps)
    # The cost of a step does not depend on the cached values, only on their number.
    state = jax.tree_util.tree_map(lambda a: a + 0.01 if a.ndim > 0 else a, state)
    state["position"] = jnp.asarray(context, jnp.int32)
    model = LM(config)

    @jax.jit
    def run(params, state, token):
        def one(carry, _):
            state, token = carry
            logits, state = model.apply({"params": params}, token, state, method="step")
            return (state, jnp.argmax(logits, -1).astype(jnp.int32)), None

        (state, token), _ = jax.lax.scan(one, (state, token), None, length=steps)
        return token

    def call():
        jax.block_until_ready(run(params, state, jnp.zeros((B,), jnp.int32)))

    start = time.perf_counter()
    call()
    return call, time.perf_counter() - start


def bench_generation(contexts, B: int, D: int, steps: int, rounds: int) -> list[dict]:
    """ms per new token of H3 (recurrent step) and attention (KV cache) at each context. Timed
    round-robin, every runner once per round, so a slow spell of a shared machine hits them
    alike; the median over rounds."""
    runners = {(kind, c): generation_runner(kind, c, B, D, steps)
               for c in contexts for kind in ("h3", "attention")}
    seconds = {key: [] for key in runners}
    for _ in range(rounds):
        for key, (call, _) in runners.items():
            start = time.perf_counter()
            call()
            seconds[key].append(time.perf_counter() - start)
    return [{"model": kind, "context": context, "batch": B, "d_model": D,
             "ms_per_token": 1e3 * statistics.median(seconds[kind, context]) / steps,
             "compile_s": compile_s, "rounds": rounds}
            for (kind, context), (_, compile_s) in runners.items()]


def bench_training(name: str, config: LMConfig, L: int, B: int, repeats: int,
                   micro_batches: int = 1) -> dict:
    """h3_jax's own train step (one AdamW step per call, dropout on, loss at every position),
    with the batch's gradient summed over `micro_batches` slices."""
    tokens = jax.random.randint(jax.random.key(0), (B, L + 1), 0, config.vocab_size)
    batch = tasks.Batch(tokens[:, :-1], tokens[:, 1:], jnp.ones((B, L), bool))
    batches = jax.tree.map(lambda a: a[None], batch)  # one step per call
    model = LM(config)
    tx = optax.adamw(5e-4, weight_decay=0.1)
    train_step = make_train_step(model, tx, lambda step: 5e-4, micro_batches=micro_batches)
    state = init_train_state(model, tx, seed=1, seq_len=8)
    start = time.perf_counter()
    state = jax.block_until_ready(train_step(state, batches))[0]
    compile_s = time.perf_counter() - start
    n_steps = max(3, repeats)
    start = time.perf_counter()
    for _ in range(n_steps):
        state, _ = train_step(state, batches)
    jax.block_until_ready(state)
    step_s = (time.perf_counter() - start) / n_steps
    return {"model": name, "L": L, "batch": B, "micro_batches": micro_batches,
            "d_model": config.d_model, "compile_s": compile_s, "step_ms": 1e3 * step_s,
            "tokens_per_s": B * L / step_s, "steps_per_s": 1 / step_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-attention-len", type=int, default=16384,
                        help="skip attention layers longer than this")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    B = 2 if args.quick else 8
    widths = (64,) if args.quick else (64, 256)
    lengths = (256, 512) if args.quick else (256, 1024, 4096, 16384)
    contexts = (64, 128) if args.quick else (1024, 4096, 16384)
    repeats = 2 if args.quick else args.repeats

    layers = []
    for D in widths:
        for L in lengths:
            for kind in ("h3", "attention"):
                if kind == "attention" and L > args.max_attention_len:
                    layers.append({"layer": kind, "d_model": D, "L": L, "batch": B,
                                   "skipped": f"L > --max-attention-len={args.max_attention_len}"})
                else:
                    layers.append(bench_layer(kind, D, L, B, repeats))
                print(_fmt(layers[-1]), flush=True)

    generation = bench_generation(contexts, 8, 64 if args.quick else 256,
                                  steps=8 if args.quick else 64, rounds=max(repeats, 9))
    for row in generation:
        print(_fmt(row), flush=True)

    training = []
    lm = LMConfig(vocab_size=30, d_model=64, n_layer=2, d_inner=256)
    tiny = LMConfig(vocab_size=20, d_model=32, n_layer=2, d_inner=128)
    lm_len, lm_batch = (128, 4) if args.quick else (1024, 32)
    for name, config, L, batch, micro in (("h3_lm_d64", lm, lm_len, lm_batch, 1),
                                          ("h3_lm_d64", lm, lm_len, lm_batch, 4),
                                          ("h3_tiny_d32", tiny, 30, 32, 1)):
        training.append(bench_training(name, config, L, batch, 3 if args.quick else 20, micro))
        print(_fmt(training[-1]), flush=True)

    result = {
        "environment": environment() | {"machine": platform.machine(),
                                        "load_avg_1m": os.getloadavg()[0], "quick": args.quick},
        "layers": layers, "generation": generation, "training": training,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "bench_layers_quick" if args.quick else "bench_layers"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    (args.out / f"{stem}.md").write_text(markdown(result))
    plot(result, args.out / f"{stem}.png")
    print(markdown(result))


def _fmt(row: dict) -> str:
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def markdown(result: dict) -> str:
    env = result["environment"]
    cpu = env["cpu"]
    lines = [f"# bench_layers ({env['backend']}, {cpu['name']} {cpu['cores']} cores, "
             f"jax {env['versions']['jax']}, "
             f"1-min load average at the end {env['load_avg_1m']:.1f}, "
             f"GLIBC_TUNABLES={env.get('glibc_tunables')})", "",
             "## One layer, batch %d (ms, median)" % result["layers"][0]["batch"], "",
             "| d_model | L | H3 fwd | H3 fwd+bwd | attention fwd | attention fwd+bwd |",
             "|---|---|---|---|---|---|"]
    cells = {(r["layer"], r["d_model"], r["L"]): r for r in result["layers"]}
    for D, L in sorted({(r["d_model"], r["L"]) for r in result["layers"]}):
        h3, att = cells[("h3", D, L)], cells[("attention", D, L)]
        a = ("skipped", "skipped") if "skipped" in att else (f"{att['fwd_ms']:.1f}", f"{att['fwd_bwd_ms']:.1f}")
        lines.append(f"| {D} | {L} | {h3['fwd_ms']:.1f} | {h3['fwd_bwd_ms']:.1f} | {a[0]} | {a[1]} |")
    lines += ["", "## Generation: ms per new token (2-layer LM, batch 8)", "",
              "| context | H3 (recurrent step) | attention (KV cache) | attention / H3 |", "|---|---|---|---|"]
    gen = {(r["model"], r["context"]): r["ms_per_token"] for r in result["generation"]}
    for context in sorted({r["context"] for r in result["generation"]}):
        h3, att = gen[("h3", context)], gen[("attention", context)]
        lines.append(f"| {context} | {h3:.3f} | {att:.3f} | {att / h3:.1f}x |")
    lines += ["", "## Training (AdamW, dropout on; the gradient of each batch summed over its "
              "micro-batches, one after another)", "",
              "| model | L | batch | micro-batches | compile s | ms/step | tokens/s | steps/s |",
              "|---|---|---|---|---|---|---|---|"]
    for r in result["training"]:
        lines.append(f"| {r['model']} | {r['L']} | {r['batch']} | {r.get('micro_batches', 1)} "
                     f"| {r['compile_s']:.1f} | {r['step_ms']:.1f} | {r['tokens_per_s']:,.0f} "
                     f"| {r['steps_per_s']:.1f} |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_layer, ax_gen) = plt.subplots(1, 2, figsize=(11, 4))
    for D in sorted({r["d_model"] for r in result["layers"]}):
        for kind, style in (("h3", "-o"), ("attention", "--s")):
            rows = [r for r in result["layers"] if r["layer"] == kind and r["d_model"] == D and "skipped" not in r]
            ax_layer.plot([r["L"] for r in rows], [r["fwd_bwd_ms"] for r in rows], style, label=f"{kind} D={D}")
    ax_layer.set(xscale="log", yscale="log", xlabel="sequence length L", ylabel="fwd+bwd ms",
                 title="one layer, forward + backward")
    ax_layer.legend()
    for kind, style in (("h3", "-o"), ("attention", "--s")):
        rows = [r for r in result["generation"] if r["model"] == kind]
        ax_gen.plot([r["context"] for r in rows], [r["ms_per_token"] for r in rows], style, label=kind)
    ax_gen.set(xscale="log", yscale="log", xlabel="context length", ylabel="ms per new token",
               title="generation, 2-layer LM")
    ax_gen.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    restart_with_huge_pages()
    main()
