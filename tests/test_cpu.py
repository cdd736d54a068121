"""Tests for the cpu module and the sampler behind the cpu and network histories."""

from __future__ import annotations

import tracemalloc
from array import array
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from tests.contexts import collect_report, module_context
from tests.servers import start_server
from twistedspy.context import ModuleContext
from twistedspy.history import HISTORY_SECONDS, SAMPLE_INTERVAL, Recorder, Sampler
from twistedspy.modules.cpu import (
    FIRST_CPU,
    CpuModule,
    CpuSample,
    cpu_point,
    history,
    read_cpu_sample,
    utilisation,
)
from twistedspy.modules.network import (
    NetworkSample,
    read_network_sample,
    traffic_history,
    traffic_point,
)
from twistedspy.procfs.netdev import InterfaceCounters
from twistedspy.procfs.stat import (
    MODES,
    CpuTimes,
    LoadAverage,
    ProcStat,
    parse_proc_stat,
)
from twistedspy.render import sparkline

FIXTURE = Path(__file__).parent / "fixtures" / "proc_stat.txt"


def clock_context(clock: Clock) -> ModuleContext:
    return replace(module_context(), reactor=clock)


def later(stat: ProcStat, **ticks: int) -> ProcStat:
    """The same readings with some modes of every CPU (and the total) advanced."""

    def advance(times: CpuTimes) -> CpuTimes:
        changed: dict[str, Any] = {m: times.mode(m) + n for m, n in ticks.items()}
        return replace(times, **changed)

    return replace(stat, total=advance(stat.total), cpus=tuple(advance(c) for c in stat.cpus))


class UtilisationTests(TestCase):
    def test_shares_between_two_readings(self) -> None:
        before = parse_proc_stat(FIXTURE.read_text())
        after = later(before, user=30, system=10, idle=50, iowait=10)
        share = utilisation(before.cpus[0], after.cpus[0])
        assert share is not None
        self.assertEqual(share.percent["user"], 30.0)
        self.assertEqual(share.percent["iowait"], 10.0)
        self.assertEqual(share.busy, 40.0)
        self.assertAlmostEqual(sum(share.percent.values()), 100.0)

    def test_live_percentages_sum_to_100(self) -> None:
        first = parse_proc_stat(Path("/proc/stat").read_text())
        # Burn some CPU so that ticks pass between the readings.
        while parse_proc_stat(Path("/proc/stat").read_text()).total.total < first.total.total + 5:
            sum(range(10000))
        second = parse_proc_stat(Path("/proc/stat").read_text())
        share = utilisation(first.total, second.total)
        assert share is not None
        self.assertAlmostEqual(sum(share.percent.values()), 100.0, places=6)
        self.assertTrue(all(0 <= v <= 100 for v in share.percent.values()))

    def test_no_tick_no_share(self) -> None:
        stat = parse_proc_stat(FIXTURE.read_text())
        self.assertIsNone(utilisation(stat.total, stat.total))


def sample(at: float, stat: ProcStat, load: float = 0.5) -> CpuSample:
    return CpuSample(at, stat, LoadAverage(load, load, load, 1, 100))


