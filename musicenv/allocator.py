"""Keep freed memory in the process, so that the model's large temporary arrays are not paid for twice.

Scoring a pool of candidates for a batch of sessions makes temporary arrays of several
megabytes (a batch of 64 sessions x 100 candidates x 640 hidden units is 16 MB), freed a moment
later. glibc's ``malloc`` serves blocks that large with ``mmap`` and returns them to the kernel
on ``free``, so the next call maps fresh pages and the kernel zeroes every one of them on first
touch. On the default world, stepping ``planner_learned`` over 256 held-out episodes spent a
fifth of its time in the kernel doing that (9.6 s user + 1.7 to 2.3 s system; with the memory
kept: 9.5 s + 0.0 s).

:func:`keep_freed_memory` raises ``malloc``'s thresholds so that freed blocks stay in the
process and are reused. ``train.py`` and ``eval.py`` call it at start; a program of your own
that steps the learned world in large batches can too. The cost is that the process's resident
memory stays at its peak instead of shrinking after it.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
"""``mallopt``'s parameter: free memory at the top of the heap above this many bytes is returned."""
M_MMAP_THRESHOLD = -3
"""``mallopt``'s parameter: blocks of at least this many bytes are served by ``mmap``."""
LARGEST_HEAP_BLOCK = 32 * 1024 * 1024
"""The largest ``M_MMAP_THRESHOLD`` glibc accepts on 64-bit systems (32 MiB)."""


def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed blocks of up to 32 MiB for reuse (see the module docstring).

    Returns:
        True when the thresholds were set; False where there is nothing to set (not Linux, or a
        C library without ``mallopt``, such as musl): the process then runs as before.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, LARGEST_HEAP_BLOCK)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
