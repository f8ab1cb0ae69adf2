"""Let XLA:CPU reuse its buffers' memory instead of faulting fresh pages in on every call.

XLA:CPU allocates each call's temporaries afresh (640 MB for one train step of the 2-layer,
d_model 64 LM at L = 1024, batch 32) and frees them at the end. glibc serves blocks that large
with a fresh `mmap` and unmaps them on free, so every call pays the kernel for zero-filling
each page on first touch: about a third of the step. Told to serve every block from one heap
(no `mmap` for large blocks, one arena for all threads) and never to give the heap's top back
(no trimming), glibc hands the next call the pages the last one freed, already mapped.
Measured on a 2-core AMD EPYC (Zen 3), medians of fresh processes: a hand-written train step of
that LM ran at 50,000 tokens/s with glibc's defaults and 72,000 with this, against 77,000 for
the library's step as `h3-jax train` runs it (experiments/bench_user_script.py).

`import h3_jax` applies it (Linux with glibc; `H3_JAX_MALLOC=0` before the import turns it
off): it must come before XLA starts its threads. A thread that allocated before then keeps
an arena of its own, whose heaps grow only to 64 MB, so its large blocks are mapped afresh
whatever the settings say. An import after JAX's first computation therefore sets nothing and
warns once with the fix.
The price: memory freed by the process stays with the process (its resident size keeps its
peak), which is what a training process wants and what a long-lived process that shares a
machine may not. And that peak can be several times XLA's own: the three-seed MQAR step at
L = 128 (`experiments/mqar.py --recipe zoology`) has 3.3 GB of XLA temporaries at d_model 64 and
peaked at 10.2 GB resident with this; at d_model 128 (5.7 GB) a run reached 17.2 GB and was
killed for memory, where the same run without this stayed at 6.3 GB through its first epoch.
Sampled with mallinfo2 through a short run at L = 64, d_model 64 (1.5 GB of temporaries a
step), the heap held one step's block while training and grew by a second one at the first
evaluation, the first staying free beside it. A free stretch of more than 2 GiB at the heap's
top still goes back to the system (the trim threshold is a C int). Where memory is tight, opt
out.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import warnings

OPT_OUT = "H3_JAX_MALLOC"
# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_NEVER = 2**31 - 1
LATE = ("h3_jax was imported after JAX's first computation, so XLA's threads keep their own "
        "allocator arenas and every call faults its temporaries in afresh (about a third of a "
        "train step); import h3_jax before running anything in JAX (in a notebook: restart the "
        f"kernel), or set {OPT_OUT}=0 to silence this")


def jax_started() -> bool:
    """Whether JAX has already brought up a backend (and with it XLA's threads) in this process."""
    bridge = sys.modules.get("jax._src.xla_bridge")
    started = getattr(bridge, "backends_are_initialized", None)
    return bool(started and started())


def keep_freed_memory() -> bool:
    """Set glibc's allocator as described above; False where it does not apply (not Linux with
    glibc, H3_JAX_MALLOC=0, a C library that refuses a setting, or JAX already started, which
    warns)."""
    if os.environ.get(OPT_OUT) == "0":
        return False
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    if jax_started():
        warnings.warn(LATE, RuntimeWarning, stacklevel=2)
        return False
    try:
        libc = ctypes.CDLL(None)
        settings = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER), (_M_ARENA_MAX, 1))
        return all(libc.mallopt(param, value) == 1 for param, value in settings)
    except (OSError, AttributeError):
        return False
