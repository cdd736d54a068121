"""/sockets: the socket tables, protocol counters and socket counts on the fixture tree;
the owner walk of /proc/PID/fd and what it remembers; the golden page with hostile
names; node_exporter's netstat and sockstat families, one missing file dropping only its
own; and a real listening child found with its PID over HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from tests.contexts import collect_report, module_context
from tests.servers import start_server
from tests.support import PROC
from tests.test_golden import check_page
from twistedspy.context import ModuleContext
from twistedspy.modules.metrics import MetricsModule, exposition
from twistedspy.modules.sockets import (
    PAGE_SIZE,
    SocketOwners,
    SocketsModule,
    netstat_families,
    sockstat_families,
)
from twistedspy.procfs.netstat import read_protocol_counters, read_socket_counts
from twistedspy.procfs.sockets import SocketOwner, find_socket_owners, read_inet_tables
from twistedspy.query import Query
from twistedspy.report import RawBody
from twistedspy.settings import Settings

#: a valid comm (any bytes but NUL, at most 15): prctl(2) PR_SET_NAME
HOSTILE_COMM = "<i>\"x'&</i>"


class ReaderTests(TestCase):
    def test_socket_tables(self) -> None:
        tables = read_inet_tables(PROC, every_state=True)
        self.assertEqual(list(tables), ["tcp", "tcp6", "udp", "udp6"])
        listening = [
            (s.local_address, s.local_port, s.inode, s.rx_queue, s.uid)
            for s in tables["tcp"].listening
        ]
        self.assertEqual(
            listening, [("0.0.0.0", 22, 9001, 0, 0), ("127.0.0.1", 8080, 9002, 3, 1000)]
        )
        self.assertEqual(tables["tcp"].states, {"LISTEN": 2, "ESTABLISHED": 1, "TIME-WAIT": 2})
        self.assertEqual(
            [(s.local_address, s.local_port, s.version) for s in tables["tcp6"].listening],
            [("::", 22, 6), ("::1", 631, 6)],
        )
        # UDP: an unconnected socket listens; a connected one does not
        self.assertEqual([(s.local_port, s.inode) for s in tables["udp"].listening], [(68, 9004)])
        self.assertEqual(tables["udp6"].listening, ())

    def test_listeners_only_stops_at_the_first_connection(self) -> None:
        """The kernel lists TCP listeners first: what follows is neither read nor parsed."""
        proc = Path(self.mktemp())
        shutil.copytree(Path(PROC) / "net", proc / "net")
        with (proc / "net" / "tcp").open("a") as tcp:
            tcp.write("   9: not a socket line the parser could take\n" * 10_000)
        tables = read_inet_tables(str(proc), every_state=False)
        self.assertEqual([s.inode for s in tables["tcp"].listening], [9001, 9002])
        self.assertEqual([s.inode for s in tables["tcp6"].listening], [9003, 9005])
        self.assertIsNone(tables["tcp"].states)
        self.assertRaises(ValueError, read_inet_tables, str(proc), every_state=True)

    def test_protocol_counters(self) -> None:
        counters = read_protocol_counters(PROC).counters
        self.assertEqual(counters["Tcp_MaxConn"], -1)  # signed (RFC 2012)
        self.assertEqual(counters["Tcp_RetransSegs"], 680)
        self.assertIn("TcpExt_ListenOverflows", counters)
        self.assertIn("IpExt_InOctets", counters)
        # snmp6, split at the first '6' as node_exporter does
        self.assertIn("Ip6_InOctets", counters)
        self.assertIn("UdpLite6_InErrors", counters)

    def test_socket_counts(self) -> None:
        counts = read_socket_counts(PROC)
        self.assertEqual(counts.sockets_used, 21)
        self.assertEqual(
            {
                k: counts.figures[k]
                for k in (("TCP", "tw"), ("TCP", "mem"), ("TCP6", "inuse"), ("FRAG", "memory"))
            },
            {("TCP", "tw"): 1424, ("TCP", "mem"): 3, ("TCP6", "inuse"): 0, ("FRAG", "memory"): 0},
        )


def fd_tree(case: TestCase, links: dict[int, dict[int, str]]) -> str:
    """A /proc of processes holding these fds (fd number to link target), named p<PID>."""
    root = Path(case.mktemp())
    for pid, fds in links.items():
        (root / str(pid) / "fd").mkdir(parents=True)
        (root / str(pid) / "comm").write_text(f"p{pid}\n")
        for fd, target in fds.items():
            (root / str(pid) / "fd" / str(fd)).symlink_to(target)
    (root / "self").mkdir()
    return str(root)


class OwnerTests(TestCase):
    def test_walk_finds_each_socket_with_the_lowest_pid(self) -> None:
        proc = fd_tree(
            self,
            {
                10: {0: "/dev/null", 3: "socket:[1]"},
                20: {5: "socket:[2]", 6: "pipe:[2]"},
                30: {1: "socket:[1]"},
            },
        )
        self.assertEqual(
            find_socket_owners({1, 2, 99}, proc),
            {1: SocketOwner(10, "p10", 3), 2: SocketOwner(20, "p20", 5)},
        )

    def test_owners_are_remembered_and_rechecked(self) -> None:
        proc = fd_tree(self, {10: {3: "socket:[1]"}, 20: {5: "socket:[2]"}})
        owners = SocketOwners(proc)
        self.assertEqual(set(owners({1, 2, 99})), {1, 2})
        self.assertEqual(owners.walks, 1)
        # Nothing new: one readlink per known owner, no walk, and 99 is known unowned.
        self.assertEqual(set(owners({1, 2, 99})), {1, 2})
        self.assertEqual(owners.walks, 1)
        # The fd now holds another socket: the re-check fails and a walk finds the new holder.
        (Path(proc) / "10" / "fd" / "3").unlink()
        (Path(proc) / "10" / "fd" / "3").symlink_to("socket:[7]")
        (Path(proc) / "20" / "fd" / "8").symlink_to("socket:[1]")
        self.assertEqual(owners({1, 2})[1], SocketOwner(20, "p20", 8))
        self.assertEqual(owners.walks, 2)
        # A new socket sends a walk too.
        owners({1, 2, 7})
        self.assertEqual(owners.walks, 3)


def fixture_module(proc: str = PROC) -> SocketsModule:
    module = SocketsModule(module_context(), proc)
    known = {9001: SocketOwner(1520, "python3", 3), 9002: SocketOwner(4242, HOSTILE_COMM, 7)}
    module.owners = lambda inodes: {i: known[i] for i in inodes if i in known}  # type: ignore[assignment]
    return module


def busy_copy(case: TestCase) -> str:
    """The fixture's net files, with 40,000 sockets in TIME-WAIT said by sockstat."""
    proc = Path(case.mktemp())
    shutil.copytree(Path(PROC) / "net", proc / "net")
    sockstat = proc / "net" / "sockstat"
    sockstat.write_text(sockstat.read_text().replace(" tw 1424 ", " tw 40000 "))
    return str(proc)


