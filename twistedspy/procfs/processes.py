# -*- test-case-name: tests.test_procfs -*-
"""/proc/PID/{stat,status,cmdline} (proc(5)): every process, as `ps` sees it.

Read directly, not through psutil: psutil's full listing costs about 90 ms per 1000
processes where `ps` needs 28 ms. A scan reads two small files per process, `stat` and
`status`, each with one `read(2)`; the command line, the one file that can be large, is
read again only when the process may have changed it (`ProcfsProcessSource` says when),
so a scan makes fewer system calls per process than `ps -eo pid,comm,stat,user,group,rss`
(docs/performance.md has the counts and the times).

The traps, handled here once:
- the name (`comm`, stat field 2) may hold spaces, parentheses, newlines and `) (`: it
  ends at the LAST ')' of the file, since nothing after it can hold one;
- a process may exit between listing /proc and reading its files (ENOENT, or ESRCH for
  one that is a zombie being reaped): it is left out of the scan, as psutil and ps do;
- a file we may not read (another user's, under `hidepid`) leaves its fields None;
- kernel threads have no memory of their own (no VmRSS line) and an empty command line;
- newer kernels append fields to stat and lines to status: fields are found by position
  from the name's end, lines by their key;
- a PID is reused once its process has gone: what is kept between scans is kept by PID
  and start time together, which no two processes share.
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

from twistedspy.procfs import PROC, read_bytes, read_record
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
#: near the end of status (proc(5)): found from there, not by a pattern tried at every line
_SWITCH_KEYS: Final = (b"\nvoluntary_ctxt_switches:", b"\nnonvoluntary_ctxt_switches:")


@dataclass(frozen=True, slots=True)
class StatusFields:
    """The fields of /proc/PID/status a scan uses."""

    #: effective ids, what `ps -o user,group` shows
    uid: int | None
    gid: int | None
    #: VmRSS in bytes; None for kernel threads, which have no memory of their own
    rss: int | None
    #: voluntary + nonvoluntary context switches of the main thread: it has been on a
    #: CPU since a reading with the same count only if it is running now
    switches: int = 0


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
        switches=sum(_last_count(data, key) for key in _SWITCH_KEYS),
    )


def _last_count(data: bytes, key: bytes) -> int:
    """The number on the last line that starts with `key`; 0 without one (old kernels)."""
    at = data.rfind(key)
    if at < 0:
        return 0
    end = data.find(b"\n", at + 1)
    return int(data[at + len(key) : end if end >= 0 else len(data)])


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


@dataclass(frozen=True, slots=True)
class _Kept:
    """What a scan keeps of a process for the next one."""

    #: hashes of its stat and status as read: the same two files make the same sample
    digest: tuple[int, int]
    sample: ProcessSample
    start_ticks: int
    #: the name, CPU ticks, threads and context switches when the command line was read:
    #: while none of them moves and the process is not running, it has not been on a CPU
    since: tuple[str, int, int, int]


class ProcfsProcessSource:
    """
    Reads every process under `proc`; uid and gid names are looked up once each
    (a uid without a name is shown as the number, as ps shows it). `cmdline=False`
    skips the command lines for callers that need none (the /metrics sums), leaving
    `cmdline` None.

    Each scan reads `stat` (state, CPU time, threads, start time) and `status`
    (effective ids, which setuid(2) changes, and resident memory) of every process, as
    `ps` does; where both files hash as they did at the previous scan (a sleeping
    process), the previous sample stands without parsing them again (a false match of
    both 64-bit hashes of one PID from one scan to the next is not worth guarding
    against). The command line is kept from the previous scan, by PID and start time,
    unless the process may have rewritten it (setproctitle(3) does, in the process's
    own memory): only a process that has been on a CPU can, so it is read again when
    the process is running, or its CPU ticks, thread count, name or context switches
    (voluntary and not, proc(5)) have moved since it was read. A thread other than the
    main one that rewrites it within less than one clock tick of CPU time, or another
    process writing to its memory (a debugger), is seen at the next of those changes.

    `status=False` (the /metrics sums, with `cmdline=False`) reads only
    /proc/PID/stat, half the cost of a scan, and keeps nothing between scans: the owner
    is then the stat file's (proc(5): the effective ids, but root for a process that is
    not dumpable, a setuid program say), and the resident memory stat's own page count,
    which lags VmRSS a little on kernels with split RSS counting.
    """

    def __init__(self, proc: str = PROC, *, cmdline: bool = True, status: bool = True) -> None:
        self._proc = proc
        self._with_cmdline = cmdline
        if cmdline and not status:
            raise ValueError("status=False reads stat files alone: cmdline=False too")
        self._with_status = status
        self._ticks = os.sysconf("SC_CLK_TCK")
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._boot = parse_boot_time(read_bytes(f"{proc}/stat"))
        self._users: dict[int, str] = {}
        self._groups: dict[int, str] = {}
        #: pid -> what the last scan kept; only the living are kept
        self._kept: dict[int, _Kept] = {}

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

    def _stat_only(self, pid: int) -> ProcessSample | None:
        """A process as `status=False` reads it (class docstring)."""
        try:
            stat, status = self._stat_and_owner(f"{self._proc}/{pid}/stat")
        except (FileNotFoundError, ProcessLookupError):
            return None  # exited during the scan
        return ProcessSample(
            pid=pid,
            name=stat.name,
            state=stat.state,
            user=self._user(status.uid),
            group=self._group(status.gid),
            rss=stat.rss_pages * self._page,
            cpu_seconds=stat.cpu_ticks / self._ticks,
            threads=stat.threads,
            start_time=self._boot + stat.start_ticks / self._ticks,
            cmdline=None,
        )

    def _sample(self, pid: int, kept: dict[int, _Kept]) -> ProcessSample | None:
        if not self._with_status:
            return self._stat_only(pid)
        base = f"{self._proc}/{pid}/"
        status_data: bytes | None
        try:
            stat_data = read_record(base + "stat")
        except (FileNotFoundError, ProcessLookupError):
            return None  # exited during the scan
        try:
            status_data = read_record(base + "status")
        except (FileNotFoundError, ProcessLookupError):
            return None
        except PermissionError:
            status_data = None
        before = self._kept.get(pid)
        digest = (hash(stat_data), hash(status_data))
        if before is not None and before.digest == digest and before.sample.state != "R":
            # Nothing of it has changed (a sleeping process's usual case): no parsing.
            kept[pid] = before
            return before.sample
        stat = parse_stat(stat_data)
        if status_data is None:
            status = StatusFields(None, None, stat.rss_pages * self._page)
        else:
            status = parse_status(status_data)
        since = (stat.name, stat.cpu_ticks, stat.threads, status.switches)
        cmdline: tuple[str, ...] | None = None
        if (
            before is not None
            and before.start_ticks == stat.start_ticks
            and before.since == since
            and stat.state != "R"
        ):
            cmdline = before.sample.cmdline
        elif self._with_cmdline:
            try:
                cmdline = parse_cmdline(read_bytes(base + "cmdline"))
            except (FileNotFoundError, ProcessLookupError):
                return None
            except PermissionError:
                cmdline = None
        sample = ProcessSample(
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
        kept[pid] = _Kept(digest, sample, stat.start_ticks, since)
        return sample

    def __call__(self) -> ProcessSnapshot:
        taken_at = time.monotonic()
        samples = []
        kept: dict[int, _Kept] = {}
        # Plain strings, not pathlib: this loop is the hot path (module docstring).
        for entry in os.listdir(self._proc):  # noqa: PTH208
            if not entry.isdigit():
                continue
            sample = self._sample(int(entry), kept)
            if sample is not None:
                samples.append(sample)
        # Only this scan's processes are kept: one that has gone is forgotten with it.
        self._kept = kept
        return ProcessSnapshot(taken_at, tuple(samples))
