# -*- test-case-name: tests.test_sockets -*-
"""/proc/net/{tcp,tcp6,udp,udp6} (proc(5)): every TCP and UDP socket; and which
process holds one, from the `socket:[inode]` links in /proc/PID/fd, as `ss -p` finds it.
"""

from __future__ import annotations

import os
import socket
import struct
from collections import Counter
from collections.abc import Mapping, Set
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from twistedspy.procfs import PROC, read_bytes, read_text

#: the `st` column (include/net/tcp_states.h); `ss` names them so, without the underscores
TCP_STATES: Final = {
    0x01: "ESTABLISHED",
    0x02: "SYN-SENT",
    0x03: "SYN-RECV",
    0x04: "FIN-WAIT-1",
    0x05: "FIN-WAIT-2",
    0x06: "TIME-WAIT",
    0x07: "CLOSE",
    0x08: "CLOSE-WAIT",
    0x09: "LAST-ACK",
    0x0A: "LISTEN",
    0x0B: "CLOSING",
    0x0C: "NEW-SYN-RECV",
}
#: a UDP socket with no peer is in TCP_CLOSE; `ss -ul` calls that UNCONN and lists it
UNCONNECTED: Final = 0x07
LISTEN: Final = 0x0A


@dataclass(frozen=True, slots=True)
class InetSocket:
    """One line of /proc/net/{tcp,udp}[6]."""

    #: "tcp" or "udp"
    protocol: str
    #: 4 or 6
    version: int
    local_address: str
    local_port: int
    remote_address: str
    remote_port: int
    #: the kernel's state number (TCP_STATES)
    state: int
    #: for a listening TCP socket, the connections waiting to be accepted
    rx_queue: int
    tx_queue: int
    uid: int
    inode: int


def _address(text: str) -> tuple[str, int]:
    """
    `0100007F:1F90` → ("127.0.0.1", 8080). The kernel prints the address as 32-bit
    words in host byte order (`%08X` of each __be32, net/ipv4/tcp_ipv4.c), the port in
    hex: packing each word in native order gives the network-order bytes back.
    """
    host, _, port = text.partition(":")
    words = [int(host[i : i + 8], 16) for i in range(0, len(host), 8)]
    packed = struct.pack(f"={len(words)}I", *words)
    family = socket.AF_INET if len(words) == 1 else socket.AF_INET6
    return socket.inet_ntop(family, packed), int(port, 16)


def _socket(fields: list[str], protocol: str, version: int) -> InetSocket:
    local, local_port = _address(fields[1])
    remote, remote_port = _address(fields[2])
    tx_queue, _, rx_queue = fields[4].partition(":")
    return InetSocket(
        protocol,
        version,
        local,
        local_port,
        remote,
        remote_port,
        int(fields[3], 16),
        int(rx_queue, 16),
        int(tx_queue, 16),
        int(fields[7]),
        int(fields[9]),
    )


@dataclass(frozen=True, slots=True)
class InetTable:
    """One protocol's sockets: the listening ones whole, the rest only counted."""

    listening: tuple[InetSocket, ...]
    #: how many sockets are in each state (TCP_STATES' names); None when not counted
    states: Mapping[str, int] | None


def parse_inet_table(
    text: str, protocol: str, version: int, *, every_state: bool = True
) -> InetTable:
    """
    Parse one of the four tables: a heading line, then a socket a line. Only the
    listening sockets are decoded whole: a busy server has thousands of connections
    (most in TIME-WAIT), of which the page needs at most the count by state. Without
    `every_state`, a TCP table is read only as far as its listening sockets go (see
    `_listening_head`) and no state is counted.
    """
    listening_state = f"{LISTEN if protocol == 'tcp' else UNCONNECTED:02X}"
    counts: Counter[str] = Counter()
    listening = []
    for line in text.splitlines()[1:]:
        fields = line.split(None, 4)
        if len(fields) < 5:
            continue
        if fields[3] == listening_state:
            listening.append(_socket(line.split(), protocol, version))
        elif protocol == "tcp" and not every_state:
            break
        counts[fields[3]] += 1
    if not every_state:
        return InetTable(tuple(listening), None)
    states = {TCP_STATES.get(int(st, 16), st): n for st, n in counts.items()}
    return InetTable(tuple(listening), MappingProxyType(states))


