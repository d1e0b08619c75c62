"""Freed memory goes back to the system when the daemon trims (exporter/memory.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from exporter import memory

# Medium blocks (over pymalloc's 512 bytes, under malloc's mmap threshold) come from the heap;
# one kept at the end holds its top, so free() alone gives nothing back, as in the daemon.
SCRIPT = """
import os
from exporter import memory

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

base = rss()
blocks = [bytes(4000) for _ in range(25_000)]
grown = rss() - base
kept = blocks[::50] + [blocks[-1]]
del blocks
freed = rss()
trimmed = memory.trim()
after = rss()
print(grown, grown - (freed - base), freed - after, trimmed, len(kept))
"""


def test_trim_hands_freed_heap_memory_back() -> None:
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is glibc's; elsewhere the daemon does not trim")
    assert memory.available()
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    grown, back_on_free, back_on_trim = (int(v) for v in out[:3])
    trimmed = out[3]
    assert grown > 90_000_000
    # the premise: freeing alone keeps the pages (the top of the heap is still in use)
    assert back_on_free < grown * 0.2
    assert trimmed == "True"
    assert back_on_trim > grown * 0.8
