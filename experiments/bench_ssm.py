"""Time the three views of one diagonal SSM: FFT convolution, associative scan, sequential scan,
and the convolution also as one Toeplitz matmul per channel (the short-sequence path); beside
them the selective SSM (Mamba's S6), which has no convolution form: associative scan, chunked
associative scan, sequential scan.

    python experiments/bench_ssm.py                 # B=8, H=64, N=32 (S6: N=16), L = 256 .. 65536
    python experiments/bench_ssm.py --paths s6_assoc_scan s6_chunked_scan s6_sequential
    python experiments/bench_ssm.py --quick         # a small smoke run
    python experiments/bench_ssm.py --paths fft toeplitz --tokens 32768 --lengths 64 128 256 512 \
        --state-passing-length 0 --name bench_ssm_toeplitz  # where the Toeplitz matmul stops paying

For each path and length: compile time, steady-state median of repeats (forward, and forward +
backward), XLA's peak buffer memory for the compiled call, and the max error against a float64
run (for S6: its sequential recurrence in float64). A path whose predicted time exceeds --max-seconds or whose memory exceeds --max-gib is
skipped and reported as such. Writes <name>.json, .md and .png (name: bench_ssm) to --out.
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
import numpy as np

from h3_jax import ssm
from h3_jax.hugepages import restart_with_huge_pages
from h3_jax.train.workdir import cpu

RESULTS = Path(__file__).parent / "results"


def make_problem(B: int, H: int, N: int, L: int, seed: int = 0):
    key_ssm, key_u = jax.random.split(jax.random.key(seed))
    p = ssm.init_diag_ssm(key_ssm, H, N)
    dA, dB = ssm.discretize(p["A"], p["B"], jnp.exp(p["log_dt"]))
    u = jax.random.normal(key_u, (B, L, H), jnp.float32)
    return dA, dB, p["C"], u


def paths(L: int, chunk: int):
    """name -> f(dA, dB, C, u) -> y (B, L, H). All compute the SSM without its D term."""
    return {
        "fft": lambda dA, dB, C, u: ssm.causal_conv(u, ssm.diag_ssm_kernel(dA, dB, C, L)),
        "toeplitz": lambda dA, dB, C, u: ssm.short_causal_conv(
            u, ssm.diag_ssm_kernel(dA, dB, C, L)),
        "assoc_scan": lambda dA, dB, C, u: ssm.diag_ssm_scan(dA, dB, C, u)[0],
        "chunked_scan": lambda dA, dB, C, u: ssm.diag_ssm_scan(dA, dB, C, u, chunk_size=chunk)[0],
        "sequential": lambda dA, dB, C, u: ssm.diag_ssm_recurrence(dA, dB, C, u)[0],
    }


def selective_problem(B: int, H: int, N: int, L: int, seed: int = 0):
    """(u, dt, A, B, C) of an S6 as Mamba initialises it: dt log-uniform in [1e-3, 1e-1],
    A[h, n] = -(n + 1); B, C ~ N(0, 1) per step."""
    keys = jax.random.split(jax.random.key(seed), 4)
    u = jax.random.normal(keys[0], (B, L, H), jnp.float32)
    dt = jnp.exp(jax.random.uniform(keys[1], (B, L, H), jnp.float32, np.log(1e-3), np.log(1e-1)))
    A = -jnp.broadcast_to(jnp.arange(1, N + 1, dtype=jnp.float32), (H, N))
    Bm, Cm = (jax.random.normal(k, (B, L, N), jnp.float32) for k in keys[2:])
    return u, dt, A, Bm, Cm


def selective_paths(chunk: int):
    """name -> f(u, dt, A, B, C) -> y (B, L, H), the S6 without its D term."""
    return {
        "s6_assoc_scan": lambda *a: ssm.selective_scan(*a)[0],
        "s6_chunked_scan": lambda *a: ssm.selective_scan(*a, chunk_size=chunk)[0],
        "s6_sequential": lambda *a: ssm.selective_recurrence(*a)[0],
    }


def selective_reference(u, dt, A, Bm, Cm):
    with jax.enable_x64(True):
        args = [jnp.asarray(np.asarray(x), np.float64) for x in (u, dt, A, Bm, Cm)]
        return np.asarray(jax.jit(lambda *a: ssm.selective_recurrence(*a)[0])(*args))


LTI_PATHS = ("fft", "toeplitz", "assoc_scan", "chunked_scan", "sequential")
S6_PATHS = ("s6_assoc_scan", "s6_chunked_scan", "s6_sequential")
CHUNKED = ("chunked_scan", "s6_chunked_scan")


def forward_backward(f, n_args: int = 4, u_index: int = 3):
    """Gradient of a scalar of the output w.r.t. every argument: the input (argument u_index)
    and every SSM parameter."""
    def loss(*args):
        return jnp.sum(f(*args) * args[u_index])
    return jax.grad(loss, argnums=tuple(range(n_args)))


def peak_gib(compiled) -> float | None:
    """XLA's buffer assignment for the call: arguments + outputs + temporaries, in GiB."""
    mem = compiled.memory_analysis()
    if mem is None:
        return None
    return (mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes) / 2**30


