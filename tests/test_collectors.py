"""Tests for node_exporter's per-collector families (twistedspy/collectors.py): each
collector fails alone, durations are each collector's own work and not time spent
queued for a thread, and same-named families from several sources become one."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import ParamSpec, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase

from tests.contexts import module_context
from tests.support import PROC
from tests.test_metrics import samples, scrape
from twistedspy.collectors import Families, PartlyCollected, joined, merged, run_collectors
from twistedspy.modules.cpu import CpuModule, read_cpu_sample
from twistedspy.modules.diskfree import DiskfreeModule
from twistedspy.modules.metrics import MetricsModule
from twistedspy.modules.version import (
    IDENTITY_MAX_AGE,
    Identity,
    VersionModule,
    read_identity,
    read_system,
)
from twistedspy.procfs.mounts import Mount

P = ParamSpec("P")
T = TypeVar("T")


class RunCollectorsTests(TestCase):
    def test_one_failing_collector_costs_only_its_families(self) -> None:
        def broken() -> list[GaugeMetricFamily]:
            raise FileNotFoundError("/proc/schedstat")

        found = run_collectors(
            {"good": lambda: [GaugeMetricFamily("good", "g", 1)], "broken": broken}
        )
        names = [f.name for f in found]
        self.assertIn("good", names)
        (success,) = (f for f in found if f.name == "node_scrape_collector_success")
        self.assertEqual(
            {s.labels["collector"]: s.value for s in success.samples}, {"good": 1, "broken": 0}
        )

    def test_a_partly_collected_collector_keeps_its_families_and_fails(self) -> None:
        """As a node_exporter collector that sent metrics, then returned an error."""

        def partly() -> list[GaugeMetricFamily]:
            raise PartlyCollected([GaugeMetricFamily("read", "r", 1)], "one chip gone")

        found = run_collectors({"partly": partly})
        self.assertIn("read", [f.name for f in found])
        (success,) = (f for f in found if f.name == "node_scrape_collector_success")
        self.assertEqual([s.value for s in success.samples], [0])

    def test_joined_answers_make_one_with_both_parts_seconds(self) -> None:
        a, b = run_collectors({"a": list}), run_collectors({"b": list})
        assert isinstance(a, Families) and isinstance(b, Families)
        a.seconds, b.seconds = 0.25, 0.5
        both = joined(a, b)
        self.assertEqual(both.seconds, 0.75)
        (success,) = (f for f in both if f.name == "node_scrape_collector_success")
        self.assertEqual([s.labels["collector"] for s in success.samples], ["a", "b"])

    def test_merged_joins_same_names_and_keeps_the_parts(self) -> None:
        a = run_collectors({"a": list})
        b = run_collectors({"b": list})
        joined = merged([*a, *b])
        (duration,) = (f for f in joined if f.name == "node_scrape_collector_duration_seconds")
        self.assertEqual([s.labels["collector"] for s in duration.samples], ["a", "b"])
        # the sources' own lists are untouched (the processes module keeps its own)
        self.assertEqual(len(a[0].samples), 1)

    def test_merged_refuses_two_types_under_one_name(self) -> None:
        with self.assertRaises(ValueError):
            merged([GaugeMetricFamily("x", "x", 1), CounterMetricFamily("x", "x", 1)])

    async def test_a_kernel_without_schedstat_fails_that_collector_alone(self) -> None:
        context = module_context()
        cpu = CpuModule(context, lambda: read_cpu_sample(PROC), proc=self.mktemp())
        found = samples(await scrape(MetricsModule(replace(context, served=lambda: [cpu]))))
        success = "node_scrape_collector_success"
        self.assertEqual(found[success, (("collector", "schedstat"),)], 0)
        self.assertEqual(found[success, (("collector", "interrupts"),)], 0)
        self.assertEqual(found[success, (("collector", "cpu"),)], 1)
        self.assertEqual(found["twistedspy_scrape_collector_success", (("collector", "cpu"),)], 1)


class OwnWorkTests(TestCase):
    async def test_duration_is_the_work_not_the_wait_for_a_thread(self) -> None:
        """
        A worker pool busy for 4 s (by the clock; the deadline is 5) before it runs the
        version module's uname and os collectors: the reported duration is their own
        work, under a second, not 4 s.
        """
        clock = Clock()

        def queued(f: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
            return deferLater(clock, 4, f, *args, **kwargs)

        context = replace(module_context(), reactor=clock, run_blocking=queued)
        version = VersionModule(context, read_system)
        metrics = MetricsModule(
            replace(context, served=lambda: [version]), timer=clock.seconds, sources=()
        )
        scraping = Deferred.fromCoroutine(scrape(metrics))
        clock.pump([4])  # the version module's work
        found = samples(await scraping)
        own = found["twistedspy_scrape_collector_duration_seconds", (("collector", "version"),)]
        self.assertLess(own, 1.0)
        self.assertEqual(
            found["twistedspy_scrape_collector_success", (("collector", "version"),)], 1
        )

    async def test_diskfree_duration_is_its_calls_not_their_waits(self) -> None:
        """
        Each statvfs waits 2 s for a thread (by the clock): the reported duration is the
        calls' own work, under a second, not their waits.
        """
        clock = Clock()

        def queued(f: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
            return deferLater(clock, 2, f, *args, **kwargs)

        context = replace(module_context(), reactor=clock, run_blocking=queued)
        mounts = [Mount("/dev/sda1", "/", "ext4"), Mount("/dev/sdb1", "/data", "ext4")]
        usage = os.statvfs_result((4096, 4096, 100, 50, 40, 10, 5, 5, 0, 255))
        diskfree = DiskfreeModule(context, lambda: mounts, lambda path: usage, deadline=3)
        metrics = MetricsModule(
            replace(context, served=lambda: [diskfree]), timer=clock.seconds, sources=()
        )
        scraping = Deferred.fromCoroutine(scrape(metrics))
        clock.pump([2])  # the statvfs calls
        found = samples(await scraping)
        own = found["twistedspy_scrape_collector_duration_seconds", (("collector", "diskfree"),)]
        self.assertLess(own, 1.0)
        self.assertEqual(
            found[
                "node_filesystem_avail_bytes",
                (("device", "/dev/sdb1"), ("fstype", "ext4"), ("mountpoint", "/data")),
            ],
            40 * 4096,
        )


class KeptFamiliesTests(TestCase):
    async def test_version_families_are_read_once_a_max_age(self) -> None:
        """uname and os serve scrapes for IDENTITY_MAX_AGE, then are read again."""
        clock = Clock()
        reads: list[float] = []

        def identity() -> Identity:
            reads.append(clock.seconds())
            return read_identity()

        context = replace(module_context(), reactor=clock)
        version = VersionModule(context, read_system, identity)
        first = await version.metrics()
        clock.advance(IDENTITY_MAX_AGE - 1)
        again = await version.metrics()
        self.assertEqual(reads, [0])
        self.assertEqual([f.name for f in again], [f.name for f in first])
        self.assertEqual(again.seconds, 0.0)  # type: ignore[attr-defined]
        clock.advance(1)
        await version.metrics()
        self.assertEqual(reads, [0, IDENTITY_MAX_AGE])