class PageTests(TestCase):
    async def test_golden_page(self) -> None:
        report = await collect_report(fixture_module())
        html, document = check_page(self, "sockets", "sockets", report)
        self.assertIn("&lt;i&gt;&#34;x&#39;&amp;&lt;/i&gt;", html)
        self.assertNotIn(HOSTILE_COMM, html)
        listening, states, counters = (t["rows"] for t in json.loads(document)["tables"])
        self.assertIn(["tcp", "127.0.0.1", 8080, 4242, HOSTILE_COMM, 3], listening)
        self.assertIn(["tcp6", "::1", 631, None, None, 0], listening)
        self.assertIn(["udp", "0.0.0.0", 68, None, None, None], listening)
        # a few TCP sockets (sockstat): every state counted
        self.assertEqual(states, [["ESTABLISHED", 1], ["TIME-WAIT", 2], ["LISTEN", 4]])
        memory = ["TCP socket memory (bytes)", 3 * PAGE_SIZE, "buffers of every socket"]
        self.assertIn(memory, counters)

    async def test_many_sockets_are_counted_by_the_kernel(self) -> None:
        report = await collect_report(fixture_module(busy_copy(self)))
        # listeners counted, CurrEstab of snmp, tw of sockstat
        self.assertEqual(
            [list(row) for row in report.tables[1].rows],
            [["LISTEN", 4], ["ESTABLISHED or CLOSE-WAIT", 1], ["TIME-WAIT", 40000]],
        )

    async def test_every_state_counted_on_request(self) -> None:
        query = Query((("states", "1"),))
        report = await collect_report(fixture_module(busy_copy(self)), query)
        self.assertEqual(
            [list(row) for row in report.tables[1].rows],
            [["ESTABLISHED", 1], ["TIME-WAIT", 2], ["LISTEN", 4]],
        )