def compiled_peak_gib(f, args) -> float | None:
    return peak_gib(jax.jit(f).lower(*args).compile())


def measure(f, args, repeats: int, max_seconds: float, max_gib: float):
    """Compile, check memory, then time -> dict (or a 'skipped' reason)."""
    t0 = time.perf_counter()
    compiled = jax.jit(f).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    peak = peak_gib(compiled)
    if peak is not None and peak > max_gib:
        return {"skipped": f"needs {peak:.1f} GiB > {max_gib} GiB", "compile_s": compile_s, "peak_gib": peak}
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    first = time.perf_counter() - t0
    times = [first]
    for _ in range(max(0, repeats - 1)):
        if sum(times) > max_seconds:
            break
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    return {"compile_s": compile_s, "median_s": statistics.median(times), "repeats": len(times),
            "peak_gib": peak, "out": out}


def float64_reference(dA, dB, C, u):
    with jax.enable_x64(True):
        args = [jnp.asarray(np.asarray(x), np.complex128 if jnp.iscomplexobj(x) else np.float64)
                for x in (dA, dB, C, u)]
        y = jax.jit(lambda dA, dB, C, u: ssm.causal_conv(u, ssm.diag_ssm_kernel(dA, dB, C, u.shape[-2])))(*args)
        return np.asarray(y)


def bench_fft_floor(args, L: int, repeats: int):
    """causal_conv and the kernel against the floor of the FFT algorithm: a bare rfft ->
    multiply -> irfft of length 2L on channels-minor data. The three are timed in turns, so
    that load from elsewhere on the machine falls on all of them alike."""
    dA, dB, C, u = args
    u_bhl = jnp.swapaxes(u, -1, -2) + 0  # materialised channels-minor copy
    K = jnp.ones((u.shape[-1], L), jnp.float32)
    n = 2 * L

    def floor(u_bhl, K):
        return jnp.fft.irfft(jnp.fft.rfft(u_bhl, n=n) * jnp.fft.rfft(K, n=n), n=n)[..., :L]

    def floor_channels_last(u, K):
        """The same on causal_conv's own (B, L, H) input: jnp moves the FFT axis itself."""
        u_freq = jnp.fft.rfft(u, n=n, axis=-2)
        return jnp.fft.irfft(u_freq * jnp.fft.rfft(K, n=n).T, n=n, axis=-2)[..., :L, :]

    calls = {
        "fft_floor": (floor, (u_bhl, K)),
        "fft_floor_channels_last": (floor_channels_last, (u, K)),
        "causal_conv": (ssm.causal_conv, (u, K)),
        "diag_ssm_kernel": (lambda dA, dB, C: ssm.diag_ssm_kernel(dA, dB, C, L), (dA, dB, C)),
    }
    out, compiled = {}, {}
    for name, (f, a) in calls.items():
        t0 = time.perf_counter()
        compiled[name] = jax.jit(f).lower(*a).compile()
        jax.block_until_ready(compiled[name](*a))
        out[name] = {"compile_s": time.perf_counter() - t0, "times": []}
    for _ in range(max(repeats, 7)):
        for name, (_, a) in calls.items():
            t0 = time.perf_counter()
            jax.block_until_ready(compiled[name](*a))
            out[name]["times"].append(time.perf_counter() - t0)
    for r in out.values():
        r["median_s"] = statistics.median(r.pop("times"))
    return out


