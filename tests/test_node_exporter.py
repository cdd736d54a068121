"""/metrics side by side with node_exporter (Debian's prometheus-node-exporter 1.5) on
the same machine: every family both expose has the same type, the same label names and
label values, and values equal to node_exporter's within the change between two pairs
of scrapes taken at the same moment. Both read the same TextfileDir.

node_exporter runs with its default collectors plus `processes` and `interrupts`, which
twistedspy serves by default (the dashboards' process and IRQ panels read them), so that
those families are compared too.
"""

from __future__ import annotations

import re
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import gatherResults
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.servers import RunningServer, start_server
from tests.support import require_tool
from tests.test_prometheus import free_port, until

#: families that describe each exporter itself, or its own scrape: compared by type and
#: label names only (their values and collector lists are the exporter's own)
OWN = ("process_", "node_scrape_collector_", "node_textfile_mtime_seconds")
#: instantaneous counts that the act of scraping moves (the exporter's own threads are
#: running, its files open): compared with an absolute slack besides the change
SLACK = {
    "node_procs_running": 8,
    "node_procs_blocked": 4,
    "node_processes_state": 12,
    "node_processes_pids": 12,
    "node_processes_threads": 40,
    "node_filefd_allocated": 200,
    "node_entropy_available_bits": 256,
    # the scrapes' own connections, and those of the tests running beside them
    "node_sockstat_sockets_used": 16,
    "node_sockstat_TCP_alloc": 16,
    "node_sockstat_TCP_inuse": 16,
    "node_sockstat_TCP_tw": 16,
    "node_sockstat_TCP_orphan": 4,
    "node_sockstat_TCP_mem": 16,
    "node_sockstat_TCP_mem_bytes": 16 * 4096,
    "node_sockstat_UDP_inuse": 4,
    "node_sockstat_UDP_mem": 4,
    "node_sockstat_UDP_mem_bytes": 4 * 4096,
}
#: gauges the kernel moves between two reads by more than a pair of scrapes shows:
#: memory in flight (a 1 % relative slack), and the load averages, recomputed every 5 s
RELATIVE = {"node_memory_": 0.01, "node_load": 0.2, "node_vmstat_": 0.01, "node_processes_": 0.05}
#: /proc/net/dev's loopback: node_exporter as Debian builds it leaves `lo` out of netdev
#: (--collector.netdev.device-exclude=^lo$); twistedspy's pages and /metrics show it
NETDEV = ("node_network_receive_", "node_network_transmit_")
#: node_exporter's default --collector.filesystem.mount-points-exclude: it hides these
#: mounts, twistedspy's diskfree module shows them (on its page and in /metrics alike)
HIDDEN_MOUNTS = re.compile(
    r"^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
#: shown by node_exporter only, or by twistedspy only: not compared
ONLY_ONE = ("node_exporter_build_info",)


@dataclass(frozen=True)
class Exposition:
    types: dict[str, str]
    #: each sample by name and sorted labels
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    #: each sample name's family
    family_of: dict[str, str]


def parse(text: str) -> Exposition:
    types, values, family_of = {}, {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            values[s.name, tuple(sorted(s.labels.items()))] = s.value
            family_of[s.name] = family.name
    return Exposition(types, values, family_of)


def fetch_node_exporter(port: int) -> bytes | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            body: bytes = reply.read()
            return body
    except OSError:
        return None


def hidden_by_node_exporter(name: str, labels: tuple[tuple[str, str], ...]) -> bool:
    """A sample node_exporter's defaults leave out on purpose (see above)."""
    if name.startswith(NETDEV) and name.endswith("_total"):
        return ("device", "lo") in labels
    mountpoint = dict(labels).get("mountpoint")
    return name.startswith("node_filesystem_") and bool(HIDDEN_MOUNTS.match(mountpoint or ""))


class SideBySideTests(TestCase):
    def start_node_exporter(self, textfiles: Path) -> int:
        exporter = require_tool("prometheus-node-exporter")
        port = free_port()
        process = subprocess.Popen(
            [
                exporter,
                f"--web.listen-address=127.0.0.1:{port}",
                "--collector.processes",
                "--collector.interrupts",
                f"--collector.textfile.directory={textfiles}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(process.wait)
        self.addCleanup(process.terminate)
        return port

    async def both(self, server: RunningServer, port: int) -> tuple[Exposition, Exposition]:
        """One scrape of each, started at the same moment."""
        ours, theirs = await gatherResults(
            [server.request("GET", "/metrics"), deferToThread(fetch_node_exporter, port)]
        )
        assert theirs is not None
        return parse(ours.body.decode()), parse(theirs.decode())

    async def test_every_shared_family_equals_node_exporters(self) -> None:
        textfiles = Path(self.mktemp())
        textfiles.mkdir()
        (textfiles / "apt.prom").write_text(
            "# HELP apt_upgrades_pending Apt updates.\n# TYPE apt_upgrades_pending gauge\n"
            'apt_upgrades_pending{origin="Debian"} 4\n'
        )
        port = self.start_node_exporter(textfiles)
        await until(lambda: fetch_node_exporter(port), "node_exporter's metrics")
        server = start_server(self, textfile_dir=textfiles)
        ours1, theirs1 = await self.both(server, port)
        ours2, theirs2 = await self.both(server, port)

        shared = sorted(set(ours1.types) & set(theirs1.types))
        self.assertGreater(len(shared), 90)
        for must in (
            "node_network_up",
            "node_timex_offset_seconds",
            "node_vmstat_pgfault",
            "node_processes_pids",
            "node_interrupts",
            "apt_upgrades_pending",
            "node_filefd_allocated",
            "node_textfile_scrape_error",
            "process_virtual_memory_max_bytes",
            "node_scrape_collector_success",
        ):
            self.assertIn(must, shared)  # fmt: skip

        problems: list[str] = []
        for family in shared:
            if family in ONLY_ONE:
                continue
            if ours1.types[family] != theirs1.types[family]:
                problems.append(f"{family}: type {ours1.types[family]} != {theirs1.types[family]}")
            mine = {k for k in ours1.values if ours1.family_of[k[0]] == family}
            node = {k for k in theirs1.values if theirs1.family_of[k[0]] == family}
            label_names = {tuple(n for n, _ in labels) for _, labels in mine | node}
            if len(label_names) > 1:
                problems.append(f"{family}: label names differ: {sorted(label_names)}")
            if family.startswith(OWN):
                continue
            mine = {k for k in mine if not hidden_by_node_exporter(*k)}
            if family in SLACK:
                # a count by state is served only while not 0 (no process running
                # but the scraper, say): missing is 0, compared within the slack
                for key in mine ^ node:
                    ours1.values.setdefault(key, 0.0)
                    theirs1.values.setdefault(key, 0.0)
                mine = node = mine | node
            if mine != node:
                problems.append(
                    f"{family}: only twistedspy {sorted(mine - node)[:3]}, "
                    f"only node_exporter {sorted(node - mine)[:3]}"
                )
            for key in sorted(mine & node):
                a, b = ours1.values[key], theirs1.values[key]
                moved = abs(ours2.values.get(key, a) - a) + abs(theirs2.values.get(key, b) - b)
                slack = SLACK.get(family, 0) + next(
                    (r * abs(b) for prefix, r in RELATIVE.items() if family.startswith(prefix)),
                    0.0,
                )
                # the change between the two pairs, twice over: the pairs are a few
                # milliseconds apart, as the two scrapes of one pair are
                if abs(a - b) > 2 * moved + slack + 1e-9 * abs(b):
                    problems.append(f"{key}: twistedspy {a} node_exporter {b} (moved {moved})")
        self.assertEqual(problems, [], "\n".join(problems))
