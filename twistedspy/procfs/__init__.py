# -*- test-case-name: tests.test_procfs -*-
"""Every reading of the kernel's /proc and /sys files, in one layer (as prometheus/procfs
is for node_exporter's collectors).

Each reader takes the root it reads under (`/proc` by default) as a parameter, so that
tests point it at the fixture tree in tests/fixtures/; each parser is a pure function of
the file's bytes or text; results are frozen dataclasses. Nothing here imports Twisted,
renders a page or names a Prometheus family: the modules do that with what this layer
returns. The traps of /proc are handled once, here (processes.py: names with spaces,
parentheses and newlines, processes that vanish mid-scan, kernel threads; every parser:
fields that newer kernels append).
"""

from __future__ import annotations

import os
from typing import Final

#: where procfs is mounted on every Linux system we serve (proc(5))
PROC: Final = "/proc"
#: where sysfs is mounted (sysfs(5))
SYS: Final = "/sys"


def read_bytes(path: str, directory: int | None = None) -> bytes:
    """
    A whole /proc file. `os.open`/`os.read`, not `open()` or pathlib: no buffered reader
    to build and no interned name parts, on the hot path of a process scan (a thousand
    processes, three files each). With `directory`, an open directory's descriptor,
    `path` is taken from there (openat(2)).
    """
    fd = os.open(path, os.O_RDONLY, dir_fd=directory)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_record(path: str) -> bytes:
    """
    A small /proc file made in one piece, such as /proc/PID/stat or status, with one
    `read(2)`: the kernel builds such a file whole on the first read (a `single_open`
    seq_file, fs/seq_file.c), so a read that does not fill the buffer has it all and the
    read that would return the end of file is saved. A scan of a thousand processes
    reads two such files each.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, _RECORD)
        if len(data) < _RECORD:
            return data
        chunks = [data]
        while chunk := os.read(fd, _RECORD):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


#: bytes asked for by `read_record`'s first read; /proc/PID/status is under 2 KiB on a
#: machine with a few hundred CPUs
_RECORD: Final = 16384


def read_text(path: str, directory: int | None = None) -> str:
    """A whole /proc file as text; bytes that are not UTF-8 kept as `\\xNN` escapes."""
    return read_bytes(path, directory).decode("utf-8", "backslashreplace")


def read_int(path: str) -> int:
    """A file holding one integer, as /proc/sys and /sys attributes do."""
    return int(read_bytes(path))