def bench_state_passing(length: int, chunk: int, H: int, N: int, repeats: int):
    dA, dB, C, u = make_problem(1, H, N, length, seed=1)
    f = lambda dA, dB, C, u: ssm.diag_ssm_state_passing(dA, dB, C, u, chunk_size=chunk)[0]  # noqa: E731
    r = measure(f, (dA, dB, C, u), repeats, 60.0, 64.0)
    y = np.asarray(r.pop("out"))
    ref = float64_reference(dA, dB, C, u)
    r.update(length=length, chunk=chunk, H=H, N=N,
             max_rel_err=float(np.abs(y - ref).max() / np.abs(ref).max()))
    return r


def run(args) -> dict:
    results = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                           "cpu": cpu(),
                           "cpus": os.cpu_count(), "jax": jax.__version__,
                           "backend": jax.default_backend(), "date": time.strftime("%Y-%m-%d")},
               "config": {"B": args.batch, "tokens": args.tokens, "H": args.channels,
                          "N": args.modes, "chunk": args.chunk,
                          "N_selective": args.selective_modes, "lengths": args.lengths,
                          "paths": args.paths, "repeats": args.repeats},
               "rows": [], "floor": {}, "state_passing": None}
    predicted: dict[str, float] = {}
    for L in args.lengths:
        families = []
        batch = args.tokens // L if args.tokens else args.batch
        if any(p in args.paths for p in LTI_PATHS):
            problem = make_problem(batch, args.channels, args.modes, L)
            families.append((paths(L, args.chunk), problem, float64_reference(*problem), 3))
        if any(p in args.paths for p in S6_PATHS):
            s6 = selective_problem(batch, args.channels, args.selective_modes, L)
            families.append((selective_paths(args.chunk), s6, selective_reference(*s6), 0))
        for family_paths, args_, ref, u_index in families:
            scale = np.abs(ref).max()
            for name, f in family_paths.items():
                if name not in args.paths:
                    continue
                for mode in ("forward", "forward_backward"):
                    row = measure_row(name, mode, L, f, args_, u_index, ref, scale, predicted,
                                      args)
                    results["rows"].append(row)
                    print(format_row(row), flush=True)
        if "fft" in args.paths and (L >= 1024 or args.quick):
            results["floor"][str(L)] = bench_fft_floor(problem, L, args.repeats)
            fl = results["floor"][str(L)]
            print(f"  L={L}: causal_conv / fft floor = "
                  f"{fl['causal_conv']['median_s'] / fl['fft_floor']['median_s']:.2f}, "
                  f"kernel / causal_conv = "
                  f"{fl['diag_ssm_kernel']['median_s'] / fl['causal_conv']['median_s']:.3f}", flush=True)
    if args.state_passing_length and "fft" in args.paths:
        results["state_passing"] = bench_state_passing(
            args.state_passing_length, args.state_passing_chunk, args.channels, args.modes, args.repeats)
        print("state passing:", {k: v for k, v in results["state_passing"].items()}, flush=True)
    results["targets"] = check_targets(results, args)
    return results


def measure_row(name, mode, L, f, problem, u_index, ref, scale, predicted, args) -> dict:
    """One row of the table: path `name` at length L, "forward" or "forward_backward"."""
    key = f"{name}/{mode}"
    row = {"path": name, "mode": mode, "L": L}
    fn = f if mode == "forward" else forward_backward(f, len(problem), u_index)
    # A chunked scan's memory target is at the longest L: run it once however slow.
    target_run = name in CHUNKED and mode == "forward" and L == max(args.lengths)
    if predicted.get(key, 0.0) > args.max_seconds and not target_run:
        # Too slow to run, but compiling still tells its memory.
        row["skipped"] = f"predicted {predicted[key]:.0f} s > {args.max_seconds:.0f} s"
        row["peak_gib"] = compiled_peak_gib(fn, problem)
        return row
    r = measure(fn, problem, 1 if target_run else args.repeats, args.max_seconds, args.max_gib)
    out = r.pop("out", None)
    row.update(r)
    if "median_s" in r:
        # Every path here is at least linear in L, the Toeplitz matmul quadratic; the next length
        # doubles or more.
        predicted[key] = r["median_s"] * (4.4 if name == "toeplitz" else 2.2)
    if out is not None and mode == "forward":
        row["max_rel_err"] = float(np.abs(np.asarray(out) - ref).max() / scale)
    return row


