"""What the processes of a multi-process run agree on.

A run of N processes (`jax.distributed.initialize`, one per host or, on one machine, one per
group of CPU devices) executes the same loop in lockstep: every process must take the same
branch at every step, or one of them waits forever in a collective. Decisions that come from
the outside world (a signal, the wall clock) are therefore made together; with one process
these functions cost nothing.
"""

from __future__ import annotations

import jax
import numpy as np

from h3_jax.train.config import ConfigError

SHUTDOWN_TIMEOUT_S = 60


def is_main() -> bool:
    """Process 0, the one that writes the run's files (config, metrics, summary)."""
    return jax.process_index() == 0


def count() -> int:
    """Processes in the run (1 unless started as one of several)."""
    return jax.process_count()


def any_process(flag: bool) -> bool:
    """True on every process if `flag` is true on any of them (e.g. one received SIGTERM)."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.asarray(flag, np.int32))))


def first_signal(signal: int | None) -> int | None:
    """The signal number that stopped some process (the lowest), the same on every process."""
    if jax.process_count() == 1:
        return signal
    from jax.experimental import multihost_utils

    got = np.asarray(multihost_utils.process_allgather(np.asarray(signal or 0, np.int32)))
    got = got[got > 0]
    return int(got.min()) if got.size else None


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """Join a multi-process run: `jax.distributed.initialize` with the given arguments; the ones
    left None are read from the cluster (SLURM, Open MPI, Cloud TPU; see the README). On CPU the
    processes exchange gradients through gloo. Call it before anything else touches JAX."""
    given = [v is not None for v in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise ConfigError("--coordinator, --num-processes and --process-id go together "
                          "(or give none of them and let the cluster say)")
    if num_processes is not None and not 0 <= process_id < num_processes:
        raise ConfigError(f"--process-id={process_id} must be in [0, {num_processes})")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        # A short shutdown wait: at a normal end the processes arrive within seconds of each
        # other, and after a crash the survivors should not hang for JAX's default 5 minutes.
        jax.distributed.initialize(coordinator, num_processes, process_id,
                                   shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S)
    except (RuntimeError, ValueError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"could not join the multi-process run: {first[:300]}") from None
