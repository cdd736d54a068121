# -*- test-case-name: tests.test_sockets -*-
"""The `sockets` module: listening TCP and UDP sockets with the process that holds
each, as `ss -tulpn` shows them; TCP connections by state; the kernel's socket and
protocol counters that matter when a server struggles. And for /metrics,
node_exporter's netstat and sockstat families.

The page reads /proc/net/{tcp,tcp6,udp,udp6} and walks /proc/PID/fd in a worker thread
(twistedspy/procfs/sockets.py). Both are bounded, so that the page is no slower than
`ss -tulpn` (bench/saturation.py; docs/performance.md):
- with more than COUNT_STATES_UP_TO TCP sockets (sockstat), the TCP tables are read
  only as far as their listening sockets, which the kernel lists first: a server with
  36,000 sockets in TIME-WAIT took 470 ms to read whole, 11 ms so. Connections are then
  counted from the kernel's counters (sockstat, snmp); `states=1` reads every
  connection to count each state, at that cost;
- the walk stops once every listening socket is found, and the owners found are kept
  and re-checked with one readlink each, so a page whose listeners have not changed
  walks nothing; a socket no visible process holds (another user's, when not run as
  root) is not looked for again until the set of unowned sockets changes.

The counters for /metrics are small files the kernel writes from memory: read on the
reactor, as cpu.py reads /proc/stat.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from functools import partial
from typing import Final, TypeVar

from prometheus_client.core import GaugeMetricFamily, UnknownMetricFamily
from prometheus_client.metrics_core import Metric
from twisted.internet.defer import Deferred
from twisted.plugin import IPlugin
from zope.interface import implementer

from twistedspy.collectors import run_collectors
from twistedspy.context import ModuleContext
from twistedspy.inflight import SharedCollection
from twistedspy.interfaces import IInfoModule, IMetricsSource, IModuleFactory, IReactorSafe
from twistedspy.procfs import PROC
from twistedspy.procfs.netstat import (
    ProtocolCounters,
    SocketCounts,
    read_protocol_counters,
    read_socket_counts,
)
from twistedspy.procfs.sockets import (
    TCP_STATES,
    InetTable,
    SocketOwner,
    find_socket_owners,
    read_inet_tables,
    still_owns,
)
from twistedspy.query import Query
from twistedspy.report import Cell, Column, InvalidQuery, Mark, Page, Report, Table

#: node_exporter 1.5's --collector.netstat.fields default
NETSTAT_FIELDS: Final = re.compile(
    r"^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)"
    r"|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)"
    r"|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)"
    r"|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$"
)
PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE")
#: up to this many TCP sockets every state is counted unasked: reading them all costs
#: some 10 ms more than the listeners alone (module docstring)
COUNT_STATES_UP_TO: Final = 2000
T = TypeVar("T")


class SocketOwners:
    """
    Which process holds each socket, remembered between pages (module docstring):
    only sockets neither remembered nor known to be unowned send a walk of /proc.
    """

    def __init__(self, proc: str = PROC) -> None:
        self._proc = proc
        self._known: dict[int, SocketOwner] = {}
        self._unowned: set[int] = set()
        #: how many walks of /proc/PID/fd it has made, for the tests and the benchmark
        self.walks = 0
        # the page's two kinds of run (states=0 and 1) may be in worker threads at once
        self._lock = threading.Lock()

    def __call__(self, inodes: Set[int]) -> dict[int, SocketOwner]:
        with self._lock:
            return self._owners(inodes)

    def _owners(self, inodes: Set[int]) -> dict[int, SocketOwner]:
        found = {
            inode: owner
            for inode in inodes
            if (owner := self._known.get(inode)) is not None
            and still_owns(owner, inode, self._proc)
        }
        missing = set(inodes) - found.keys()
        if missing - self._unowned:
            self.walks += 1
            found |= find_socket_owners(missing, self._proc)
        self._known, self._unowned = found, missing - found.keys()
        return found


@dataclass(frozen=True, slots=True)
class SocketsView:
    """What one page shows: the four tables, their listeners' owners, the counters."""

    tables: Mapping[str, InetTable]
    owners: Mapping[int, SocketOwner]
    #: TCP connections by state, summed over IPv4 and IPv6; None unless counted
    states: Mapping[str, int] | None
    #: None where the file could not be read (named in `unreadable`)
    protocols: ProtocolCounters | None
    sockets: SocketCounts | None
    unreadable: tuple[str, ...] = ()


LISTENING_COLUMNS: Final = (
    Column("Protocol"),
    Column("Address"),
    Column("Port", "id"),
    Column("PID", "id"),
    Column("Process"),
    Column("Waiting to be accepted", "int"),
)
STATE_COLUMNS: Final = (Column("State"), Column("TCP connections", "int"))
COUNTER_COLUMNS: Final = (Column("Counter"), Column("Value", "int"), Column("Means"))


