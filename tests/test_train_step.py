"""The train step's helpers: the blocked argmax behind the accuracy equals jnp.argmax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from h3_jax.train.step import argmax_last


@pytest.mark.parametrize("width", [30, 128, 256, 384, 640, 8192])
def test_blocked_argmax_is_jnp_argmax_with_ties_and_infinities(width):
    x = np.array(jax.random.normal(jax.random.key(width), (3, 12, width)))
    x[0, 0] = 0.0  # every entry ties: the first index
    x[0, 1, [5, width - 1]] = 9.0  # a tie across blocks
    x[0, 2, [width // 2, width // 2 + 1]] = 9.0  # a tie inside one block
    x[0, 3, width - 1] = 9.0  # the maximum in the last block
    x[0, 5] = -np.inf
    x[0, 6, 7] = np.inf
    got = jax.jit(argmax_last)(jnp.asarray(x))
    np.testing.assert_array_equal(got, jnp.argmax(jnp.asarray(x), axis=-1))
    assert got[0, 1] == 5 and got[0, 2] == width // 2 and got[0, 0] == 0
