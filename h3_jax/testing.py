"""A test kit for extensions: `check_mixer(spec)` asserts what h3_jax proves for its own mixers,
`check_task(spec)` what the trainer needs of a task (see its docstring).

    from h3_jax.testing import check_mixer
    check_mixer("my_mixers:Gated")                  # or a built-in name, or a Config instance

It draws parameters (the mixer's init, moved off its structured values by noise, so that e.g. an
SSM's B = 1 cannot hide a bug) and inputs x ~ N(0, 1) of shape (B, L, D), and checks, in float32:

- causality by gradient: d y_t / d x_s is zero for every s > t, and not for s = t;
- every whole-sequence algorithm of the settings (`config.algorithms`) gives the same outputs;
- prefill on a prefix, then `step` through the rest, gives the whole-sequence outputs, and so does
  stepping from `init_state` (whose state has the structure, shapes and dtypes prefill returns);
- `jax.jit` gives what eager execution gives;
- with compute_dtype bfloat16 the outputs stay within a stated distance of float32's;
- every declared SSM parameter (`ssm_parameters_of(config)`) exists.

Tolerances (`TOLERANCES`) are fractions of the largest |output| (or |gradient|); a failure raises
AssertionError naming the check, the measured error and its bound. Returns the measured errors.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from h3_jax.mixers import Mixer, MixerConfig, Shared, default_config, mixer_of

TOLERANCES = {
    # Different algorithms sum in different orders (an FFT against a scan): float32 round-off
    # grows with L; 1e-4 of the output's scale holds to L = 4096 for the built-in mixers.
    "algorithms": 1e-4,
    "prefill_step": 1e-4,
    # The same ops, fused differently by XLA.
    "jit": 1e-5,
    # FFT round-off leaks ~1e-8 of the gradient's scale into the future; exact zeros otherwise.
    "causality": 1e-6,
    # bf16 keeps an 8-bit mantissa (relative step 4e-3); a mixer has a few matmuls in a row.
    "bfloat16": 5e-2,
}


def check_mixer(
    spec: str | MixerConfig,
    *,
    d_model: int = 16,
    lengths: tuple[int, ...] = (24,),
    batch: int = 2,
    seed: int = 0,
) -> dict[str, float]:
    """Assert the mixer named by `spec` (a spec string for its defaults, or a Config) keeps the
    contract of h3_jax.mixers.base at width `d_model` for each sequence length in `lengths`.
    Returns {check name: the largest measured error, as a fraction of its scale}."""
    config = default_config(spec) if isinstance(spec, str) else spec
    cls = mixer_of(config)
    config.check_width(d_model)
    shared = Shared(d_model=d_model)
    key_params, key_noise, key_x = jax.random.split(jax.random.key(seed), 3)
    longest = max(lengths)
    x_long = jax.random.normal(key_x, (batch, longest, d_model), jnp.float32)
    params = cls(config, shared).init(key_params, x_long[:, : min(longest, 8)])["params"]
    params = _perturbed(params, key_noise)
    _check_ssm_parameters(cls, config, params)
    errors: dict[str, float] = {}
    for length in lengths:
        x = x_long[:, :length]
        whole = _whole(cls, config, shared, params, x)
        _check_shape(whole, x)
        errors["causality"] = max(errors.get("causality", 0.0),
                                  _causality(cls, config, shared, params, x))
        for algorithm in config.algorithms:
            other = dataclasses.replace(config, algorithm=algorithm)
            _record(errors, "algorithms", whole, _whole(cls, other, shared, params, x),
                    f"algorithm={algorithm!r} against {getattr(config, 'algorithm', None)!r}, "
                    f"L={length}")
        for prefix in sorted({0, length // 2}, reverse=True):  # prefill's state first
            stepped = _prefill_then_step(cls, config, shared, params, x, prefix)
            _record(errors, "prefill_step", whole, stepped,
                    f"prefill of {prefix} tokens, then step, L={length}")
        eager = cls(config, shared).apply({"params": params}, x)
        _record(errors, "jit", whole, eager, f"eager against jit, L={length}")
        bf16 = _whole(cls, config, dataclasses.replace(shared, compute_dtype="bfloat16"), params, x)
        _record(errors, "bfloat16", whole, bf16, f"compute_dtype bfloat16, L={length}")
    return errors


def _perturbed(params: Any, key) -> Any:
    """params + noise of 0.2 times each leaf's spread (0.2 for constant leaves)."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    out = []
    for leaf, k in zip(leaves, keys):
        spread = float(jnp.std(leaf)) if leaf.size > 1 else 0.0
        noise = jax.random.normal(k, leaf.shape, leaf.dtype)
        out.append(leaf + 0.2 * (spread or 1.0) * noise)
    return treedef.unflatten(out)


