"""A researcher's own train step against the library's, each in fresh processes.

    python experiments/bench_user_script.py            # 3 rounds of every way
    python experiments/bench_user_script.py --rounds 1
    python experiments/bench_user_script.py --official PATH --torch-python PY  # + official H3

The model is the 2-layer H3 LM (d_model 64, d_inner 256, vocabulary 30) at L = 1024, batch
32, AdamW. The ways, each a new Python process, run in turns so that a busy machine slows all
of them alike:
- "own step, glibc defaults": a hand-written `jax.jit` step around `h3_jax.models.LM` with
  `H3_JAX_MALLOC=0`, i.e. the C library's allocator as it comes;
- "own step, nothing set": the same script as a user runs it (`import h3_jax` tunes the
  allocator; see h3_jax/malloc.py);
- "own step, h3_jax imported after JAX's first computation": the same, with one JAX
  computation before the import, so the allocator stays as it comes and the import warns;
- "own step, params and optimizer state donated": the same with `donate_argnums=(0, 1)`, so
  XLA writes the new parameters and optimizer state into the old ones' buffers;
- "as the CLI": `h3_jax.train.make_train_step` in the environment `h3-jax train` runs in
  (2 MiB pages as well, see h3_jax/hugepages.py);
- with `--official PATH --torch-python PY`, also "official PyTorch H3": the same LM around the
  official H3 layer at its defaults, 2 threads (official_h3_torch.py, run by PY, a Python
  with torch).
Each process reports the median of 5 timed rounds of 5 steps after a compiling call. Writes
NAME.json, .md and .png to --out (`--name`, default bench_user_script: a name per CPU keeps
them side by side).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from reports import cpu_line, pyplot, save_figure, write_markdown_and_json  # noqa: E402

from h3_jax.train.workdir import environment  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DEFAULT_NAME = "bench_user_script"
B, L = 32, 1024

SETUP = f"""
import functools
import statistics
import time
import jax, jax.numpy as jnp, numpy as np, optax
from h3_jax.models import LM, LMConfig
config = LMConfig(vocab_size=30, d_model=64, n_layer=2, d_inner=256)
model, tx = LM(config), optax.adamw(5e-4, weight_decay=0.1)
tokens = jnp.asarray(np.random.default_rng(0).integers(0, 30, ({B}, {L} + 1)), jnp.int32)
"""

REPORT = f"""
def report(step, *carry):
    carry = step(*carry)
    jax.block_until_ready(carry)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(5):
            carry = step(*carry)
        jax.block_until_ready(carry)
        times.append((time.perf_counter() - start) / 5)
    print({B} * {L} / statistics.median(times))
"""

# What a user writes: their own loss and a jitted step, dropout on as in training; DONATE
# names the arguments whose buffers the step may reuse for its outputs. Defines step, carry.
USER_STEP = SETUP + """
params = model.init(jax.random.key(0), tokens[:1, :8])["params"]

@functools.partial(jax.jit, donate_argnums=DONATE)
def step(params, opt_state, key):
    key, dropout = jax.random.split(key)
    def loss(p):
        logits = model.apply({"params": p}, tokens[:, :-1], train=True,
                             rngs={"dropout": dropout})
        return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()
    grads = jax.grad(loss)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, key

