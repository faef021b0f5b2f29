"""Process-wide settings that make CPU training and rollouts faster on small machines."""

from __future__ import annotations

import ctypes
import os
import platform

# glibc mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD = 1 << 30  # mallopt takes a C int
KEEP_FREED = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}


def keep_freed_memory() -> bool:
    """Make glibc's malloc serve large blocks from its heap and keep what is freed.

    By default glibc maps every block larger than its mmap threshold (32 MiB at most) fresh
    from the kernel and unmaps it when freed. A torch forward pass over 64 frames x 2 cameras
    at 128 px allocates activations of 60 MB and more per layer, so every layer pays for the
    kernel zeroing new pages: on the 2-core development machine, encoding the SFT feature
    cache spent more time in the kernel than in torch (see `benchmarks/bench_malloc.py` and
    docs/BENCHMARKS.md). The cost is memory: the heap keeps its peak size.

    Applies to this process (`mallopt`) and, through the environment, to the worker
    processes it starts. A user who sets MALLOC_MMAP_MAX_ keeps their setting (glibc's
    default is 65536). Returns whether the setting is now in force here: False off glibc.
    """
    if "MALLOC_MMAP_MAX_" in os.environ or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    done = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if done:
        os.environ.update(KEEP_FREED)
    return done
