# -*- test-case-name: tests.test_procfs_process -*-
"""One process in detail, from /proc/PID/* (proc(5)): what `htop` shows on one key.

Read only when a person asks for one process's page, so several small files are read
for it (about 1 ms). Many of them are readable only by the process's owner or root
(fd, environ, io, smaps_rollup, exe, cwd: ptrace access mode, proc(5)): each one we may
not read leaves its fields None, and the page says "not readable" instead of failing.

The environment is read for its variable NAMES only: the values, which hold tokens and
passwords, are dropped here while parsing and never leave this file.

Sockets are found as `ss -p` finds them: each `socket:[INODE]` among the process's file
descriptors is looked up in the socket tables of the process's own network namespace
(/proc/PID/net/tcp, tcp6, udp, udp6).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, TypeVar

from twistedspy.procfs import PROC, read_bytes, read_text
from twistedspy.procfs.processes import parse_cmdline, split_stat
from twistedspy.procfs.stat import parse_boot_time

T = TypeVar("T")


class ProcessGone(LookupError):
    """The process does not exist (it never did, or it has exited)."""


@dataclass(frozen=True, slots=True)
class StatDetail:
    """The fields of /proc/PID/stat this page shows (field numbers from proc(5))."""

    name: str
    state: str
    ppid: int  # field 4
    utime_ticks: int  # field 14
    stime_ticks: int  # field 15
    priority: int  # field 18
    nice: int  # field 19
    threads: int  # field 20
    start_ticks: int  # field 22


def parse_stat_detail(data: bytes) -> StatDetail:
    name, rest = split_stat(data)
    return StatDetail(
        name=name,
        state=rest[0].decode("ascii", "replace"),
        ppid=int(rest[1]),
        utime_ticks=int(rest[11]),
        stime_ticks=int(rest[12]),
        priority=int(rest[15]),
        nice=int(rest[16]),
        threads=int(rest[17]),
        start_ticks=int(rest[19]),
    )


def parse_keyed(text: str) -> dict[str, str]:
    """`Key: value` lines (status, smaps_rollup, io) as a mapping."""
    found = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon:
            found[key.strip()] = value.strip()
    return found


def kib(value: str | None) -> int | None:
    """A `1234 kB` value of status or smaps_rollup, in bytes."""
    if value is None:
        return None
    return int(value.split()[0]) * 1024


@dataclass(frozen=True, slots=True)
class Ids:
    """Real and effective user or group ids (status `Uid:`/`Gid:`)."""

    real: int
    effective: int


def parse_ids(value: str | None) -> Ids | None:
    if value is None:
        return None
    fields = value.split()
    return Ids(int(fields[0]), int(fields[1]))


@dataclass(frozen=True, slots=True)
class Limit:
    """One line of /proc/PID/limits; None is `unlimited`."""

    name: str
    soft: int | None
    hard: int | None
    unit: str


def parse_limits(text: str) -> tuple[Limit, ...]:
    """
    /proc/PID/limits: a header, then a name padded to column 26 and three columns
    (fs/proc/base.c `proc_pid_limits` prints them with fixed widths).
    """
    limits = []
    for line in text.splitlines()[1:]:
        name = line[:26].strip()
        fields = line[26:].split()
        if not name or len(fields) < 2:
            continue
        soft, hard = (None if f == "unlimited" else int(f) for f in fields[:2])
        limits.append(Limit(name, soft, hard, fields[2] if len(fields) > 2 else ""))
    return tuple(limits)


def environ_names(data: bytes) -> tuple[str, ...]:
    """The variable names of /proc/PID/environ, sorted; every value is dropped here."""
    names = set()
    for entry in data.split(b"\0"):
        name, equals, _value = entry.partition(b"=")
        if equals and name:
            names.add(name.decode("utf-8", "backslashreplace"))
    return tuple(sorted(names))


@dataclass(frozen=True, slots=True)
class Descriptors:
    """Open file descriptors by what they lead to (readlink of /proc/PID/fd/N)."""

    files: int
    sockets: int
    pipes: int
    #: anon_inode (eventfd, epoll, timerfd ...) and anything else
    other: int
    #: the inodes of the sockets, to find them in the socket tables
    socket_inodes: frozenset[int]

    @property
    def total(self) -> int:
        return self.files + self.sockets + self.pipes + self.other


def classify_descriptors(targets: list[str]) -> Descriptors:
    files = sockets = pipes = other = 0
    inodes = set()
    for target in targets:
        if target.startswith("socket:["):
            sockets += 1
            inodes.add(int(target[8:-1]))
        elif target.startswith("pipe:["):
            pipes += 1
        elif target.startswith("/"):
            files += 1
        else:
            other += 1
    return Descriptors(files, sockets, pipes, other, frozenset(inodes))


#: include/net/tcp_states.h, as /proc/net/tcp prints them (`st`, hexadecimal)
TCP_STATES: Final = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
    6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
    11: "CLOSING", 12: "NEW_SYN_RECV",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class SocketEntry:
    """One line of /proc/PID/net/{tcp,udp}[6]."""

    protocol: str
    local_address: str
    local_port: int
    remote_address: str
    remote_port: int
    #: TCP's state name; for UDP, LISTEN when unconnected (bound, as `ss -l` lists it)
    state: str
    inode: int


def _address(hex_address: str) -> str:
    """
    An address as the kernel prints it: the 32-bit words of the address in host byte
    order, each as 8 hex digits (net/ipv4/tcp_ipv4.c, net/ipv6/tcp_ipv6.c).
    """
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if len(words) == 4:
        return str(ipaddress.IPv4Address(words))
    return str(ipaddress.IPv6Address(words))


def _endpoint(field: str) -> tuple[str, int]:
    address, _, port = field.partition(":")
    return _address(address), int(port, 16)


def parse_sockets(text: str, protocol: str) -> list[SocketEntry]:
    """A /proc/net/tcp-style table: a header line, then one socket a line."""
    entries = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        local, local_port = _endpoint(fields[1])
        remote, remote_port = _endpoint(fields[2])
        state = int(fields[3], 16)
        if protocol.startswith("udp"):
            name = "LISTEN" if state == 7 else TCP_STATES.get(state, str(state))
        else:
            name = TCP_STATES.get(state, str(state))
        entries.append(
            SocketEntry(protocol, local, local_port, remote, remote_port, name, int(fields[9]))
        )
    return entries


@dataclass(frozen=True, slots=True)
class Relative:
    """A parent or a child: its PID and name."""

    pid: int
    name: str


@dataclass(frozen=True, slots=True)
class ProcessDetail:
    """One process; None where the kernel would not tell us (see the module docstring)."""

    pid: int
    name: str
    state: str
    cmdline: tuple[str, ...] | None
    exe: str | None
    cwd: str | None
    uid: Ids | None
    gid: Ids | None
    #: from the parent up to PID 1
    parents: tuple[Relative, ...]
    children: tuple[Relative, ...] | None
    threads: int
    #: seconds since the epoch
    start_time: float
    user_seconds: float
    system_seconds: float
    nice: int
    priority: int
    rss: int | None
    pss: int | None
    #: memory no other process shares: Private_Clean + Private_Dirty of smaps_rollup
    uss: int | None
    swap: int | None
    read_bytes: int | None
    write_bytes: int | None
    descriptors: Descriptors | None
    open_files_limit: Limit | None
    limits: tuple[Limit, ...]
    sockets: tuple[SocketEntry, ...] | None
    cgroup: str | None
    oom_score: int | None
    oom_score_adj: int | None
    environ_names: tuple[str, ...] | None


def _readable(read: Callable[[], T]) -> T | None:
    """What `read` returns, or None for a file we may not read (or that has gone)."""
    try:
        return read()
    except (PermissionError, FileNotFoundError, ProcessLookupError):
        return None


def _relative(proc: str, pid: int) -> tuple[Relative, int] | None:
    try:
        stat = parse_stat_detail(read_bytes(f"{proc}/{pid}/stat"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    return Relative(pid, stat.name), stat.ppid


def _parents(proc: str, ppid: int) -> Iterator[Relative]:
    seen = set()
    while ppid > 0 and ppid not in seen:
        seen.add(ppid)
        found = _relative(proc, ppid)
        if found is None:
            return
        parent, ppid = found
        yield parent


def _children(proc: str, pid: int) -> tuple[Relative, ...]:
    """Every thread's `children` file (proc(5), CONFIG_PROC_CHILDREN), joined."""
    pids: set[int] = set()
    for task in os.listdir(f"{proc}/{pid}/task"):  # noqa: PTH208 - as the scan reads /proc
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            pids.update(int(p) for p in read_bytes(f"{proc}/{pid}/task/{task}/children").split())
    found = (_relative(proc, child) for child in sorted(pids))
    return tuple(r[0] for r in found if r is not None)


