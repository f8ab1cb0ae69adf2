"""Whether the length axis is split over devices, and running a function per length shard.

Sequence parallelism is switched on by the mesh alone: a model traced under `jax.set_mesh` with
a `seq` axis of size S > 1 (as `train.seq_shards=S` sets up) splits every sequence's length
over it. Layers that are pointwise in time need nothing; the SSM layers run their sequence
views per shard through `over_length` and exchange states with `h3_jax.ssm.seq_parallel`.
Everything else (attention, a user's mixer) stays correct: XLA gathers what it needs.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
from jax.sharding import PartitionSpec as P

SEQ_AXIS = "seq"
DATA_AXIS = "data"


def seq_shards() -> int:
    """S, the number of length shards of the mesh in context (1 without one, or inside a
    function that already runs per shard)."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or SEQ_AXIS not in mesh.axis_names or SEQ_AXIS in mesh.manual_axes:
        return 1
    return mesh.shape[SEQ_AXIS]


def over_length(fn: Callable[..., jax.Array], shared: Any, *sequences: jax.Array) -> jax.Array:
    """fn(shared, *local sequences) on every device; `sequences` (B, ..., L, X) are split on L
    over `seq` (and on B over `data`), `shared` (a pytree, e.g. an SSM's parameters) is
    replicated. The result has the layout of the first sequence."""
    names = jax.sharding.get_abstract_mesh().axis_names

    def spec(x: jax.Array) -> P:
        axes: list[str | None] = [None] * x.ndim
        axes[-2] = SEQ_AXIS
        if DATA_AXIS in names and x.ndim >= 3:
            axes[0] = DATA_AXIS
        return P(*axes)

    in_specs = (P(), *map(spec, sequences))
    return jax.shard_map(fn, in_specs=in_specs, out_specs=spec(sequences[0]))(shared, *sequences)
