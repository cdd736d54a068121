# -*- test-case-name: tests.test_procfs -*-
"""/proc/PID/{stat,status,cmdline} (proc(5)): every process, as `ps` sees it.

Read directly, not through psutil: psutil's full listing costs about 90 ms per 1000
processes where `ps` needs 28 ms. Three reads per process with `os.open`/`os.read` keep
a scan close to `ps` (bench/processes_speed.py, 1069 processes on 2 CPUs: ps 52 ms, this
reader with the table built 54 ms, psutil 105 ms).

The traps, handled here once:
- the name (`comm`, stat field 2) may hold spaces, parentheses, newlines and `) (`: it
  ends at the LAST ')' of the file, since nothing after it can hold one;
- a process may exit between listing /proc and reading its files (ENOENT, or ESRCH for
  one that is a zombie being reaped): it is left out of the scan, as psutil and ps do;
- a file we may not read (another user's, under `hidepid`) leaves its fields None;
- kernel threads have no memory of their own (no VmRSS line) and an empty command line;
- newer kernels append fields to stat and lines to status: fields are found by position
  from the name's end, lines by their key.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from twistedspy.procfs import PROC, read_bytes
from twistedspy.procfs.stat import parse_boot_time


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """One process as seen at one moment; None where the kernel would not tell us."""

    pid: int
    name: str
    #: the one-letter state of proc(5) /proc/PID/stat field 3: R, S, D, Z, T, t, X, I
    state: str
    user: str | None
    group: str | None
    rss: int | None
    #: user + system CPU time used so far, in seconds
    cpu_seconds: float | None
    threads: int | None
    #: seconds since the epoch
    start_time: float | None
    #: the argument vector; empty for kernel threads and zombies
    cmdline: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class ProcessSnapshot:
    """Every process at one moment of a monotonic clock (seconds)."""

    taken_at: float
    processes: tuple[ProcessSample, ...]


@dataclass(frozen=True, slots=True)
class StatFields:
    """The fields of /proc/PID/stat a scan uses."""

    name: str
    state: str
    #: utime + stime, in clock ticks (fields 14 and 15)
    cpu_ticks: int
    threads: int
    #: clock ticks after boot (field 22)
    start_ticks: int
    #: pages (field 24)
    rss_pages: int


def split_stat(data: bytes) -> tuple[str, list[bytes]]:
    """
    /proc/PID/stat as its name and the fields after it: field N (proc(5), from 1) is
    `rest[N - 3]`. The name (field 2) sits in parentheses and may itself hold spaces,
    newlines and ')', so it ends at the LAST ')' (psutil does the same).
    """
    open_paren = data.index(b"(")
    close_paren = data.rindex(b")")
    name = data[open_paren + 1 : close_paren].decode("utf-8", "backslashreplace")
    return name, data[close_paren + 2 :].split()


def parse_stat(data: bytes) -> StatFields:
    """Parse /proc/PID/stat (see `split_stat`)."""
    name, rest = split_stat(data)
    return StatFields(
        name=name,
        state=rest[0].decode("ascii", "replace"),
        cpu_ticks=int(rest[11]) + int(rest[12]),
        threads=int(rest[17]),
        start_ticks=int(rest[19]),
        rss_pages=int(rest[21]),
    )


_UID_LINE: Final = re.compile(rb"^Uid:\s+\d+\s+(\d+)", re.MULTILINE)
_GID_LINE: Final = re.compile(rb"^Gid:\s+\d+\s+(\d+)", re.MULTILINE)
_RSS_LINE: Final = re.compile(rb"^VmRSS:\s+(\d+) kB", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class StatusFields:
    """The fields of /proc/PID/status a scan uses."""

    #: effective ids, what `ps -o user,group` shows
    uid: int | None
    gid: int | None
    #: VmRSS in bytes; None for kernel threads, which have no memory of their own
    rss: int | None


def parse_status(data: bytes) -> StatusFields:
    """
    Parse /proc/PID/status. RSS comes from here rather than stat's field 24, which
    lags behind on kernels with split RSS counting (proc(5): "inaccurate"); ps reads
    VmRSS too. The name is not taken from here: status escapes a newline in it as
    `\\n`, where stat has the name as the process set it.
    """
    uid = _UID_LINE.search(data)
    gid = _GID_LINE.search(data)
    rss = _RSS_LINE.search(data)
    return StatusFields(
        uid=int(uid.group(1)) if uid else None,
        gid=int(gid.group(1)) if gid else None,
        rss=int(rss.group(1)) * 1024 if rss else None,
    )


def parse_cmdline(data: bytes) -> tuple[str, ...]:
    """The NUL-separated argument vector of /proc/PID/cmdline."""
    if not data:
        return ()
    if data.endswith(b"\0"):
        data = data[:-1]
    return tuple(arg.decode("utf-8", "backslashreplace") for arg in data.split(b"\0"))


def _named(known: dict[int, str], look_up: Callable[[int], str], number: int | None) -> str | None:
    """A user or group id's name, looked up once; the number itself if it has none."""
    if number is None:
        return None
    name = known.get(number)
    if name is None:
        try:
            name = look_up(number)
        except KeyError:
            name = str(number)
        known[number] = name
    return name