def listening_rows(view: SocketsView) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for kind, table in view.tables.items():
        for s in sorted(table.listening, key=lambda s: (s.local_port, s.local_address)):
            owner = view.owners.get(s.inode)
            rows.append(
                [
                    kind,
                    s.local_address,
                    s.local_port,
                    None if owner is None else owner.pid,
                    None if owner is None else owner.name,
                    s.rx_queue if s.protocol == "tcp" else None,
                ]
            )
    return rows


def tcp_states(tables: Mapping[str, InetTable]) -> dict[str, int] | None:
    """Each state's count over tcp and tcp6, in the kernel's order; None if not counted."""
    counts: dict[str, int] = {}
    for kind in ("tcp", "tcp6"):
        table = tables.get(kind)
        if table is None:
            continue
        if table.states is None:
            return None
        for state, n in table.states.items():
            counts[state] = counts.get(state, 0) + n
    order = list(TCP_STATES.values())
    ranked = sorted(counts, key=lambda s: order.index(s) if s in order else len(order))
    return {state: counts[state] for state in ranked}


def state_rows(view: SocketsView) -> list[list[Cell]]:
    """Every state counted (`states=1`), or what the kernel's counters say without it."""
    if view.states is not None:
        return [[state, n] for state, n in view.states.items()]
    listening = sum(len(view.tables[k].listening) for k in ("tcp", "tcp6") if k in view.tables)
    return [
        ["LISTEN", listening],
        [
            "ESTABLISHED or CLOSE-WAIT",
            None if view.protocols is None else view.protocols.counters.get("Tcp_CurrEstab"),
        ],
        ["TIME-WAIT", None if view.sockets is None else view.sockets.figures.get(("TCP", "tw"))],
    ]


#: the page's counters: source, key, label, what it means, whether any is a warning
_PROTOCOL_ROWS: Final = (
    (
        "TcpExt_ListenOverflows",
        "listen overflows",
        "a full accept queue turned a connection away",
        True,
    ),
    ("TcpExt_ListenDrops", "listen drops", "connections dropped before being accepted", True),
    (
        "Tcp_RetransSegs",
        "TCP segments retransmitted",
        "lost or slow packets, or a peer gone",
        False,
    ),
    ("TcpExt_TCPTimeouts", "TCP retransmission time-outs", "a peer stopped answering", False),
    ("Tcp_OutRsts", "TCP resets sent", "connections refused or aborted by this machine", False),
    (
        "Tcp_EstabResets",
        "TCP connections reset",
        "established connections torn down by a reset",
        False,
    ),
    ("Tcp_AttemptFails", "TCP connection attempts failed", "", False),
    ("TcpExt_SyncookiesSent", "SYN cookies sent", "a SYN flood, or a backlog too small", True),
    (
        "Udp_RcvbufErrors",
        "UDP receive buffer errors",
        "datagrams dropped: a reader too slow",
        True,
    ),
    ("Udp_NoPorts", "UDP datagrams to no port", "", False),
)


def counter_rows(view: SocketsView) -> list[list[Cell]]:
    figures = {} if view.sockets is None else view.sockets.figures
    used = None if view.sockets is None else view.sockets.sockets_used
    rows: list[list[Cell]] = [
        ["sockets in use", used, "all kinds, IPv4 and IPv6"],
        ["TCP sockets in use", figures.get(("TCP", "inuse")), ""],
        [
            "TCP orphans",
            figures.get(("TCP", "orphan")),
            "closed by their process, not yet by the peer",
        ],
        ["TCP in TIME-WAIT", figures.get(("TCP", "tw")), "closed, waiting out late packets"],
    ]
    for protocol in ("TCP", "UDP"):
        pages = figures.get((protocol, "mem"))
        rows.append(
            [
                f"{protocol} socket memory (bytes)",
                None if pages is None else pages * PAGE_SIZE,
                "buffers of every socket",
            ]
        )
    counters = {} if view.protocols is None else view.protocols.counters
    for key, label, means, warns in _PROTOCOL_ROWS:
        value: Cell = counters.get(key)
        if warns and isinstance(value, int) and value > 0:
            value = Mark(value, f"{means} (since boot)")
        rows.append([label, value, means])
    return rows


def netstat_families(protocols: ProtocolCounters) -> list[Metric]:
    """node_exporter's netstat collector: the chosen counters, untyped, by `Proto_Name`."""
    families: list[Metric] = []
    for key, value in sorted(protocols.counters.items()):
        if NETSTAT_FIELDS.search(key):
            help_text = f"Statistic {key.replace('_', '', 1)}."
            families.append(UnknownMetricFamily(f"node_netstat_{key}", help_text, value=value))
    return families


