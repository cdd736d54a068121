# -*- test-case-name: tests.test_procfs -*-
"""/proc/sys (proc(5)): the kernel's settings and the system-wide counters it keeps there
(file handles, entropy, connection tracking, process and thread limits)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from twistedspy.procfs import PROC, read_int, read_text


def read_domainname(proc: str = PROC) -> str:
    """The NIS domain name, what uname(2) calls `domainname` (`(none)` when unset)."""
    return read_text(f"{proc}/sys/kernel/domainname").strip()


@dataclass(frozen=True, slots=True)
class FileHandles:
    """/proc/sys/fs/file-nr: handles allocated now, and the most the kernel allows."""

    allocated: int
    maximum: int


def parse_file_nr(text: str) -> FileHandles:
    # proc(5) /proc/sys/fs/file-nr: allocated, free (always 0 since 2.6), maximum
    allocated, _, maximum = text.split()[:3]
    return FileHandles(int(allocated), int(maximum))


def read_file_handles(proc: str = PROC) -> FileHandles:
    return parse_file_nr(read_text(f"{proc}/sys/fs/file-nr"))


@dataclass(frozen=True, slots=True)
class Entropy:
    """random(4): bits of entropy the kernel counts as available, and its pool's size."""

    available_bits: int
    pool_size_bits: int


def read_entropy(proc: str = PROC) -> Entropy:
    random = f"{proc}/sys/kernel/random"
    return Entropy(read_int(f"{random}/entropy_avail"), read_int(f"{random}/poolsize"))


@dataclass(frozen=True, slots=True)
class ProcessLimits:
    """The largest PID plus one (`pid_max`) and the most threads (`threads-max`)."""

    pid_max: int
    threads_max: int


def read_process_limits(proc: str = PROC) -> ProcessLimits:
    kernel = f"{proc}/sys/kernel"
    return ProcessLimits(read_int(f"{kernel}/pid_max"), read_int(f"{kernel}/threads-max"))


#: the per-CPU columns of /proc/net/stat/nf_conntrack that node_exporter reports
CONNTRACK_STATS: Final = (
    "found", "invalid", "ignore", "insert", "insert_failed", "drop", "early_drop",
    "search_restart",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Conntrack:
    """Netfilter's connection tracking: entries, their limit, and statistics summed over CPUs."""

    entries: int
    limit: int
    #: each of CONNTRACK_STATS by name; a column this kernel lacks is absent
    stats: dict[str, int]


def parse_conntrack_stat(text: str) -> dict[str, int]:
    """
    /proc/net/stat/nf_conntrack: a heading of column names, then one line of hexadecimal
    counters per CPU (nf_conntrack_standalone.c); summed over the CPUs.
    """
    lines = text.split("\n")
    names = lines[0].split()
    totals = dict.fromkeys(names, 0)
    for line in lines[1:]:
        for name, value in zip(names, line.split(), strict=False):
            totals[name] += int(value, 16)
    return {name: totals[name] for name in CONNTRACK_STATS if name in totals}


def read_conntrack(proc: str = PROC) -> Conntrack | None:
    """None when netfilter's conntrack module is not loaded (no such files)."""
    netfilter = f"{proc}/sys/net/netfilter"
    try:
        entries = read_int(f"{netfilter}/nf_conntrack_count")
    except FileNotFoundError:
        return None
    limit = read_int(f"{netfilter}/nf_conntrack_max")
    try:
        stats = parse_conntrack_stat(read_text(f"{proc}/net/stat/nf_conntrack"))
    except FileNotFoundError:
        stats = {}
    return Conntrack(entries, limit, stats)


def parse_limit(text: str, name: str) -> float:
    """
    One soft limit of a /proc/PID/limits table (`Max address space  unlimited ...`), as
    a number; `unlimited` is RLIM_INFINITY, 2**64 - 1, as node_exporter reports it.
    """
    for line in text.splitlines():
        if line.startswith(name):
            soft = line[len(name) :].split()[0]
            return float(2**64 - 1) if soft == "unlimited" else float(soft)
    raise ValueError(f"no {name!r} line in the limits")


def read_own_address_space_limit(proc: str = PROC) -> float:
    """This process's RLIMIT_AS (getrlimit(2)), as /proc/self/limits shows it."""
    return parse_limit(read_text(f"{proc}/self/limits"), "Max address space")