def _descriptors(proc: str, pid: int) -> Descriptors:
    folder = f"{proc}/{pid}/fd"
    targets = []
    for fd in os.listdir(folder):  # noqa: PTH208
        with contextlib.suppress(FileNotFoundError):  # closed meanwhile
            targets.append(os.readlink(f"{folder}/{fd}"))  # noqa: PTH115 - as read_bytes
    return classify_descriptors(targets)


def _sockets(proc: str, pid: int, inodes: frozenset[int]) -> tuple[SocketEntry, ...]:
    found = []
    for protocol in ("tcp", "tcp6", "udp", "udp6"):
        with contextlib.suppress(FileNotFoundError):  # no IPv6 in this kernel
            table = parse_sockets(read_text(f"{proc}/{pid}/net/{protocol}"), protocol)
            found += [s for s in table if s.inode in inodes]
    return tuple(found)


def read_process(pid: int, proc: str = PROC) -> ProcessDetail:
    """Everything the process page shows; ProcessGone if there is no such process."""
    base = f"{proc}/{pid}"
    try:
        stat = parse_stat_detail(read_bytes(f"{base}/stat"))
        status = parse_keyed(read_text(f"{base}/status"))
    except (FileNotFoundError, ProcessLookupError):
        raise ProcessGone(pid) from None
    ticks = os.sysconf("SC_CLK_TCK")
    boot = parse_boot_time(read_bytes(f"{proc}/stat"))
    rollup = _readable(lambda: parse_keyed(read_text(f"{base}/smaps_rollup")))
    io = _readable(lambda: parse_keyed(read_text(f"{base}/io")))
    descriptors = _readable(lambda: _descriptors(proc, pid))
    limits = _readable(lambda: parse_limits(read_text(f"{base}/limits"))) or ()
    cgroup = _readable(lambda: read_text(f"{base}/cgroup").strip())
    oom_score = _readable(lambda: int(read_bytes(f"{base}/oom_score")))
    oom_adj = _readable(lambda: int(read_bytes(f"{base}/oom_score_adj")))
    uss = None
    if rollup is not None:
        uss = sum(kib(rollup.get(k, "0 kB")) or 0 for k in ("Private_Clean", "Private_Dirty"))

    return ProcessDetail(
        pid=pid,
        name=stat.name,
        state=stat.state,
        cmdline=_readable(lambda: parse_cmdline(read_bytes(f"{base}/cmdline"))),
        exe=_readable(lambda: os.readlink(f"{base}/exe")),  # noqa: PTH115
        cwd=_readable(lambda: os.readlink(f"{base}/cwd")),  # noqa: PTH115
        uid=parse_ids(status.get("Uid")),
        gid=parse_ids(status.get("Gid")),
        parents=tuple(_parents(proc, stat.ppid)),
        children=_readable(lambda: _children(proc, pid)),
        threads=stat.threads,
        start_time=boot + stat.start_ticks / ticks,
        user_seconds=stat.utime_ticks / ticks,
        system_seconds=stat.stime_ticks / ticks,
        nice=stat.nice,
        priority=stat.priority,
        rss=kib(status.get("VmRSS")),
        pss=None if rollup is None else kib(rollup.get("Pss")),
        uss=uss,
        swap=kib(status.get("VmSwap")),
        read_bytes=None if io is None else int(io["read_bytes"]),
        write_bytes=None if io is None else int(io["write_bytes"]),
        descriptors=descriptors,
        open_files_limit=next((lim for lim in limits if lim.name == "Max open files"), None),
        limits=limits,
        sockets=(
            None
            if descriptors is None
            else _readable(lambda: _sockets(proc, pid, descriptors.socket_inodes))
        ),
        cgroup=cgroup,
        oom_score=oom_score,
        oom_score_adj=oom_adj,
        environ_names=_readable(lambda: environ_names(read_bytes(f"{base}/environ"))),
    )