def format_row(row: dict) -> str:
    head = f"{row['path']:>13} {row['mode']:>16} L={row['L']:>6}"
    if "skipped" in row:
        return f"{head}  skipped: {row['skipped']}"
    peak = f"{row['peak_gib']:.2f} GiB" if row.get("peak_gib") is not None else "n/a"
    err = f"  err {row['max_rel_err']:.1e}" if "max_rel_err" in row else ""
    return (f"{head}  compile {row['compile_s']:6.2f} s  run {1e3 * row['median_s']:9.2f} ms  "
            f"peak {peak}{err}")


def check_targets(results: dict, args) -> list[dict]:
    targets = []
    floor = results["floor"]
    ratios = {L: v["causal_conv"]["median_s"] / v["fft_floor"]["median_s"]
              for L, v in floor.items() if 1024 <= int(L) <= 65536}
    if ratios:
        targets.append({"target": "causal_conv <= 1.3x bare rfft-multiply-irfft, L in [1024, 65536]",
                        "measured": {L: round(r, 3) for L, r in ratios.items()},
                        "met": all(r <= 1.3 for r in ratios.values())})
    if "16384" in floor:
        r = floor["16384"]["diag_ssm_kernel"]["median_s"] / floor["16384"]["causal_conv"]["median_s"]
        targets.append({"target": "diag_ssm_kernel <= 0.1x causal_conv at L=16384",
                        "measured": round(r, 4), "met": r <= 0.1})
    for row in results["rows"]:
        if row["path"] in CHUNKED and row["L"] == 65536 and row.get("peak_gib") is not None:
            ran = "median_s" in row
            targets.append({"target": f"{row['path']} {row['mode']} at L=65536 in under 4 GiB",
                            "measured_gib": round(row["peak_gib"], 3), "ran": ran,
                            "met": row["peak_gib"] < 4 and (ran or row["mode"] != "forward")})
    sp = results["state_passing"]
    if sp:
        targets.append({"target": f"state passing over {sp['length']} steps (B=1, H={sp['H']})",
                        "measured_gib": sp["peak_gib"], "seconds": sp["median_s"],
                        "max_rel_err": sp["max_rel_err"], "met": sp["max_rel_err"] < 1e-3})
    return targets


def batch_text(config: dict) -> str:
    tokens = config.get("tokens")
    return f"B L = {tokens}" if tokens else f"B={config['B']}"


