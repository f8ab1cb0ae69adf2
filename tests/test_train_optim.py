"""Schedules (timm cosine, HF linear, constant) and the two AdamW parameter groups."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from h3_jax import models
from h3_jax.train.config import OptimConfig
from h3_jax.train.optim import make_optimizer, make_schedule
from test_checkpoint import H3_LIKE


def lrs(schedule, steps):
    return np.array([float(schedule(s)) for s in steps])


def test_cosine_matches_timm_formula():
    # timm CosineLRScheduler(t_initial=100, lr_min=0.1, warmup_t=10, warmup_lr_init=0.01), base 1.
    sched = make_schedule("cosine", peak=1.0, steps=100, warmup_steps=10, warmup_init=0.01,
                          floor=0.1)
    expected = [0.01 + t * (1.0 - 0.01) / 10 for t in range(10)]
    expected += [0.1 + 0.45 * (1 + math.cos(math.pi * t / 100)) for t in range(10, 100)]
    expected += [0.1, 0.1]  # after t_initial timm holds lr_min
    np.testing.assert_allclose(lrs(sched, range(102)), expected, rtol=1e-6, atol=1e-7)


def test_linear_matches_hf_linear_schedule_with_warmup():
    sched = make_schedule("linear", peak=2.0, steps=50, warmup_steps=5, warmup_init=0.0, floor=0.0)
    expected = [2.0 * (s / 5 if s < 5 else max(0.0, (50 - s) / 45)) for s in range(55)]
    np.testing.assert_allclose(lrs(sched, range(55)), expected, rtol=1e-6, atol=1e-7)


def test_constant_with_and_without_warmup():
    np.testing.assert_allclose(
        lrs(make_schedule("constant", peak=3.0, steps=10, warmup_steps=0, warmup_init=0.0,
                          floor=0.0), range(12)), 3.0)
    warm = make_schedule("constant", peak=3.0, steps=10, warmup_steps=3, warmup_init=0.0, floor=0.0)
    np.testing.assert_allclose(lrs(warm, range(5)), [0.0, 1.0, 2.0, 3.0, 3.0], rtol=1e-6)


def test_schedule_held_per_epoch_matches_cosine_annealing():
    # torch CosineAnnealingLR(T_max=4 epochs), stepped once per epoch of 5 steps, no warmup.
    sched = make_schedule("cosine", peak=1.0, steps=20, warmup_steps=0, warmup_init=0.0,
                          floor=0.0, every=5)
    expected = [0.5 * (1 + math.cos(math.pi * (s // 5) / 4)) for s in range(20)]
    np.testing.assert_allclose(lrs(sched, range(20)), expected, rtol=1e-6, atol=1e-7)


def test_schedule_every_is_checked():
    from h3_jax.presets import get_preset
    from h3_jax.train.config import ConfigError, apply_overrides, check

    config = apply_overrides(get_preset("h3-mqar"), ["optim.schedule_every=195"])
    check(config)
    with pytest.raises(ConfigError, match="optim.schedule_every"):
        check(apply_overrides(config, ["optim.schedule_every=0"]))


def test_unknown_schedule_is_rejected():
    with pytest.raises(ValueError, match="unknown schedule"):
        make_schedule("step", peak=1.0, steps=10, warmup_steps=0, warmup_init=0.0, floor=0.0)


@pytest.fixture(scope="module")
def h3_params():
    """Parameters named like an H3 layer's, so `param_labels` yields both groups."""
    from test_checkpoint import h3_like_params

    return h3_like_params()


def first_update(tx, grads, params):
    """One optimizer update from a fresh state, compiled (eager dispatch is slow here)."""
    return jax.jit(lambda g, p: tx.update(g, tx.init(p), p)[0])(grads, params)


def test_groups_ssm_dynamics_get_no_weight_decay_and_their_own_rate(h3_params):
    """With zero gradients AdamW moves only by decay: "rest" shrinks by lr * wd, "ssm" stays."""
    optim = OptimConfig(lr=0.1, lr_ssm=0.01, weight_decay=0.5, schedule="constant")
    tx, _ = make_optimizer(optim, steps=10, model=H3_LIKE)
    zeros = jax.tree.map(jnp.zeros_like, h3_params)
    updates = first_update(tx, zeros, h3_params)
    labels = models.param_labels(h3_params, H3_LIKE)
    assert "ssm" in jax.tree.leaves(labels) and "rest" in jax.tree.leaves(labels)

    def check(label, param, update):
        expected = np.zeros_like(param) if label == "ssm" else -0.1 * 0.5 * np.asarray(param)
        np.testing.assert_allclose(update, expected, rtol=1e-6, atol=1e-8)

    jax.tree.map(check, labels, h3_params, updates)


