# -*- test-case-name: tests.test_node_exporter -*-
"""The /metrics sources that no page shows: node_exporter's time, timex, filefd,
entropy and conntrack collectors, and the exporter's own `process_*` families.

Each reads kernel memory through twistedspy/procfs (a few /proc/sys files, one
adjtimex(2) call, about 100 µs in all), so it runs on the reactor, as cpu.py reads
/proc/stat.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from zope.interface import implementer

from twistedspy.collectors import run_collectors
from twistedspy.interfaces import IMetricsSource
from twistedspy.procfs import PROC, SYS
from twistedspy.procfs.kernel import (
    read_conntrack,
    read_entropy,
    read_file_handles,
    read_own_address_space_limit,
)
from twistedspy.procfs.timex import (
    ClockDiscipline,
    read_clock_discipline,
    read_clock_sources,
)


def time_families(now: float, zone: str, offset: int, sys: str) -> list[Metric]:
    """node_exporter's time collector."""
    available = GaugeMetricFamily(
        "node_time_clocksource_available_info",
        "Available clocksources read from '/sys/devices/system/clocksource'.",
        labels=["clocksource", "device"],
    )
    current = GaugeMetricFamily(
        "node_time_clocksource_current_info",
        "Current clocksource read from '/sys/devices/system/clocksource'.",
        labels=["clocksource", "device"],
    )
    for device in read_clock_sources(sys):
        for name in device.available:
            available.add_metric([name, device.device], 1)
        current.add_metric([device.current, device.device], 1)
    zone_offset = GaugeMetricFamily(
        "node_time_zone_offset_seconds",
        "System time zone offset in seconds.",
        labels=["time_zone"],
    )
    zone_offset.add_metric([zone], offset)
    return [
        available,
        current,
        GaugeMetricFamily("node_time_seconds", "System time in seconds since epoch (1970).", now),
        zone_offset,
    ]


def timex_families(d: ClockDiscipline) -> list[Metric]:
    """node_exporter's timex collector: adjtimex(2) in SI units."""
    gauges = (
        ("offset_seconds", "Time offset in between local system and reference clock.",
         d.offset_seconds),
        ("frequency_adjustment_ratio", "Local clock frequency adjustment.", d.frequency_ratio),
        ("maxerror_seconds", "Maximum error in seconds.", d.maxerror_seconds),
        ("estimated_error_seconds", "Estimated error in seconds.", d.esterror_seconds),
        ("status", "Value of the status array bits.", d.status),
        ("loop_time_constant", "Phase-locked loop time constant.", d.constant),
        ("tick_seconds", "Seconds between clock ticks.", d.tick_seconds),
        ("pps_frequency_hertz", "Pulse per second frequency.", d.pps_frequency_hertz),
        ("pps_jitter_seconds", "Pulse per second jitter.", d.pps_jitter_seconds),
        ("pps_shift_seconds", "Pulse per second interval duration.", d.pps_shift_seconds),
        ("pps_stability_hertz",
         "Pulse per second stability, average of recent frequency changes.",
         d.pps_stability_hertz),
        ("tai_offset_seconds", "International Atomic Time (TAI) offset.", d.tai_offset_seconds),
        ("sync_status", "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
         1 if d.synchronised else 0),
    )  # fmt: skip
    counters = (
        ("pps_jitter", "Pulse per second count of jitter limit exceeded events.",
         d.pps_jitter_count),
        ("pps_calibration", "Pulse per second count of calibration intervals.",
         d.pps_calibration_count),
        ("pps_error", "Pulse per second count of calibration errors.", d.pps_error_count),
        ("pps_stability_exceeded",
         "Pulse per second count of stability limit exceeded events.",
         d.pps_stability_exceeded_count),
    )  # fmt: skip
    families: list[Metric] = [
        GaugeMetricFamily(f"node_timex_{name}", text, value) for name, text, value in gauges
    ]
    families += [
        CounterMetricFamily(f"node_timex_{name}", text, value) for name, text, value in counters
    ]
    return families


