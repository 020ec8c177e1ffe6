"""musicenv.allocator: large blocks come from the reusable heap instead of fresh kernel mappings."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from musicenv.allocator import keep_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.mallinfo2.restype = MallInfo2
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    before = libc.mallinfo2().hblks
    block = libc.malloc(16 * 1024 * 1024)
    print(libc.mallinfo2().hblks - before)
    """
)


def new_mapped_blocks_of_a_16_mib_malloc(mode: str) -> int:
    """How many more blocks glibc serves by ``mmap`` after one 16 MiB ``malloc`` in a fresh process
    with glibc's default thresholds (no ``MALLOC_*`` or ``GLIBC_TUNABLES`` settings inherited)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    result = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env)
    return int(result.stdout)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "mallinfo2"),
    reason="mallopt and mallinfo2 are glibc's (2.33 or later)",
)
def test_a_large_block_comes_from_the_heap_once_freed_memory_is_kept() -> None:
    assert new_mapped_blocks_of_a_16_mib_malloc("default") == 1  # what the thresholds change
    assert new_mapped_blocks_of_a_16_mib_malloc("keep") == 0