carry = (params, tx.init(params), jax.random.key(1))
"""
OWN_STEP = USER_STEP + REPORT + "report(step, *carry)\n"
LATE_IMPORT = "import jax.numpy\njax.numpy.zeros(1).block_until_ready()\nDONATE = ()\n"

LIBRARY_STEP = SETUP + REPORT + """
from h3_jax import tasks
from h3_jax.train import make_train_step
from h3_jax.train.step import init_train_state
batch = tasks.Batch(tokens[None, :, :-1], tokens[None, :, 1:], jnp.ones((1, 32, 1024), bool))
train_step = make_train_step(model, tx, lambda step: 5e-4)
report(lambda state: (train_step(state, batch)[0],), init_train_state(model, tx, 1, 8))
"""

OFFICIAL = "official PyTorch H3, 2 threads"
WAYS = {
    "own step, glibc defaults": ("DONATE = ()\n" + OWN_STEP, {"H3_JAX_MALLOC": "0"}),
    "own step, nothing set": ("DONATE = ()\n" + OWN_STEP, {}),
    "own step, h3_jax imported after JAX's first computation": (LATE_IMPORT + OWN_STEP, {}),
    "own step, params and optimizer state donated": ("DONATE = (0, 1)\n" + OWN_STEP, {}),
    "as the CLI": (LIBRARY_STEP, {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}),
}


def run_once(command: list[str], extra_env: dict[str, str]) -> float:
    env = {k: v for k, v in os.environ.items()
           if k not in ("H3_JAX_MALLOC", "GLIBC_TUNABLES")} | extra_env
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600,
                          check=True)
    return float(done.stdout.split()[-1])


def markdown(result: dict) -> str:
    stem = result.get("name", DEFAULT_NAME)
    base = result["ways"]["own step, glibc defaults"]["median"]
    cli = result["ways"]["as the CLI"]["median"]
    lines = [
        "# A researcher's own train step against the library's",
        "",
        f"`python experiments/bench_user_script.py --rounds {result['rounds']}"
        f"{' --official PATH --torch-python PY' if result.get('official') else ''}"
        f"{'' if stem == DEFAULT_NAME else ' --name ' + stem}`; "
        f"{result['cpu']}. 2-layer H3 LM (d_model 64, d_inner 256), L = {L}, batch {B}, AdamW, "
        "dropout on; tokens/s, the median over fresh processes (each the median of 5 rounds of "
        "5 steps), run in turns.",
        "",
        "| way | tokens/s (median) | per process | vs glibc defaults | vs the CLI | "
        "vs official |",
        "|---|---:|---|---:|---:|---:|",
    ]
    official = result["ways"].get(OFFICIAL, {}).get("median")
    for name, row in result["ways"].items():
        versus = "-" if official is None else f"{row['median'] / official:.2f}"
        lines.append(f"| {name} | {row['median']:,.0f} | "
                     f"{', '.join(f'{v:,.0f}' for v in row['runs'])} | "
                     f"{row['median'] / base:.2f} | {row['median'] / cli:.2f} | {versus} |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(6, 2.8))
    names = list(result["ways"])
    ax.barh(names, [result["ways"][n]["median"] for n in names],
            color=["0.6", "C0", "C2", "C1", "C3"][:len(names)])
    ax.invert_yaxis()
    ax.set_xlabel("tokens/s (median)")
    fig.tight_layout()
    save_figure(fig, str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="processes per way")
    parser.add_argument("--official", help="folder holding the official H3 src/ package")
    parser.add_argument("--torch-python", help="a Python with torch, to run the official H3")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--name", default=DEFAULT_NAME, help="report file stem")
    args = parser.parse_args()
    ways = {name: ([sys.executable, "-c", code], env) for name, (code, env) in WAYS.items()}
    if args.official and args.torch_python:
        script = str(Path(__file__).parent / "official_h3_torch.py")
        ways[OFFICIAL] = ([args.torch_python, script, "--official", args.official,
                           "--dropout", "0.1", "--threads", "2"], {})
    runs: dict[str, list[float]] = {name: [] for name in ways}
    for r in range(args.rounds):
        for name, (command, env) in ways.items():
            runs[name].append(run_once(command, env))
            print(f"round {r + 1}: {name}: {runs[name][-1]:,.0f} tokens/s", flush=True)
    env = environment()
    result = {"rounds": args.rounds, "name": args.name,
              "official": bool(args.official and args.torch_python),
              "cpu": cpu_line(env["cpu"]), "environment": env,
              "ways": {n: {"runs": v, "median": statistics.median(v)} for n, v in runs.items()}}
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, args.name)
    write_markdown_and_json(stem, markdown(result).splitlines(), result)
    plot(result, Path(stem + ".png"))
    print(markdown(result))


if __name__ == "__main__":
    main()
