"""The diskstats, pressure, netstat and sockstat families against node_exporter's own,
on this machine at the same moment: the same names, types and label sets, and values
within what changed between two scrapes of twistedspy taken either side of
node_exporter's (counters only grow: node_exporter's value must lie between them)."""

from __future__ import annotations

import subprocess
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import TestCase

from tests.servers import Reply, RunningServer, start_server
from tests.support import require_tool
from tests.test_prometheus import free_port, until

#: node_exporter's collectors these families come from, and the names they begin with
COLLECTORS = ("diskstats", "pressure", "netstat", "sockstat")
PREFIXES = ("node_disk_", "node_pressure_", "node_netstat_", "node_sockstat_")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def families(text: str) -> tuple[dict[str, str], Samples]:
    """Our families' types by name, and every sample by name and labels."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(PREFIXES):
            continue
        types[family.name] = family.type
        for s in family.samples:
            samples[s.name, frozenset(s.labels.items())] = s.value
    return types, samples


class NodeExporterTests(TestCase):
    def start_node_exporter(self) -> int:
        exporter = require_tool("prometheus-node-exporter")
        port = free_port()
        wanted = [f"--collector.{name}" for name in COLLECTORS]
        process = subprocess.Popen(
            [
                exporter,
                f"--web.listen-address=127.0.0.1:{port}",
                "--collector.disable-defaults",
                *wanted,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(process.wait)
        self.addCleanup(process.terminate)
        return port

    async def scrape(self, server: RunningServer) -> str:
        chosen = "&".join(f"collect[]={name}" for name in ("diskio", "pressure", "sockets"))
        reply: Reply = await server.request("GET", f"/metrics?{chosen}")
        self.assertEqual(reply.status, 200, reply.body[:300])
        return reply.body.decode()

    async def test_same_families_and_values_at_the_same_moment(self) -> None:
        port = self.start_node_exporter()

        def theirs() -> str | None:
            try:
                url = f"http://127.0.0.1:{port}/metrics"
                with urllib.request.urlopen(url, timeout=10) as r:
                    body: bytes = r.read()
                    return body.decode()
            except OSError:
                return None

        await until(theirs, "node_exporter's metrics")
        server = start_server(self)
        await self.scrape(server)  # warm: the first scrape builds what later ones reuse
        first_types, first = families(await self.scrape(server))
        their_types, their = families(await until(theirs, "node_exporter's metrics"))
        _, second = families(await self.scrape(server))

        for prefix in PREFIXES:
            self.assertTrue(any(name.startswith(prefix) for name in their_types), prefix)
        self.assertEqual(first_types, their_types)
        self.assertEqual(set(first), set(their))
        self.assertEqual(set(second), set(their))
        for key, value in their.items():
            before, after = first[key], second[key]
            name = key[0]
            if their_types.get(name.removesuffix("_total")) == "counter":
                # only grows: node_exporter read it between our two readings
                self.assertLessEqual(min(before, after) - 1e-6, value, key)
                self.assertLessEqual(value, max(before, after) + 1e-6, key)
            else:
                # a gauge may go up and down: within the change between ours, with a
                # little room for what moved back in between (sockets opened by the
                # scrapes themselves, TIME-WAIT on a busy machine)
                room = abs(after - before) + max(4.0, 0.05 * abs(value))
                self.assertLessEqual(abs(value - before), room, key)
