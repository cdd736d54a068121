"""Tests for the network module: the /proc/net/dev parser, rates, and the live lo."""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.contexts import collect_report, module_context
from twistedspy.modules.network import COLUMNS, NetworkModule, NetworkSample
from twistedspy.procfs.netdev import InterfaceCounters, parse_net_dev
from twistedspy.report import Table


class RateTests(TestCase):
    async def test_exact_report_with_rates(self) -> None:
        def sample(at: float, rx: int, tx: int) -> NetworkSample:
            return NetworkSample(at, (InterfaceCounters("eth0", rx, 1, 0, 0, tx, 1, 0, 0, 0),))

        samples = [sample(100.0, 1000, 50), sample(102.0, 5000, 40)]
        module = NetworkModule(module_context(), lambda: samples.pop(0))
        await module.primed
        report = await collect_report(module)
        self.assertEqual(
            report.tables,
            (
                Table(
                    "Interfaces",
                    COLUMNS,
                    # tx went down: a reset counter has no rate
                    [("eth0", 2000.0, None, 5000, 1, 0, 0, 40, 1, 0, 0, 0)],
                ),
            ),
        )
        self.assertEqual(report.notes, ("Counters since boot; rates over the last 2.0 s.",))


class LiveTests(TestCase):
    async def test_lo_counters_only_grow(self) -> None:
        before = {i.name: i for i in parse_net_dev(Path("/proc/net/dev").read_text())}
        if "lo" not in before:
            self.fail("no lo interface in /proc/net/dev")
        module = NetworkModule(module_context())
        await module.primed
        report = await collect_report(module)
        [row] = [r for r in report.tables[0].rows if r[0] == "lo"]
        lo = before["lo"]
        for got, earlier in zip(
            row[3:12],
            [
                lo.rx_bytes,
                lo.rx_packets,
                lo.rx_errors,
                lo.rx_drops,
                lo.tx_bytes,
                lo.tx_packets,
                lo.tx_errors,
                lo.tx_drops,
                lo.collisions,
            ],
            strict=True,
        ):
            assert isinstance(got, int)
            self.assertGreaterEqual(got, earlier)
        # The rates come first (they are what a person looks at).
        self.assertIsInstance(row[1], float)
        self.assertIsInstance(row[2], float)