def _whole(cls: type[Mixer], config, shared, params, x):
    return jax.jit(lambda p, x: cls(config, shared).apply({"params": p}, x))(params, x)


def _prefill_then_step(cls: type[Mixer], config, shared, params, x, prefix: int):
    module = cls(config, shared)
    length = x.shape[1]
    if prefix:
        first, state = jax.jit(
            lambda p, x: module.apply({"params": p}, x, cache_len=length, method="prefill")
        )(params, x[:, :prefix])
        _check_state_structure(cls, config, shared, state, x.shape[0], length)
    else:
        first, state = x[:, :0], cls.init_state(config, shared, x.shape[0], length)

    @jax.jit
    def rest(p, state, xs):
        def one(state, indexed):
            position, x_t = indexed
            y_t, state = module.apply({"params": p}, x_t, state, position=position, method="step")
            return state, y_t

        positions = prefix + jnp.arange(xs.shape[1], dtype=jnp.int32)
        _, ys = jax.lax.scan(one, state, (positions, jnp.moveaxis(xs, 1, 0)))
        return jnp.moveaxis(ys, 0, 1)

    return jnp.concatenate([first, rest(params, state, x[:, prefix:])], axis=1)


def _check_state_structure(cls, config, shared, state, batch: int, max_len: int) -> None:
    zero = cls.init_state(config, shared, batch, max_len)
    shapes = lambda tree: jax.tree.map(lambda a: (a.shape, a.dtype), tree)  # noqa: E731
    if shapes(zero) != shapes(state):
        raise AssertionError(
            f"check_mixer: init_state gives {shapes(zero)}, but prefill returns {shapes(state)}"
        )


def _causality(cls: type[Mixer], config, shared, params, x) -> float:
    t = x.shape[1] // 2
    module = cls(config, shared)

    def output_t(x):
        return jnp.sum(module.apply({"params": params}, x)[:, t])

    grad = np.abs(np.asarray(jax.jit(jax.grad(output_t))(x))).max(axis=(0, 2))  # (L,)
    past, future = grad[: t + 1], grad[t + 1 :]
    if not past[t] > 0:
        raise AssertionError(f"check_mixer causality: y_t does not depend on x_t (t={t})")
    error = float(future.max() / past.max()) if future.size else 0.0
    bound = TOLERANCES["causality"]
    if error > bound:
        worst = t + 1 + int(future.argmax())
        raise AssertionError(
            f"check_mixer causality: d y_{t} / d x_{worst} is {error:.2e} of the largest past "
            f"gradient; allowed {bound:.0e}"
        )
    return error


def _check_shape(y, x) -> None:
    if y.shape != x.shape or y.dtype != jnp.float32:
        raise AssertionError(
            f"check_mixer: whole-sequence output is {y.shape} {y.dtype}; expected the input's "
            f"shape {x.shape} in float32"
        )


def _check_ssm_parameters(cls: type[Mixer], config, params) -> None:
    present = {"/".join(str(k.key) for k in path) for path, _ in
               jax.tree_util.tree_flatten_with_path(params)[0]}
    missing = [name for name in cls.ssm_parameters_of(config) if name not in present]
    if missing:
        raise AssertionError(
            f"check_mixer: ssm_parameters {missing} are not parameters of {cls.__name__} "
            f"(it has {sorted(present)})"
        )