class ProcfsProcessSource:
    """
    Reads every process under `proc`; uid and gid names are looked up once each
    (a uid without a name is shown as the number, as ps shows it). `cmdline=False`
    skips the third read per process for callers that need no command line (the
    /metrics sums), leaving `cmdline` None.

    `status=False` (the /metrics sums, with `cmdline=False`) reads only
    /proc/PID/stat, half the cost of a scan: the owner is then the stat file's (proc(5):
    the effective ids, but root for a process that is not dumpable, a setuid program
    say), and the resident memory stat's own page count, which lags VmRSS a little on
    kernels with split RSS counting.
    """

    def __init__(self, proc: str = PROC, *, cmdline: bool = True, status: bool = True) -> None:
        self._proc = proc
        self._with_cmdline = cmdline
        self._with_status = status
        self._ticks = os.sysconf("SC_CLK_TCK")
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._boot = parse_boot_time(read_bytes(f"{proc}/stat"))
        self._users: dict[int, str] = {}
        self._groups: dict[int, str] = {}

    def _user(self, uid: int | None) -> str | None:
        return _named(self._users, lambda n: pwd.getpwuid(n).pw_name, uid)

    def _group(self, gid: int | None) -> str | None:
        return _named(self._groups, lambda n: grp.getgrgid(n).gr_name, gid)

    def _stat_and_owner(self, path: str) -> tuple[StatFields, StatusFields]:
        """/proc/PID/stat, and its owner from the same open file."""
        fd = os.open(path, os.O_RDONLY)
        try:
            owner = os.fstat(fd)
            data = os.read(fd, 4096)  # the longest stat line is under 1 KiB
        finally:
            os.close(fd)
        stat = parse_stat(data)
        return stat, StatusFields(owner.st_uid, owner.st_gid, stat.rss_pages * self._page)

    def _sample(self, pid: int) -> ProcessSample | None:
        base = f"{self._proc}/{pid}/"
        if not self._with_status:
            try:
                stat, status = self._stat_and_owner(base + "stat")
            except (FileNotFoundError, ProcessLookupError):
                return None  # exited during the scan
        else:
            try:
                stat = parse_stat(read_bytes(base + "stat"))
            except (FileNotFoundError, ProcessLookupError):
                return None  # exited during the scan
            try:
                status = parse_status(read_bytes(base + "status"))
            except (FileNotFoundError, ProcessLookupError):
                return None
            except PermissionError:
                status = StatusFields(None, None, stat.rss_pages * self._page)
        cmdline: tuple[str, ...] | None = None
        try:
            if self._with_cmdline:
                cmdline = parse_cmdline(read_bytes(base + "cmdline"))
        except (FileNotFoundError, ProcessLookupError):
            return None
        except PermissionError:
            cmdline = None
        return ProcessSample(
            pid=pid,
            name=stat.name,
            state=stat.state,
            user=self._user(status.uid),
            group=self._group(status.gid),
            rss=status.rss if status.rss is not None else stat.rss_pages * self._page,
            cpu_seconds=stat.cpu_ticks / self._ticks,
            threads=stat.threads,
            start_time=self._boot + stat.start_ticks / self._ticks,
            cmdline=cmdline,
        )

    def __call__(self) -> ProcessSnapshot:
        taken_at = time.monotonic()
        samples = []
        # Plain strings, not pathlib: this loop is the hot path (module docstring).
        for entry in os.listdir(self._proc):  # noqa: PTH208
            if not entry.isdigit():
                continue
            sample = self._sample(int(entry))
            if sample is not None:
                samples.append(sample)
        return ProcessSnapshot(taken_at, tuple(samples))
