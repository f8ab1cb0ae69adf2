"""AdamW with the H3 paper's two parameter groups, and the learning-rate schedules it uses.

Groups (safari `configure_optimizers`): the SSM dynamics (A, B, dt of both SSMs, labelled "ssm"
by `h3_jax.models.param_labels`) get their own peak rate `lr_ssm` and, by default, no weight decay
(`weight_decay_ssm`); all other parameters get AdamW with `weight_decay`. Both groups follow the
same schedule shape.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax.numpy as jnp
import optax

from h3_jax import models
from h3_jax.train.config import OptimConfig

Schedule = Callable[[Any], Any]


def make_schedule(
    kind: str, *, peak: float, steps: int, warmup_steps: int, warmup_init: float, floor: float,
    every: int = 1,
) -> Schedule:
    """step -> learning rate, read at `step - step % every` so that it is held for `every`
    steps (`every` = the steps of one epoch gives PyTorch's per-epoch `CosineAnnealingLR`,
    Zoology's schedule).

    - "cosine": timm's `CosineLRScheduler` stepped per update (safari `cosine_warmup_timm`):
      linear warmup from `warmup_init` to `peak`, and a cosine from `peak` at step 0 to `floor`
      at `steps`, measured from step 0 (timm's default `warmup_prefix=False`, so the cosine
      does not restart after the warmup).
    - "linear": HF `get_linear_schedule_with_warmup`: warmup from `warmup_init`, then a straight
      line down to 0 at `steps`.
    - "constant": warmup, then `peak`.
    """
    steps = max(int(steps), 1)
    warm = max(int(warmup_steps), 0)

    def warmup(step):
        return warmup_init + (peak - warmup_init) * step / max(warm, 1)

    if kind == "cosine":
        def after(step):
            t = jnp.minimum(step, steps)
            return floor + 0.5 * (peak - floor) * (1.0 + jnp.cos(jnp.pi * t / steps))
    elif kind == "linear":
        def after(step):
            return peak * jnp.clip((steps - step) / max(steps - warm, 1), 0.0, 1.0)
    elif kind == "constant":
        def after(step):
            return jnp.full_like(jnp.asarray(step, jnp.float32), peak)
    else:
        raise ValueError(f"unknown schedule {kind!r}; expected cosine, linear or constant")

    every = max(int(every), 1)

    def schedule(step):
        step = jnp.asarray(step)
        step = (step - step % every).astype(jnp.float32)
        return jnp.where(step < warm, warmup(step), after(step)).astype(jnp.float32)

    return schedule


def ssm_lr(optim: OptimConfig) -> float:
    """Peak rate of the SSM dynamics: `lr_ssm`, or by default min(1e-3, lr)."""
    return optim.lr_ssm if optim.lr_ssm is not None else min(1e-3, optim.lr)


def is_one_group(optim: OptimConfig) -> bool:
    """Whether the SSM dynamics train like every other parameter (one AdamW, as in Zoology)."""
    return ssm_lr(optim) == optim.lr and optim.weight_decay_ssm == optim.weight_decay


def group_schedules(optim: OptimConfig, steps: int) -> dict[str, Schedule]:
    """The main ("rest") and SSM ("ssm") schedules; the SSM one is the main one rescaled."""
    lr_ssm = ssm_lr(optim)
    scale = lr_ssm / optim.lr
    common = dict(kind=optim.schedule, steps=steps, warmup_steps=optim.warmup_steps,
                  every=optim.schedule_every)
    return {
        "rest": make_schedule(
            peak=optim.lr, warmup_init=optim.warmup_init_lr, floor=optim.lr_min, **common
        ),
        "ssm": make_schedule(
            peak=lr_ssm,
            warmup_init=optim.warmup_init_lr * scale,
            floor=optim.lr_min * scale,
            **common,
        ),
    }


def make_optimizer(
    optim: OptimConfig, steps: int, model: models.LMConfig
) -> tuple[optax.GradientTransformation, Schedule]:
    """(transformation, main-group schedule) for an LM of config `model` (whose mixers name
    their SSM dynamics). Gradient clipping, if any, sees all groups at once."""
    schedules = group_schedules(optim, steps)
    adam = dict(b1=optim.b1, b2=optim.b2, eps=optim.eps)
    groups = optax.partition(
        {
            "rest": optax.adamw(schedules["rest"], weight_decay=optim.weight_decay, **adam),
            "ssm": optax.adamw(schedules["ssm"], weight_decay=optim.weight_decay_ssm, **adam),
        },
        functools.partial(models.param_labels, config=model),
    )
    if optim.clip_norm is not None:
        groups = optax.chain(optax.clip_by_global_norm(optim.clip_norm), groups)
    return groups, schedules["rest"]
