"""
What the two allocators under the Python heap hold, read from inside a process: the
figures `make proof`'s soak records from its server (proof/traced_server.py), and the
tests read from their own process.
"""

from __future__ import annotations

import ctypes
import math
import os
import re
import sys
import tempfile
from xml.etree import ElementTree


def glibc_stats() -> str:
    """
    What glibc malloc holds in all its arenas, from malloc_info(3): the main one (brk)
    and one per worker thread, up to eight per CPU. mallinfo(3) would report the main
    arena only, and the pool's threads allocate in their own.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.fopen.restype = ctypes.c_void_p
        libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        libc.fclose.argtypes = [ctypes.c_void_p]
        libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    except (OSError, AttributeError):
        return "glibc: malloc_info not available"
    with tempfile.NamedTemporaryFile(suffix=".xml") as report:
        stream = libc.fopen(os.fsencode(report.name), b"w")
        if not stream:
            return "glibc: malloc_info not available"
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        root = ElementTree.parse(report.name).getroot()

    def size(kind: str, name: str) -> int:
        found = root.find(f"{kind}[@type='{name}']")
        return 0 if found is None else int(found.get("size", "0"))

    arenas = len(root.findall("heap"))
    system, mmapped = size("system", "current"), size("total", "mmap")
    free = size("total", "fast") + size("total", "rest")
    return (
        f"glibc: {arenas} arenas: arena {system // 1024} KiB, mmapped {mmapped // 1024} KiB,"
        f" in use {(system + mmapped - free) // 1024} KiB, free {free // 1024} KiB"
    )


def allocator_stats() -> str:
    """
    What the two allocators under the Python heap hold: pymalloc's arenas (small objects)
    and glibc malloc's arenas (everything larger, and C code), neither of which
    tracemalloc sees as such: it counts the blocks handed out, not what they pin.
    """
    lines = [glibc_stats()]
    # sys._debugmallocstats writes to the C stderr: borrow fd 2 for a moment.
    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    for line in text.splitlines():
        if line.startswith(
            (
                "# arenas allocated current",
                "# bytes in allocated blocks",
                "# bytes in available blocks",
                "Total",
            )
        ):
            lines.append("pymalloc: " + " ".join(line.split()))
    return "\n".join(lines) + "\n"


def allocators_mib(text: str) -> tuple[float, float, float]:
    """
    From an `allocator_stats()` text: MiB in pymalloc's arenas, in glibc malloc's
    arenas (the main one and the threads', and mmapped chunks), and of that in use.
    """
    arenas = re.search(r"^pymalloc: Total = ([\d,]+)", text, re.MULTILINE)
    glibc = re.search(r"arena (\d+) KiB, mmapped (\d+) KiB, in use (\d+) KiB", text)
    if arenas is None or glibc is None:
        return (math.nan, math.nan, math.nan)
    heap = (int(glibc[1]) + int(glibc[2])) / 1024
    return (int(arenas[1].replace(",", "")) / 2**20, heap, int(glibc[3]) / 1024)
