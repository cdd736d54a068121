"""What the benchmarks read of a server from /proc (proc(5)), and a free loopback port.

A server is read as a process tree, itself and its live descendants: twistedspy runs its
processes page in a child process (`python -m twistedspy.child`), whose memory and CPU
the server's own /proc entry leaves out, so reading one process would flatter it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A loopback port nothing listens on now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class Usage:
    """One process at one reading."""

    pid: int
    #: resident memory (VmRSS)
    rss_kib: int
    #: utime + stime + cutime + cstime
    cpu_seconds: float


def tree(pid: int) -> list[Usage]:
    """
    `pid` first, then every live descendant, found by their ppid at this reading.

    A child's time reaches its parent's cutime + cstime only when it is reaped, so each
    live process counts its utime + stime (/proc/PID/stat fields 14 and 15) and cutime +
    cstime (16 and 17): a descendant that ended and was reaped between readings still
    counts, once. RSS is field 24 (the pages VmRSS counts).
    """
    children: dict[int, list[int]] = {}
    readings: dict[int, Usage] = {}
    page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            data = (entry / "stat").read_bytes()
        except OSError:  # gone since the listing
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        number = int(entry.name)
        children.setdefault(int(fields[1]), []).append(number)
        ticks = sum(int(f) for f in fields[11:15])
        readings[number] = Usage(number, int(fields[21]) * page_kib, ticks / TICKS)
    if pid not in readings:
        raise SystemExit(f"no process {pid}")
    found, pending = [], [pid]
    while pending:
        number = pending.pop(0)
        if number in readings:
            found.append(readings[number])
            pending += sorted(children.get(number, []))
    return found


def cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid` and its live descendants, with the reaped ones' (see `tree`)."""
    return sum(usage.cpu_seconds for usage in tree(pid))


def rss_kib(pid: int) -> int:
    """Resident KiB of `pid` and its live descendants, summed (shared pages count twice)."""
    return sum(usage.rss_kib for usage in tree(pid))
