"""A real Prometheus scrapes twistedspy and answers, for job twistedspy, a panel's PromQL
from each row of Grafana's "Node Exporter Full" dashboard whose families twistedspy
serves (bench/node-exporter-full-panels.json; bench/dashboard.py counts every panel).

The rows of hardware the test machine lacks (hwmon, power supply) and of systemd are not
asked here."""

from __future__ import annotations

from pathlib import Path

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from bench.dashboard import SCRAPE_INTERVAL, has_data, load_panels, prometheus_scraping
from tests.servers import start_server
from tests.support import require_tool
from tests.test_prometheus import until

#: one panel of each row the dashboard has, by the row's name in the dashboard
ROW_PANELS = {
    "Quick CPU / Mem / Disk": "CPU Busy",
    "Basic CPU / Mem / Net / Disk": "Memory Basic",
    "CPU / Memory / Net / Disk": "Network Traffic",
    "CPU / Memory / Net / Disk, pressure": "Pressure Stall Information",
    "Memory Meminfo": "Memory Committed",
    "Memory Vmstat": "Memory Page Faults",
    "System Timesync": "Time Synchronized Drift",
    "System Processes": "PIDs Number and Limit",
    "System Misc": "IRQ Detail",
    "Storage Filesystem": "File Descriptor",
    "Storage Disk": "Disk IOps",
    "Storage Disk, wait": "Disk Average Wait Time",
    "Network Traffic": "Network Operational Status",
    "Network Sockstat": "Sockstat TCP",
    "Network Netstat": "TCP In / Out",
    "Node Exporter": "Node Exporter Scrape Time",
}


class DashboardRowsTests(TestCase):
    async def test_a_panel_of_each_row_has_data(self) -> None:
        require_tool("prometheus")
        panels = {p.title: p for p in load_panels()}
        server = start_server(self)
        target = f"127.0.0.1:{server.port}"
        folder = Path(self.mktemp())
        folder.mkdir()
        scraping = prometheus_scraping({"twistedspy": target}, folder)
        prometheus = scraping.__enter__()
        self.addCleanup(scraping.__exit__, None, None, None)
        # rate() over 10s needs two scrapes inside the window
        await until(
            lambda: has_data(prometheus, panels["CPU Busy"], "twistedspy", target),
            f"CPU Busy after a few {SCRAPE_INTERVAL}s scrapes",
        )
        empty = []
        for row, title in ROW_PANELS.items():
            found = await deferToThread(has_data, prometheus, panels[title], "twistedspy", target)
            if not found:
                empty.append(f"{row}: {title}")
        self.assertEqual(empty, [])