class MissingFileTests(TestCase):
    async def test_a_missing_counter_file_is_named_on_the_page(self) -> None:
        proc = Path(self.mktemp())
        shutil.copytree(Path(PROC) / "net", proc / "net")
        (proc / "net" / "sockstat").unlink()
        report = await collect_report(SocketsModule(module_context(), str(proc)))
        self.assertIn(
            f"Could not read {proc}/net/sockstat: No such file or directory.", report.notes
        )
        counters = {row[0]: row[1] for row in report.tables[2].rows}
        self.assertIsNone(counters["TCP in TIME-WAIT"])
        self.assertEqual(counters["TCP segments retransmitted"], 680)


class MetricsTests(TestCase):
    def test_node_exporter_names_types_and_filter(self) -> None:
        text = exposition(netstat_families(read_protocol_counters(PROC))).decode()
        self.assertIn("# TYPE node_netstat_Tcp_RetransSegs untyped\n", text)
        self.assertIn(
            "# HELP node_netstat_TcpExt_ListenDrops Statistic TcpExtListenDrops.\n", text
        )
        self.assertIn("node_netstat_Ip6_InOctets ", text)
        self.assertNotIn("node_netstat_Tcp_MaxConn", text)  # not in the default field filter
        text = exposition(sockstat_families(read_socket_counts(PROC))).decode()
        self.assertIn("node_sockstat_sockets_used 21.0\n", text)
        self.assertIn("node_sockstat_TCP_tw 1424.0\n", text)
        self.assertIn(f"node_sockstat_TCP_mem_bytes {3.0 * PAGE_SIZE}\n", text)
        self.assertIn("# TYPE node_sockstat_FRAG6_memory gauge\n", text)

    async def scrape(self, proc: str) -> str:
        base = module_context()
        served = [SocketsModule(base, proc)]
        context = ModuleContext(Settings(), Clock(), base.run_blocking, lambda: served, Logger())
        page = await MetricsModule(context).collect(Query())
        assert isinstance(page, RawBody)
        return page.content.decode()

    async def test_a_missing_file_drops_only_its_families(self) -> None:
        proc = Path(self.mktemp())
        shutil.copytree(Path(PROC) / "net", proc / "net")
        (proc / "net" / "sockstat").unlink()
        text = await self.scrape(str(proc))
        self.assertIn('node_scrape_collector_success{collector="sockstat"} 0.0', text)
        self.assertIn('node_scrape_collector_success{collector="netstat"} 1.0', text)
        self.assertNotIn("node_sockstat_", text)
        self.assertIn("node_netstat_Tcp_RetransSegs 680.0", text)

    async def test_every_file_there_is_success(self) -> None:
        text = await self.scrape(PROC)
        self.assertIn('twistedspy_scrape_collector_success{collector="sockets"} 1.0', text)
        self.assertIn('node_scrape_collector_success{collector="sockstat"} 1.0', text)
        self.assertIn('node_scrape_collector_success{collector="netstat"} 1.0', text)


LISTENER = """
import ctypes, socket, sys, time
ctypes.CDLL(None).prctl(15, sys.argv[1].encode())  # PR_SET_NAME: comm
tcp = socket.socket()
tcp.bind(("127.0.0.1", 0))
tcp.listen()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 0))
print(tcp.getsockname()[1], udp.getsockname()[1], flush=True)
time.sleep(60)
"""


class LiveTests(TestCase):
    async def test_a_listening_child_is_found_with_its_pid(self) -> None:
        child = subprocess.Popen(
            [sys.executable, "-c", LISTENER, HOSTILE_COMM], stdout=subprocess.PIPE
        )
        assert child.stdout is not None
        self.addCleanup(child.stdout.close)
        self.addCleanup(child.wait)
        self.addCleanup(child.kill)
        tcp_port, udp_port = (int(p) for p in child.stdout.readline().split())
        server = start_server(self)
        reply = await server.request("GET", "/sockets?format=json")
        self.assertEqual(reply.status, 200)
        rows = json.loads(reply.body)["tables"][0]["rows"]
        self.assertIn(["tcp", "127.0.0.1", tcp_port, child.pid, HOSTILE_COMM, 0], rows)
        self.assertIn(["udp", "127.0.0.1", udp_port, child.pid, HOSTILE_COMM, None], rows)
        # ss agrees (when installed): its users:(("name",pid=N,...)) for that port
        if shutil.which("ss"):
            ss = subprocess.run(
                ["ss", "-tlpnH", f"sport = :{tcp_port}"],
                capture_output=True,
                text=True,
                check=True,
            )
            self.assertIn(f"pid={child.pid},", ss.stdout)
        html = (await server.request("GET", "/sockets")).body.decode()
        self.assertIn("&lt;i&gt;&#34;x&#39;&amp;&lt;/i&gt;", html)
        self.assertNotIn(HOSTILE_COMM, html)
