"""Data and sequence parallelism over every visible device: a (`data`, `seq`) mesh, parameters
replicated.

The same code runs on 1 or N devices: the batch axis is split over `data`, each sequence's
length over `seq` (`train.seq_shards`, 1 unless set), the state is replicated, and `jax.jit`
inserts the gradient all-reduce. The SSM layers see the `seq` axis through the mesh in context
(`with_mesh`) and pass their state between length shards (h3_jax.layers.seq_mesh).
Multi-process: every process runs the same loop (`h3-jax launch`, or `--distributed` on a
cluster; see h3_jax/train/processes.py), `jax.devices()` lists the devices of all of them,
every process builds the same global batch (batches are a pure function of the step) and
`make_array_from_callback` hands each device its part.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from h3_jax.layers.seq_mesh import DATA_AXIS, SEQ_AXIS
from h3_jax.train.config import ConfigError


def make_mesh(seq_shards: int = 1) -> Mesh:
    """All devices as (data = N / seq_shards, seq = seq_shards)."""
    n = jax.device_count()
    if n % seq_shards:
        raise ConfigError(f"train.seq_shards={seq_shards} does not divide the {n} devices")
    # Auto axes: the compiler propagates the shardings through the model, so model code
    # needs no sharding annotations (jax.make_mesh defaults to Explicit axes).
    return jax.make_mesh((n // seq_shards, seq_shards), (DATA_AXIS, SEQ_AXIS),
                         axis_types=(AxisType.Auto, AxisType.Auto))


def with_mesh(mesh: Mesh, fn: Callable) -> Callable:
    """`fn` called (and so traced) with `mesh` in context."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.set_mesh(mesh):
            return fn(*args, **kwargs)

    return wrapped


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def replicate(tree: Any, mesh: Mesh) -> Any:
    return jax.device_put(tree, replicated(mesh))


def shard_batch(tree: Any, mesh: Mesh, batch_axis: int = 0) -> Any:
    """Put host numpy arrays on the mesh: axis `batch_axis` split over `data`, the axis after
    it (the length) over `seq`."""

    def put(x: np.ndarray) -> jax.Array:
        spec = [None] * batch_axis + [DATA_AXIS] + ([SEQ_AXIS] if x.ndim > batch_axis + 1 else [])
        sharding = NamedSharding(mesh, P(*spec))
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree)


def data_shards(mesh: Mesh) -> int:
    return mesh.shape[DATA_AXIS]


def check_divisible(batch_size: int, mesh: Mesh, name: str) -> None:
    n = data_shards(mesh)
    if batch_size % n:
        raise ConfigError(f"{name}={batch_size} does not split evenly over {n} devices")