def sockstat_families(sockets: SocketCounts) -> list[Metric]:
    """node_exporter's sockstat collector: each figure a gauge; `mem` pages also in bytes."""
    families: list[Metric] = [
        GaugeMetricFamily(
            "node_sockstat_sockets_used", "Number of IPv4 sockets in use.", sockets.sockets_used
        )
    ]
    for (protocol, field), value in sorted(sockets.figures.items()):
        figures = [(field, value)]
        if field == "mem":
            figures.append(("mem_bytes", value * PAGE_SIZE))
        for name, figure in figures:
            families.append(
                GaugeMetricFamily(
                    f"node_sockstat_{protocol}_{name}",
                    f"Number of {protocol} sockets in state {name}.",
                    figure,
                )
            )
    return families


def _readable(read: Callable[[], T], unreadable: list[str]) -> T | None:
    """What `read` gives, or None with the file named in `unreadable`: the counters are
    a part of the page, and one that cannot be read is said on it, not a 500."""
    try:
        return read()
    except OSError as e:
        unreadable.append(f"{e.filename}: {e.strerror}")
        return None


def tcp_sockets(sockets: SocketCounts) -> int:
    """TCP sockets the kernel holds, TIME-WAIT included (sockstat's TCP, TCP6 and tw)."""
    figures = sockets.figures
    return sum(figures.get(key, 0) for key in (("TCP", "inuse"), ("TCP", "tw"), ("TCP6", "inuse")))


# Reactor-safe: returns a Deferred; the tables and the walk go to run_blocking.
@implementer(IInfoModule, IMetricsSource, IReactorSafe)
class SocketsModule:
    name = "sockets"
    title = "Sockets"
    description = "Listening TCP and UDP sockets and their processes, connections, counters."

    def __init__(self, context: ModuleContext, proc: str = PROC) -> None:
        self._proc = proc
        self.owners = SocketOwners(proc)
        # one run in flight for each kind of page, shared by the requests asking for it
        self._reads: dict[bool, SharedCollection[SocketsView]] = {
            every_state: SharedCollection(partial(context.run_blocking, self.view, every_state))
            for every_state in (False, True)
        }

    def view(self, every_state: bool = False) -> SocketsView:
        """Everything the page shows; blocking (module docstring)."""
        unreadable: list[str] = []
        protocols = _readable(partial(read_protocol_counters, self._proc), unreadable)
        sockets = _readable(partial(read_socket_counts, self._proc), unreadable)
        every_state = every_state or (
            sockets is not None and tcp_sockets(sockets) <= COUNT_STATES_UP_TO
        )
        tables = read_inet_tables(self._proc, every_state=every_state)
        listening = {s.inode for t in tables.values() for s in t.listening}
        return SocketsView(
            tables,
            self.owners(listening),
            tcp_states(tables),
            protocols,
            sockets,
            tuple(unreadable),
        )

    def collect(self, query: Query) -> Deferred[Page]:
        states = query.get("states", "0")
        if states not in ("0", "1"):
            raise InvalidQuery(f"states must be 0 or 1; got {states!r}")
        return self._reads[states == "1"]().addCallback(self._report)

    def _report(self, view: SocketsView) -> Page:
        listening = listening_rows(view)
        unowned = sum(1 for row in listening if row[3] is None)
        notes = [
            "Listening: TCP sockets in LISTEN and UDP sockets not connected to a peer, "
            "as `ss -tulpn` lists them. Counters are since boot.",
        ]
        notes += [f"Could not read {problem}." for problem in view.unreadable]
        if view.states is None:
            notes.append(
                f"More than {COUNT_STATES_UP_TO} TCP sockets: connections as the kernel's "
                "counters give them; states=1 counts every state, reading every "
                "connection (slow with many thousands)."
            )
        if unowned:
            notes.append(
                f"{unowned} listening sockets belong to processes this server may not "
                "look into (another user's): run as root to see them all, as with ss."
            )
        return Report(
            title=self.title,
            tables=(
                Table("Listening sockets", LISTENING_COLUMNS, listening),
                Table("TCP connections by state", STATE_COLUMNS, state_rows(view)),
                Table("Kernel counters", COUNTER_COLUMNS, counter_rows(view)),
            ),
            notes=notes,
        )

    def metrics(self) -> list[Metric]:
        # On the reactor (module docstring); one file failing drops only its own families.
        return run_collectors(
            {
                "netstat": lambda: netstat_families(read_protocol_counters(self._proc)),
                "sockstat": lambda: sockstat_families(read_socket_counts(self._proc)),
            }
        )


@implementer(IPlugin, IModuleFactory)
class SocketsFactory:
    name = "sockets"

    def build(self, context: ModuleContext) -> IInfoModule:
        return SocketsModule(context)
