"""Data parallelism over every visible device: one `data` mesh axis, parameters replicated.

The same code runs on 1 or N devices: the batch axis is split over `data`, the state is
replicated, and `jax.jit` inserts the gradient all-reduce. Multi-host: call
`jax.distributed.initialize()` (arguments auto-detected on TPU pods, Slurm and Open MPI) before
anything else touches JAX -- `h3-jax train --distributed` does that -- then `jax.devices()`
lists the devices of all hosts. Every process builds the same global batch (batches are a pure
function of the step) and `make_array_from_callback` hands each device its rows.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from h3_jax.train.config import ConfigError


def make_data_mesh() -> Mesh:
    # Auto axes: the compiler propagates the batch sharding through the model, so model code
    # needs no sharding annotations (jax.make_mesh defaults to Explicit axes).
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def replicate(tree: Any, mesh: Mesh) -> Any:
    return jax.device_put(tree, replicated(mesh))


def shard_batch(tree: Any, mesh: Mesh, batch_axis: int = 0) -> Any:
    """Put host numpy arrays on the mesh, splitting axis `batch_axis` over `data`."""

    def put(x: np.ndarray) -> jax.Array:
        spec = P(*([None] * batch_axis), "data")
        sharding = NamedSharding(mesh, spec)
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree)


def check_divisible(batch_size: int, mesh: Mesh, name: str) -> None:
    n = mesh.devices.size
    if batch_size % n:
        raise ConfigError(f"{name}={batch_size} does not split evenly over {n} devices")
