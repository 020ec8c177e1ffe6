"""musicenv.allocator: large blocks come from the reusable heap instead of fresh kernel mappings."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent(
    """
    import ctypes, ctypes.util, sys
    from musicenv.allocator import keep_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
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
    """How many more blocks glibc serves by ``mmap`` after one 16 MiB ``malloc`` in a fresh process."""
    result = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(result.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_a_large_block_comes_from_the_heap_once_freed_memory_is_kept() -> None:
    try:
        assert new_mapped_blocks_of_a_16_mib_malloc("default") == 1  # what the thresholds change
    except subprocess.CalledProcessError as error:
        pytest.skip(f"no glibc mallinfo2 here: {error.stderr.strip().splitlines()[-1]}")
    assert new_mapped_blocks_of_a_16_mib_malloc("keep") == 0