def _listening_head(path: str) -> str:
    """
    The start of a TCP table, up to its first socket not in LISTEN. The kernel lists
    the listening hash before the established one (net/ipv4/tcp_ipv4.c, tcp_get_idx),
    so the listeners are all there, and it never formats the thousands of connections
    a busy server has after them: what `ss -tl` saves by asking sock_diag(7) for
    listeners only.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        data = b""
        while chunk := os.read(fd, 16384):
            data += chunk
            for line in data.split(b"\n")[1:-1]:
                fields = line.split(None, 4)
                if len(fields) == 5 and fields[3] != b"%02X" % LISTEN:
                    return data.decode("utf-8", "backslashreplace")
        return data.decode("utf-8", "backslashreplace")
    finally:
        os.close(fd)


def read_inet_tables(proc: str = PROC, *, every_state: bool = True) -> dict[str, InetTable]:
    """
    The four tables by file name; tcp6 and udp6 are missing when IPv6 is disabled.
    Without `every_state`, only the listening sockets (`parse_inet_table`).
    """
    tables = {}
    for protocol in ("tcp", "udp"):
        for version, suffix in ((4, ""), (6, "6")):
            path = f"{proc}/net/{protocol}{suffix}"
            try:
                quick = protocol == "tcp" and not every_state
                text = _listening_head(path) if quick else read_text(path)
            except FileNotFoundError:
                if version == 4:
                    raise
                continue
            table = parse_inet_table(text, protocol, version, every_state=every_state)
            tables[protocol + suffix] = table
    return tables


@dataclass(frozen=True, slots=True)
class SocketOwner:
    """A process holding a socket open, as `ss -p` names it: `users:(("name",pid=,fd=))`."""

    pid: int
    name: str
    fd: int


def _pids(proc: str) -> list[int]:
    """The PIDs, lowest first (as /proc lists them; sorted, to be sure of it)."""
    # str names, no Path objects: a walk of thousands of processes (processes.py too)
    return sorted(int(entry) for entry in os.listdir(proc) if entry.isdigit())  # noqa: PTH208


def _command_name(proc: str, pid: int) -> str:
    """/proc/PID/comm: the name `ss` shows; any bytes but a newline, chosen by the process."""
    try:
        return read_bytes(f"{proc}/{pid}/comm").decode("utf-8", "backslashreplace")[:-1]
    except OSError:
        return "?"  # exited since its fd was read


def find_socket_owners(inodes: Set[int], proc: str = PROC) -> dict[int, SocketOwner]:
    """
    Which process holds each socket in `inodes`, walking /proc/PID/fd, lowest PID first,
    stopping once every one is found (ss walks them all). A process we may not look
    into (another user's, without CAP_SYS_PTRACE) or that exits during the walk is
    skipped, as `ss -p` skips it. A socket several processes share is given to the
    lowest PID.
    """
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    owners: dict[int, SocketOwner] = {}
    for pid in _pids(proc):
        try:
            fds = os.open(f"{proc}/{pid}/fd", os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            for fd in os.listdir(fds):  # noqa: PTH208 - listed through the open fd
                try:
                    target = os.readlink(fd, dir_fd=fds)
                except OSError:
                    continue  # closed since the listing
                inode = wanted.pop(target, None)
                if inode is not None:
                    owners[inode] = SocketOwner(pid, _command_name(proc, pid), int(fd))
        except OSError:
            continue  # the process exited
        finally:
            os.close(fds)
        if not wanted:
            break
    return owners


def still_owns(owner: SocketOwner, inode: int, proc: str = PROC) -> bool:
    """Whether `owner`'s fd still holds socket `inode` (one readlink: a cheap re-check)."""
    try:
        link = os.readlink(f"{proc}/{owner.pid}/fd/{owner.fd}")  # noqa: PTH115 - as above
        return link == f"socket:[{inode}]"
    except OSError:
        return False