def write_markdown(results: dict, path: Path) -> None:
    m, c = results["machine"], results["config"]
    cpu_name = (f"{m['cpu']['name']} (family/model {m['cpu']['family_model']}), "
                if m.get("cpu", {}).get("name") else "")
    ran = {r["path"] for r in results["rows"]}
    s6 = f" (S6: {c.get('N_selective', 16)} real modes)" if ran & set(S6_PATHS) else ""
    chunk = f", chunk {c['chunk']}" if ran & set(CHUNKED) else ""
    lines = [f"Measured on {cpu_name}{m['platform']}, {m['cpus']} CPUs, "
             f"jax {m['jax']} ({m['backend']}), "
             f"{m['date']}. {batch_text(c)}, H={c['H']}, N={c['N']} complex modes{s6}{chunk}.",
             "", "| path | mode | L | compile (s) | run (ms) | peak (GiB) | max rel. err vs float64 |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in results["rows"]:
        if "skipped" in r:
            peak = f"{r['peak_gib']:.2f}" if r.get("peak_gib") is not None else ""
            lines.append(f"| {r['path']} | {r['mode']} | {r['L']} | | skipped: {r['skipped']} | {peak} | |")
            continue
        peak = f"{r['peak_gib']:.2f}" if r.get("peak_gib") is not None else ""
        err = f"{r['max_rel_err']:.1e}" if "max_rel_err" in r else ""
        lines.append(f"| {r['path']} | {r['mode']} | {r['L']} | {r['compile_s']:.2f} | "
                     f"{1e3 * r['median_s']:.2f} | {peak} | {err} |")
    if results["floor"]:
        lines += ["", "Bare FFT floor: rfft -> multiply -> irfft of length 2L on channels-minor "
                  "(B, H, L) data; on channels-last data, the same on causal_conv's own (B, L, H) "
                  "input.", "",
                  "| L | floor (ms) | floor, channels-last (ms) | causal_conv (ms) | conv / floor | "
                  "diag_ssm_kernel (ms) | kernel / conv |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
    for L, v in results["floor"].items():
        fl, cc, k = (v[n]["median_s"] * 1e3 for n in ("fft_floor", "causal_conv", "diag_ssm_kernel"))
        last = v.get("fft_floor_channels_last", {}).get("median_s")
        last = f"{last * 1e3:.2f}" if last is not None else ""
        lines.append(f"| {L} | {fl:.2f} | {last} | {cc:.2f} | {cc / fl:.2f} | {k:.2f} | {k / cc:.3f} |")
    if results["targets"]:
        lines += ["", "| target | measured | met |", "|---|---|---|"]
    for t in results["targets"]:
        measured = {k: v for k, v in t.items() if k not in ("target", "met")}
        lines.append(f"| {t['target']} | {json.dumps(measured)} | {'yes' if t['met'] else 'NO'} |")
    path.write_text("\n".join(lines) + "\n")


def write_plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, mode in zip(axes, ("forward", "forward_backward")):
        for name in (*LTI_PATHS, *S6_PATHS):
            pts = [(r["L"], r["median_s"]) for r in results["rows"]
                   if r["path"] == name and r["mode"] == mode and "median_s" in r]
            if pts:
                ax.loglog(*zip(*pts), marker="o", label=name,
                          ls="--" if name in S6_PATHS else "-")
        ax.set_title(mode.replace("_", " + "))
        ax.set_xlabel("sequence length L")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("seconds (median, steady state)")
    axes[0].legend()
    c = results["config"]
    fig.suptitle(f"Diagonal SSM (solid, N={c['N']} complex) and selective S6 (dashed, "
                 f"N={c.get('N_selective', 16)} real), {batch_text(c)}, H={c['H']}, "
                 f"{results['machine']['cpus']} CPUs")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--tokens", type=int, default=None,
                   help="instead of --batch: B = tokens // L at each length, so B L stays fixed")
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--modes", type=int, default=32)
    p.add_argument("--chunk", type=int, default=256, help="chunk size of the chunked scan")
    p.add_argument("--lengths", type=int, nargs="+", default=[2**k for k in range(8, 17)])
    p.add_argument("--selective-modes", type=int, default=16, help="S6 real modes N")
    p.add_argument("--paths", nargs="+", default=[*LTI_PATHS, *S6_PATHS],
                   choices=[*LTI_PATHS, *S6_PATHS])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--max-seconds", type=float, default=60.0, help="skip a path predicted slower")
    p.add_argument("--max-gib", type=float, default=16.0, help="skip a path needing more memory")
    p.add_argument("--state-passing-length", type=int, default=2**20)
    p.add_argument("--state-passing-chunk", type=int, default=2**14)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--name", default="bench_ssm", help="stem of the three output files")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    args = p.parse_args(argv)
    if args.tokens is not None and args.tokens < max(args.lengths):
        p.error(f"--tokens must be at least the longest length ({max(args.lengths)}), "
                f"got {args.tokens}")
    if args.quick:
        args.batch, args.channels, args.modes, args.chunk = 2, 4, 4, 16
        args.selective_modes = 4
        args.lengths, args.repeats = [64, 256], 2
        args.state_passing_length, args.state_passing_chunk = 1000, 128
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    results = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / args.name
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    write_markdown(results, stem.with_suffix(".md"))
    write_plot(results, stem.with_suffix(".png"))
    print(stem.with_suffix(".md").read_text())
    return results


if __name__ == "__main__":
    restart_with_huge_pages()
    main()