class SamplerTests(TestCase):
    def test_ring_is_bounded(self) -> None:
        clock = Clock()
        taken = iter(range(1000))
        sampler = Sampler(lambda: next(taken), clock, module_context().log, interval=5, keep=4)
        sampler.start()
        clock.pump([5] * 10)
        self.assertEqual(list(sampler.samples), [7, 8, 9, 10])
        sampler.stop()

    def test_a_failing_read_does_not_stop_the_loop(self) -> None:
        clock = Clock()
        calls = []

        def read() -> int:
            calls.append(1)
            if len(calls) == 2:
                raise OSError("gone")
            return len(calls)

        sampler = Sampler(read, clock, module_context().log, interval=5, keep=10)
        sampler.start()
        clock.pump([5, 5, 5])
        self.assertEqual(list(sampler.samples), [1, 3, 4])
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        sampler.stop()

    def test_sampling_runs_only_while_the_service_runs(self) -> None:
        clock = Clock()
        stat = parse_proc_stat(FIXTURE.read_text())
        module = CpuModule(clock_context(clock), source=lambda: sample(clock.seconds(), stat))
        parent = MultiService()
        module.setServiceParent(parent)
        self.assertEqual(len(module.sampler.samples), 0)
        parent.startService()
        self.assertTrue(module.sampler.running)
        clock.pump([5, 5])
        self.assertEqual(len(module.sampler.samples), 3)
        parent.stopService()
        self.assertFalse(module.sampler.running)
        self.assertEqual(clock.getDelayedCalls(), [])
        clock.pump([5, 5])
        self.assertEqual(len(module.sampler.samples), 3)

    async def test_the_server_starts_and_stops_its_samplers(self) -> None:
        server = start_server(self)
        cpu = server.service.modules["cpu"]
        network = server.service.modules["network"]
        assert isinstance(cpu, CpuModule)
        self.assertTrue(cpu.sampler.running)
        self.assertTrue(network.sampler.running)  # type: ignore[attr-defined]
        self.assertEqual(len(cpu.sampler.samples), 1)  # taken at start
        await server.service.stopService()
        self.assertFalse(cpu.sampler.running)
        self.assertFalse(network.sampler.running)  # type: ignore[attr-defined]


class PageTests(TestCase):
    async def test_report_from_the_ring(self) -> None:
        clock = Clock()
        base = parse_proc_stat(FIXTURE.read_text())
        readings = [base]
        for _ in range(3):
            readings.append(later(readings[-1], user=10, idle=90))
        now = sample(20.0, later(readings[-1], system=50, idle=50), load=1.5)
        taken = [sample(i * 5.0, stat, load=float(i)) for i, stat in enumerate(readings)]
        module = CpuModule(clock_context(clock), source=lambda: (taken or [now]).pop(0))
        for _ in readings:
            module.sampler.take()
        report = await collect_report(module)
        load, table = report.tables
        self.assertEqual([r[0] for r in load.rows], ["1 minute", "5 minutes", "15 minutes"])
        self.assertEqual(load.rows[0][1:], (1.5, 0.75))
        self.assertEqual([r[0] for r in table.rows], ["all", "cpu0", "cpu1"])
        # since the newest sample (15 s): system 50, idle 50
        self.assertEqual(table.rows[1][1:], (50.0, 0.0, 0.0, 50.0, 50.0, 0.0, 0.0, 0.0, 0.0))
        self.assertEqual(len(table.columns), 2 + len(MODES))
        titles = [s.title for s in report.series]
        self.assertEqual(titles[0], "Busy, all CPUs (%)")
        self.assertEqual(list(report.series[0].values), [10.0, 10.0, 10.0])
        self.assertEqual(list(report.series[4].values), [0.0, 1.0, 2.0, 3.0])
        self.assertIn("Busy, cpu1 (%)", titles)
        self.assertIn("<svg", str(sparkline(report.series[0])))

    async def test_first_page_without_history(self) -> None:
        module = CpuModule(clock_context(Clock()))
        report = await collect_report(module)
        self.assertEqual(
            len(report.tables[1].rows),
            len(parse_proc_stat(Path("/proc/stat").read_text()).cpus) + 1,
        )
        self.assertIsNone(report.tables[1].rows[0][1])

    async def test_live_page_over_http(self) -> None:
        server = start_server(self)
        reply = await server.request("GET", "/cpu")
        self.assertEqual(reply.status, 200)
        self.assertIn(b"Utilisation", reply.body)
        self.assertIn(b"<svg", reply.body)  # the load sparkline, from the first sample


