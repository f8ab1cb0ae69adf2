"""A thin wrapper over orbax's `CheckpointManager`, so switching orbax APIs touches one file.

Each checkpoint holds two items: `state` (the train-state pytree, StandardSave) and `meta`
(JSON: step, eval accuracy if one was measured, the open metrics window). Retention keeps the
latest `keep` checkpoints and, besides them, the one with the best eval accuracy.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (a full disk, a lost mount); orbax writes each one to
    a temporary directory and renames it when complete, so the earlier ones stay loadable."""


@contextlib.contextmanager
def _writing(what: str) -> Iterator[None]:
    # orbax raises a write failure as OSError, or as ValueError("RESOURCE_EXHAUSTED: ...") from
    # tensorstore, here or at the next save / wait (saves are asynchronous).
    try:
        yield
    except (OSError, ValueError) as err:
        message = (str(err).splitlines() or [type(err).__name__])[0]
        if "No space left on device" in str(err):
            message = "no space left on device"
        raise CheckpointWriteError(f"{what} failed: {message[:300]}") from err


# What a read-only manager says of itself on opening: it is opened read-only on purpose.
_READ_ONLY_NOTICES = ("read_only=True, setting save_interval_steps", "Given directory is read only")


class _OrbaxNoiseFilter(logging.Filter):
    """Drops orbax's ERROR records (its background threads log each failed write with a
    traceback: every failure they describe reaches the caller as a CheckpointWriteError) and
    the notices a read-only manager logs when it opens."""

    def filter(self, record: logging.LogRecord) -> bool:
        if f"{os.sep}orbax{os.sep}" not in record.pathname:
            return True
        if record.levelno >= logging.ERROR:
            return False
        message = record.getMessage()
        return not any(notice in message for notice in _READ_ONLY_NOTICES)


_absl_logger = logging.getLogger("absl")
if not any(isinstance(f, _OrbaxNoiseFilter) for f in _absl_logger.filters):
    _absl_logger.addFilter(_OrbaxNoiseFilter())


def _accuracy(metrics: Any) -> float:
    return float(metrics["accuracy"])


class Checkpoints:
    def __init__(self, directory: str, keep: int = 3, *, read_only: bool = False):
        preservation = policies.AnyPreservationPolicy([
            policies.LatestN(n=keep),
            policies.BestN(
                get_metric_fn=_accuracy, reverse=False, n=1,
                keep_checkpoints_without_metrics=False,
            ),
        ])
        options = ocp.CheckpointManagerOptions(
            preservation_policy=preservation,
            cleanup_tmp_directories=not read_only,
            read_only=read_only,
            create=not read_only,
        )
        self.directory = os.path.abspath(directory)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        """Start an (asynchronous) save; `meta["eval_accuracy"]`, if set, ranks it for "best"."""
        accuracy = meta.get("eval_accuracy")
        with _writing(f"writing the checkpoint of step {step} (or the one before)"):
            self.manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
                ),
                metrics=None if accuracy is None else {"accuracy": accuracy},
                force=True,
            )

    def steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def best_step(self) -> int | None:
        """The kept step with the highest eval accuracy (None if no checkpoint has one)."""
        best, best_acc = None, float("-inf")
        for step in self.steps():
            accuracy = self.read_meta(step).get("eval_accuracy")
            if accuracy is not None and accuracy > best_acc:
                best, best_acc = step, accuracy
        return best

    def read_meta(self, step: int) -> dict[str, Any]:
        restored = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(restored["meta"])

    def restore(self, step: int, like: Any) -> tuple[Any, dict[str, Any]]:
        """(state, meta) at `step`, with the shapes, dtypes and shardings of the pytree `like`."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
            ),
        )
        return restored["state"], dict(restored["meta"])

    def wait(self) -> None:
        with _writing("writing the last checkpoint"):
            self.manager.wait_until_finished()

    def close(self) -> None:
        with _writing("writing the last checkpoint"):
            self.manager.close()
