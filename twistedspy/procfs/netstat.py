# -*- test-case-name: tests.test_sockets -*-
"""The kernel's protocol counters (/proc/net/netstat, snmp, snmp6) and its socket
counts (/proc/net/sockstat, sockstat6): proc(5), and the kernel's
net/ipv4/proc.c and net/ipv6/proc.c that write them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from twistedspy.procfs import PROC, read_text


def parse_counter_pairs(text: str) -> dict[str, int]:
    """
    Parse /proc/net/netstat or /proc/net/snmp: pairs of lines, `Proto: Name Name ...`
    then `Proto: value value ...`. Keys are `Proto_Name` (node_exporter's spelling).
    Some are signed (Tcp MaxConn is -1: RFC 2012 tcpMaxConn, "dynamic").
    """
    counters: dict[str, int] = {}
    lines = text.splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        protocol, _, heading = names.partition(":")
        figures = values.partition(":")[2].split()
        for name, figure in zip(heading.split(), figures, strict=False):
            counters[f"{protocol}_{name}"] = int(figure)
    return counters


def parse_snmp6(text: str) -> dict[str, int]:
    """
    Parse /proc/net/snmp6: `Ip6InReceives   139` a line. The protocol ends at the first
    '6' (Ip6, Icmp6, Udp6, UdpLite6), as node_exporter splits it; per-type ICMP counters
    (`Icmp6InType1`) split the same way.
    """
    counters: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 2 or "6" not in fields[0]:
            continue
        protocol, six, name = fields[0].partition("6")
        counters[f"{protocol}{six}_{name}"] = int(fields[1])
    return counters


@dataclass(frozen=True, slots=True)
class ProtocolCounters:
    """Every counter of netstat, snmp and (when IPv6 is on) snmp6, by `Proto_Name`."""

    counters: Mapping[str, int]


def read_protocol_counters(proc: str = PROC) -> ProtocolCounters:
    """netstat and snmp must be there; snmp6 is missing when IPv6 is disabled."""
    counters = parse_counter_pairs(read_text(f"{proc}/net/netstat"))
    counters |= parse_counter_pairs(read_text(f"{proc}/net/snmp"))
    with contextlib.suppress(FileNotFoundError):
        counters |= parse_snmp6(read_text(f"{proc}/net/snmp6"))
    return ProtocolCounters(MappingProxyType(counters))


@dataclass(frozen=True, slots=True)
class SocketCounts:
    """
    /proc/net/sockstat and sockstat6: `sockets_used`, and each protocol's figures by
    (protocol, field), e.g. ("TCP", "tw"). `mem` is in pages (net/ipv4/proc.c,
    sockstat_seq_show: proto_memory_allocated).
    """

    sockets_used: int
    figures: Mapping[tuple[str, str], int]


def parse_sockstat(text: str) -> tuple[int | None, dict[tuple[str, str], int]]:
    """`TCP: inuse 5 orphan 0 tw 2 alloc 6 mem 1` lines; `sockets: used N` apart."""
    used: int | None = None
    figures: dict[tuple[str, str], int] = {}
    for line in text.splitlines():
        protocol, _, rest = line.partition(":")
        fields = rest.split()
        for name, value in zip(fields[::2], fields[1::2], strict=False):
            if protocol == "sockets" and name == "used":
                used = int(value)
            else:
                figures[protocol, name] = int(value)
    return used, figures


def read_socket_counts(proc: str = PROC) -> SocketCounts:
    """sockstat must be there; sockstat6 is missing when IPv6 is disabled."""
    used, figures = parse_sockstat(read_text(f"{proc}/net/sockstat"))
    if used is None:
        raise ValueError("no `sockets: used` line in /proc/net/sockstat")
    with contextlib.suppress(FileNotFoundError):
        figures |= parse_sockstat(read_text(f"{proc}/net/sockstat6"))[1]
    return SocketCounts(used, MappingProxyType(figures))
