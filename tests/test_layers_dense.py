"""fused_dense: the same parameters, init and outputs as one `dense` layer per name."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from h3_jax.layers.dense import DenseParams, Shared, dense, fused_dense

NAMES = ("q_proj", "k_proj", "v_proj")


class Fused(nn.Module):
    config: Shared

    @nn.compact
    def __call__(self, x):
        layers = [DenseParams(self.config, 12, name=name) for name in NAMES]
        return fused_dense(self.config, x, layers)


class Separate(nn.Module):
    config: Shared

    @nn.compact
    def __call__(self, x):
        return [dense(self.config, 12, name)(x) for name in NAMES]


def test_fused_dense_equals_one_dense_per_name():
    config = Shared(d_model=16)
    x = jax.random.normal(jax.random.key(0), (2, 5, 16))
    fused_params = Fused(config).init(jax.random.key(1), x)["params"]
    separate_params = Separate(config).init(jax.random.key(1), x)["params"]
    # Same names, shapes, and values: the fused layer draws from the same RNG streams.
    assert jax.tree.structure(fused_params) == jax.tree.structure(separate_params)
    for a, b in zip(jax.tree.leaves(fused_params), jax.tree.leaves(separate_params)):
        np.testing.assert_array_equal(a, b)
    params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape),
                          fused_params)  # nonzero biases too
    with jax.default_matmul_precision("highest"):
        fused = Fused(config).apply({"params": params}, x)
        separate = Separate(config).apply({"params": params}, x)
        for f, s in zip(fused, separate):
            np.testing.assert_allclose(f, s, rtol=1e-6, atol=1e-6)
        grads = [jax.grad(lambda p, m=m: sum((y * jnp.arange(12)).sum()
                                             for y in m(config).apply({"params": p}, x)))(params)
                 for m in (Fused, Separate)]
    for a, b in zip(*map(jax.tree.leaves, grads)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