class HistoryTests(TestCase):
    def test_network_series(self) -> None:
        def net(at: float, rx: int, tx: int) -> NetworkSample:
            lo = InterfaceCounters("lo", rx * 10, 1, 0, 0, tx * 10, 1, 0, 0, 0)
            eth = InterfaceCounters("eth0", rx, 1, 0, 0, tx, 1, 0, 0, 0)
            return NetworkSample(at, (lo, eth))

        readings = [net(0, 0, 0), net(5, 5000, 500), net(10, 5000, 1500)]
        record = Recorder(lambda: readings.pop(0), traffic_point)
        received, sent = traffic_history([record() for _ in range(3)], 5)
        self.assertEqual(list(received.values), [1000.0, 0.0])
        self.assertEqual(list(sent.values), [100.0, 200.0])

    def test_history_drops_samples_without_ticks(self) -> None:
        stat = parse_proc_stat(FIXTURE.read_text())
        readings = [sample(0, stat), sample(5, stat), sample(10, later(stat, idle=10))]
        record = Recorder(lambda: readings.pop(0), cpu_point)
        series = history([record() for _ in range(3)], ["cpu0", "cpu1"], 5)
        self.assertEqual(list(series[0].values), [0.0])
        self.assertEqual(list(series[4].values), [0.5, 0.5, 0.5])  # load: every sample
        self.assertEqual(list(series[5].values), [0.0])

    def test_a_cpu_that_comes_online_starts_its_own_series(self) -> None:
        stats = [parse_proc_stat(FIXTURE.read_text())]
        for _ in range(3):
            stats.append(later(stats[-1], user=5, idle=5))
        # cpu1 is offline for the first two readings
        stats[:2] = [replace(stat, cpus=stat.cpus[:1]) for stat in stats[:2]]
        readings = [sample(i * 5.0, stat) for i, stat in enumerate(stats)]
        record = Recorder(lambda: readings.pop(0), cpu_point)
        series = history([record() for _ in range(4)], ["cpu0", "cpu1"], 5)
        self.assertEqual([s.title for s in series[5:]], ["Busy, cpu0 (%)", "Busy, cpu1 (%)"])
        self.assertEqual(list(series[5].values), [50.0, 50.0, 50.0])
        self.assertEqual(list(series[6].values), [50.0])

    def test_the_recorder_keeps_the_last_two_readings_whole(self) -> None:
        readings = iter(range(5))
        record = Recorder(lambda: next(readings), lambda before, after: array("d", [after]))
        points = [record() for _ in range(5)]
        self.assertEqual([p[0] for p in points], [0, 1, 2, 3, 4])
        self.assertEqual(list(record.latest), [3, 4])

    def test_ten_minutes_of_history_are_small(self) -> None:
        """
        What the cpu and network rings hold once full, from real readings: the points
        only. Whole readings cost ~1.5 KiB a sample on two CPUs (~500 bytes a CPU),
        which the ring would have grown by for its first ten minutes.
        """
        keep = round(HISTORY_SECONDS / SAMPLE_INTERVAL)
        cpu = Recorder(read_cpu_sample, cpu_point)
        network = Recorder(read_network_sample, traffic_point)
        cpu(), network()  # the readings kept whole are not the ring's
        tracemalloc.start()
        try:
            rings = [deque((cpu() for _ in range(keep)), keep)]
            rings.append(deque((network() for _ in range(keep)), keep))
            # what the two modules' own code allocated and still holds: not the standard
            # library's one-off caches (io, codecs) that a first call can leave behind,
            # nor what an earlier test's worker threads may still be doing
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [
                    tracemalloc.Filter(True, f"*/twistedspy/modules/{name}.py")
                    for name in ("cpu", "network", "history")
                ]
            )
        finally:
            tracemalloc.stop()
        held = sum(stat.size for stat in snapshot.statistics("filename"))
        width = len(rings[0][-1])
        cpus = len(parse_proc_stat(Path("/proc/stat").read_text()).cpus)
        self.assertEqual(width, FIRST_CPU + cpus)
        # an array of floats: an 80-byte object and 8 bytes a number; then the two
        # readings each recorder keeps whole, about 0.5 KiB a CPU or an interface
        interfaces = len(read_network_sample().interfaces)
        budget = keep * (80 + 8 * width) + keep * (80 + 8 * 2) + 1024 * (8 + cpus + interfaces)
        self.assertLess(held, budget)