@implementer(IMetricsSource)
class ClockSource:
    """The time and timex collectors: what the clock says, and how well it is kept."""

    name = "time"

    def __init__(
        self,
        clock: Callable[[], float],
        discipline: Callable[[], ClockDiscipline] = read_clock_discipline,
        sys: str = SYS,
    ) -> None:
        self._clock = clock
        self._discipline = discipline
        self._sys = sys

    def metrics(self) -> list[Metric]:
        now = self._clock()
        local = time.localtime(now)
        return run_collectors(
            {
                "time": lambda: time_families(now, local.tm_zone, local.tm_gmtoff, self._sys),
                "timex": lambda: timex_families(self._discipline()),
            }
        )


def filefd_families(proc: str) -> list[Metric]:
    handles = read_file_handles(proc)
    return [
        GaugeMetricFamily(
            "node_filefd_allocated", "File descriptor statistics: allocated.", handles.allocated
        ),
        GaugeMetricFamily(
            "node_filefd_maximum", "File descriptor statistics: maximum.", handles.maximum
        ),
    ]


def entropy_families(proc: str) -> list[Metric]:
    entropy = read_entropy(proc)
    return [
        GaugeMetricFamily(
            "node_entropy_available_bits", "Bits of available entropy.", entropy.available_bits
        ),
        GaugeMetricFamily(
            "node_entropy_pool_size_bits", "Bits of entropy pool.", entropy.pool_size_bits
        ),
    ]


#: node_exporter's help for each /proc/net/stat/nf_conntrack column it reports
CONNTRACK_HELP = {
    "found": "Number of searched entries which were successful.",
    "invalid": "Number of packets seen which can not be tracked.",
    "ignore": "Number of packets seen which are already connected to a conntrack entry.",
    "insert": "Number of entries inserted into the list.",
    "insert_failed": "Number of entries for which list insertion was attempted but failed.",
    "drop": "Number of packets dropped due to conntrack failure.",
    "early_drop": "Number of dropped conntrack entries to make room for new ones, "
    "if maximum table size was reached.",
    "search_restart": "Number of conntrack table lookups which had to be restarted due to "
    "hashtable resizes.",
}


def conntrack_families(proc: str) -> list[Metric]:
    """None of it when netfilter's connection tracking is not loaded, as node_exporter."""
    conntrack = read_conntrack(proc)
    if conntrack is None:
        return []
    families: list[Metric] = [
        GaugeMetricFamily(
            "node_nf_conntrack_entries",
            "Number of currently allocated flow entries for connection tracking.",
            conntrack.entries,
        ),
        GaugeMetricFamily(
            "node_nf_conntrack_entries_limit",
            "Maximum size of connection tracking table.",
            conntrack.limit,
        ),
    ]
    families += [
        GaugeMetricFamily(f"node_nf_conntrack_stat_{name}", CONNTRACK_HELP[name], value)
        for name, value in conntrack.stats.items()
    ]
    return families


@implementer(IMetricsSource)
class KernelSource:
    """The filefd, entropy and conntrack collectors: /proc/sys counters."""

    name = "kernel"

    def __init__(self, proc: str = PROC) -> None:
        self._proc = proc

    def metrics(self) -> list[Metric]:
        return run_collectors(
            {
                "conntrack": lambda: conntrack_families(self._proc),
                "entropy": lambda: entropy_families(self._proc),
                "filefd": lambda: filefd_families(self._proc),
            }
        )


@implementer(IMetricsSource)
class OwnProcessSource:
    """
    The exporter's own `process_*` families, as every Prometheus client library exposes
    them: prometheus_client's process collector, plus node_exporter's (Go client's)
    `process_virtual_memory_max_bytes`, which the dashboards' memory panel reads.
    """

    name = "process"

    def __init__(self, proc: str = PROC) -> None:
        self._proc = proc
        self._collector = ProcessCollector(proc=proc, registry=None)

    def metrics(self) -> list[Metric]:
        families = list(self._collector.collect())
        families.append(
            GaugeMetricFamily(
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes.",
                read_own_address_space_limit(self._proc),
            )
        )
        return families