def _record(errors: dict[str, float], check: str, expected, actual, what: str) -> None:
    expected, actual = np.asarray(expected, np.float64), np.asarray(actual, np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(f"check_mixer {check}: {what}: shape {actual.shape}, expected "
                             f"{expected.shape}")
    scale = max(float(np.abs(expected).max()), 1e-30)
    error = float(np.abs(actual - expected).max()) / scale
    bound = TOLERANCES[check]
    if not error <= bound:  # also catches NaN
        raise AssertionError(
            f"check_mixer {check}: {what}: error {error:.2e} of the output's scale; allowed "
            f"{bound:.0e}"
        )
    errors[check] = max(errors.get(check, 0.0), error)


def check_task(spec: str, **fields: Any) -> None:
    """Assert the task named by `spec` (a built-in name or "module:ClassName") at its defaults,
    with `fields` replaced (e.g. small num_examples), keeps what the trainer relies on:

    - `dataset(seed)` gives (num_examples, L) and (num_test_examples, L) splits, and
      `batch(seed, index, B)` a (B, L) batch: int32 inputs and targets in [0, vocab_size), a bool
      mask with at least one and at most `labels_per_example` labelled positions in every row;
    - both are pure functions of their arguments (the same again, another index or seed not);
    - the stream does not replay the dataset; the task is frozen;
    - a negative seed or index, or a batch size below 1, raises ValueError.
    """
    from h3_jax import tasks

    task = tasks.get_task(spec, **fields)
    train, test = task.dataset(0)
    for what, batch, rows in (("train", train, task.num_examples),
                              ("test", test, task.num_test_examples),
                              ("stream", task.batch(0, 0, 8), 8)):
        _check_batch(task, what, batch, rows)
    _check_same(task.dataset(0)[0], train, True, "dataset(0) twice")
    _check_same(task.dataset(1)[0], train, False, "dataset(1) against dataset(0)")
    _check_same(task.batch(0, 0, 8), task.batch(0, 0, 8), True, "batch(0, 0) twice")
    _check_same(task.batch(0, 1, 8), task.batch(0, 0, 8), False, "batch(0, 1) against (0, 0)")
    n = min(8, task.num_examples)
    _check_same(task.batch(0, 0, n), tasks.Batch(*(a[:n] for a in train)), False,
                "batch(0, 0) against the start of dataset(0)")
    if not dataclasses.is_dataclass(task) or not type(task).__dataclass_params__.frozen:
        raise AssertionError(f"check_task: {type(task).__name__} is not a frozen dataclass")
    for call, what in ((lambda: task.dataset(-1), "dataset(-1)"),
                       (lambda: task.batch(0, -1, 4), "batch(0, -1, 4)"),
                       (lambda: task.batch(0, 0, 0), "batch(0, 0, 0)")):
        try:
            call()
        except ValueError:
            continue
        raise AssertionError(f"check_task: {what} did not raise ValueError")


def _check_batch(task, what: str, batch, rows: int) -> None:
    expected = (rows, task.seq_len)
    for name, dtype in (("inputs", np.int32), ("targets", np.int32), ("mask", np.bool_)):
        array = getattr(batch, name)
        if array.shape != expected or array.dtype != dtype:
            raise AssertionError(f"check_task {what}: {name} is {array.shape} {array.dtype}; "
                                 f"expected {expected} {np.dtype(dtype)}")
    for name in ("inputs", "targets"):
        array = getattr(batch, name)
        if array.min() < 0 or array.max() >= task.vocab_size:
            raise AssertionError(f"check_task {what}: {name} outside [0, vocab_size="
                                 f"{task.vocab_size})")
    labels = batch.mask.sum(axis=1)
    if labels.min() < 1 or labels.max() > task.labels_per_example:
        raise AssertionError(f"check_task {what}: rows have {labels.min()}..{labels.max()} "
                             f"labelled positions; expected 1..labels_per_example="
                             f"{task.labels_per_example}")


def _check_same(a, b, same: bool, what: str) -> None:
    equal = all(np.array_equal(x, y) for x, y in zip(a, b))
    if equal != same:
        raise AssertionError(f"check_task: {what} gave {'other' if same else 'the same'} "
                             "examples")