def test_ssm_weight_decay_shrinks_the_ssm_group_at_its_own_rate(h3_params):
    """With zero gradients: "ssm" shrinks by lr_ssm * weight_decay_ssm, "rest" by lr * wd."""
    optim = OptimConfig(lr=0.1, lr_ssm=0.01, weight_decay=0.5, weight_decay_ssm=0.2,
                        schedule="constant")
    updates = first_update(make_optimizer(optim, steps=10, model=H3_LIKE)[0],
                           jax.tree.map(jnp.zeros_like, h3_params), h3_params)

    def check(label, param, update):
        shrink = 0.01 * 0.2 if label == "ssm" else 0.1 * 0.5
        np.testing.assert_allclose(update, -shrink * np.asarray(param), rtol=1e-6, atol=1e-8)

    jax.tree.map(check, models.param_labels(h3_params, H3_LIKE), h3_params, updates)


def test_equal_rates_and_decays_are_one_adamw_over_every_parameter(h3_params):
    """lr_ssm = lr and weight_decay_ssm = weight_decay: Zoology's single AdamW group."""
    optim = OptimConfig(lr=3e-3, lr_ssm=3e-3, weight_decay=0.1, weight_decay_ssm=0.1,
                        schedule="constant")
    tx, _ = make_optimizer(optim, steps=10, model=H3_LIKE)
    single = optax.adamw(3e-3, weight_decay=0.1)
    leaves, treedef = jax.tree.flatten(h3_params)
    keys = jax.random.split(jax.random.key(0), len(leaves))
    grads = treedef.unflatten([jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])

    def two_steps(tx):
        def run(grads, params):
            state = tx.init(params)
            for scale in (1.0, -0.5):
                updates, state = tx.update(jax.tree.map(lambda g: scale * g, grads), state, params)
                params = optax.apply_updates(params, updates)
            return params
        return jax.jit(run)(grads, h3_params)

    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9),
                 two_steps(tx), two_steps(single))


def test_without_ssm_decay_the_ssm_group_steps_as_plain_adam(h3_params):
    """weight_decay_ssm = 0 is AdamW without decay: bit for bit the plain Adam that runs made
    before the option used (their checkpoints are converted by train/formats.py)."""
    optim = OptimConfig(lr=3e-3, weight_decay=0.1, schedule="constant")
    before = optax.partition(
        {"rest": optax.adamw(lambda step: 3e-3, weight_decay=0.1),
         "ssm": optax.adam(lambda step: 1e-3)},
        functools.partial(models.param_labels, config=H3_LIKE),
    )
    now, _ = make_optimizer(optim, steps=10, model=H3_LIKE)
    ones = jax.tree.map(jnp.ones_like, h3_params)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b),
                 first_update(now, ones, h3_params), first_update(before, ones, h3_params))


def test_groups_learning_rates(h3_params):
    """One Adam step from fresh moments moves each parameter by about its group's rate."""
    optim = OptimConfig(lr=0.1, lr_ssm=0.01, weight_decay=0.0, schedule="constant")
    tx, schedule = make_optimizer(optim, steps=10, model=H3_LIKE)
    ones = jax.tree.map(jnp.ones_like, h3_params)
    updates = first_update(tx, ones, h3_params)
    labels = models.param_labels(h3_params, H3_LIKE)
    expected = jax.tree.map(lambda l: 0.01 if l == "ssm" else 0.1, labels)
    jax.tree.map(lambda u, e: np.testing.assert_allclose(u, -e, rtol=1e-5), updates, expected)
    assert float(schedule(0)) == pytest.approx(0.1)


def test_default_ssm_rate_is_min_of_1e3_and_lr(h3_params):
    optim = OptimConfig(lr=5e-3, weight_decay=0.0, schedule="constant")
    tx, _ = make_optimizer(optim, 10, model=H3_LIKE)
    ones = jax.tree.map(jnp.ones_like, h3_params)
    updates = first_update(tx, ones, h3_params)
    for label, update in zip(jax.tree.leaves(models.param_labels(h3_params, H3_LIKE)),
                             jax.tree.leaves(updates)):
        np.testing.assert_allclose(update, -(1e-3 if label == "ssm" else 5e-3), rtol=1e-5)


def test_clipping_acts_on_the_global_norm_before_adam(h3_params):
    # eps = 1 makes Adam's first step g / (|g| + 1), so it depends on the gradient's scale.
    common = dict(lr=1.0, lr_ssm=1.0, weight_decay=0.0, schedule="constant", eps=1.0)
    with_clip, _ = make_optimizer(OptimConfig(clip_norm=0.5, **common), 10, model=H3_LIKE)
    without, _ = make_optimizer(OptimConfig(**common), 10, model=H3_LIKE)
    big = jax.tree.map(lambda p: jnp.full_like(p, 3.0), h3_params)
    clip = optax.clip_by_global_norm(0.5)
    clipped, _ = clip.update(big, clip.init(big))
    assert float(optax.tree.norm(clipped)) == pytest.approx(0.5, rel=1e-5)
    got = first_update(with_clip, big, h3_params)
    want = first_update(without, clipped, h3_params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, want)
