"""One run at a time in a work directory: an advisory lock on `<workdir>/lock`.

Two processes training into one directory would race (one's resume lists a checkpoint that the
other's retention then deletes). `workdir_lock` takes an exclusive `flock` on the lock file for
as long as the run lasts and writes its holder (pid, host, start time) there. The kernel drops
the lock when the holder exits in any way, `kill -9` included, so a lock left by a dead process
is simply taken over by the next run; the holder's line is only read to say who is busy.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from typing import Iterator

from h3_jax.train.config import ConfigError

LOCK = "lock"


class WorkdirBusy(ConfigError):
    """Another live process holds the work directory."""


def prepare_workdir(workdir: str) -> None:
    """Create `workdir` if needed; ConfigError naming it when it cannot be created or written."""
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"workdir {workdir}: cannot create it ({err.strerror})") from None
    if not os.access(workdir, os.W_OK | os.X_OK):
        raise ConfigError(f"workdir {workdir}: cannot write there (permission denied)")


@contextlib.contextmanager
def workdir_lock(workdir: str) -> Iterator[None]:
    """Hold `workdir` for this process; WorkdirBusy (exit 2 from the CLI) if a live process
    holds it already."""
    prepare_workdir(workdir)
    path = os.path.join(workdir, LOCK)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise ConfigError(f"workdir {workdir}: cannot write there ({err.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkdirBusy(f"workdir {workdir} is in use by {_holder(fd)}; wait for that run "
                              "to end, or stop it, or pass another --workdir") from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    """"pid P on host H (since T)" from the lock file, as far as it can be read."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode())
        return f"pid {holder['pid']} on host {holder['host']} (since {holder['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
