"""Time compiled calls: compile (the first call) apart from the steady state."""

from __future__ import annotations

import time

import jax


def time_train_step(step_fn, state, chunk, steps_per_call: int, seconds: float):
    """Call step_fn(state, chunk) for about `seconds` -> (state, metrics, compile_s, steps_per_s).

    Results are awaited every 8 calls, so dispatch overlaps compute as in a training loop.
    """
    start = time.perf_counter()
    state, metrics = step_fn(state, chunk)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        state, metrics = step_fn(state, chunk)
        calls += 1
        if calls % 8 == 0:
            jax.block_until_ready(metrics)
    jax.block_until_ready(metrics)
    steps_per_s = calls * steps_per_call / (time.perf_counter() - start)
    return state, metrics, compile_s, steps_per_s


def repeat_seconds(f, *args, repeats: int) -> tuple[float, list[float]]:
    """(seconds of a first call of f(*args), the seconds of each of `repeats` calls after it).

    Each call is awaited before the next starts, so each time is one call's latency.
    """
    start = time.perf_counter()
    jax.block_until_ready(f(*args))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - start)
    return first, times
