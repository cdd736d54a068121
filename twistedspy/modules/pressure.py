# -*- test-case-name: tests.test_pressure -*-
"""The `pressure` module: the kernel's pressure stall information (PSI) for CPU,
memory, I/O and IRQ, with ten minutes of history, beside what waits (runnable and
blocked tasks); and for /metrics, node_exporter's pressure families.

PSI (Documentation/accounting/psi.rst) says what share of the time some task (`some`)
or every non-idle task at once (`full`) was stalled waiting for a resource: a machine
can be 100 % busy yet no task waits, or 30 % busy while half the time goes to waiting
for the disk. A kernel without it (before 4.20, built without CONFIG_PSI, or booted with
`psi=0`) gets a page that says so; the tasks that wait are still shown.

Every file here is a few lines the kernel writes from memory: read on the reactor, as
cpu.py reads /proc/stat.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from twisted.plugin import IPlugin
from zope.interface import implementer

from twistedspy.collectors import run_collectors
from twistedspy.context import ModuleContext
from twistedspy.history import Recorder, SampledModule, Sampler, column
from twistedspy.interfaces import (
    IGlance,
    IInfoModule,
    IMetricsSource,
    IModuleFactory,
    IReactorSafe,
)
from twistedspy.procfs import PROC
from twistedspy.procfs.pressure import RESOURCES, Pressure, Stall, read_pressure
from twistedspy.procfs.stat import LoadAverage, read_loadavg, read_stat
from twistedspy.query import Query
from twistedspy.report import Cell, Column, Mark, Page, Report, Series, Table

#: a resource stalled on this share of the last 10 s is marked
STALLED_PERCENT: Final = 10.0
NO_PSI: Final = (
    "This kernel reports no pressure stall information: it needs Linux 4.20 or later "
    "built with CONFIG_PSI, and not booted with psi=0."
)


@dataclass(frozen=True, slots=True)
class PressureSample:
    #: a monotonic clock's seconds
    taken_at: float
    #: each resource the kernel reports on; empty when it reports none
    pressures: tuple[Pressure, ...]
    #: why PSI could not be read, when the files are there but unreadable
    unreadable: str | None
    #: tasks runnable and blocked on I/O now (/proc/stat procs_running, procs_blocked)
    running: int
    blocked: int
    load: LoadAverage


PressureSource = Callable[[], PressureSample]


def read_pressure_sample(proc: str = PROC) -> PressureSample:
    unreadable = None
    try:
        pressures = read_pressure(proc)
    except OSError as e:
        pressures, unreadable = (), f"{e.filename}: {e.strerror}"
    stat = read_stat(proc)
    return PressureSample(
        time.monotonic(),
        pressures,
        unreadable,
        stat.procs_running,
        stat.procs_blocked,
        read_loadavg(proc),
    )


#: where each quantity sits in a pressure history point; then `some` and `full` avg10
#: of each of RESOURCES in turn
RUNNING, BLOCKED, FIRST_RESOURCE = range(3)


def pressure_point(before: PressureSample | None, after: PressureSample) -> array[float]:
    """Runnable and blocked tasks, then each resource's some and full avg10 (NaN: none)."""
    values = [float(after.running), float(after.blocked)]
    found = {p.resource: p for p in after.pressures}
    for resource in RESOURCES:
        p = found.get(resource)
        values.append(math.nan if p is None or p.some is None else p.some.avg10)
        values.append(math.nan if p is None or p.full is None else p.full.avg10)
    return array("d", values)


def pressure_history(points: Sequence[array[float]], step: float) -> list[Series]:
    series = []
    for index, resource in enumerate(RESOURCES):
        for offset, kind in enumerate(("some", "full")):
            values = column(points, FIRST_RESOURCE + 2 * index + offset)
            if values:
                title = f"{resource}, {kind} tasks stalled, 10 s average (%)"
                series.append(Series(title, "percent", values, step))
    series += [
        Series("Runnable tasks", "int", column(points, RUNNING), step),
        Series("Tasks blocked on I/O", "int", column(points, BLOCKED), step),
    ]
    return series


PSI_COLUMNS: Final = (
    Column("Resource"),
    Column("Stalled"),
    Column("10 s", "percent"),
    Column("60 s", "percent"),
    Column("300 s", "percent"),
    Column("Total", "seconds"),
)
WAITING_COLUMNS: Final = (Column("Tasks"), Column("Now", "int"))


GLANCE_COLUMNS: Final = (
    Column("Resource"),
    Column("Some, 10 s", "percent"),
    Column("Full, 10 s", "percent"),
)


def recent_stall(resource: str, kind: str, stall: Stall | None) -> Cell:
    """A 10 s average, marked at or past STALLED_PERCENT; None where the kernel has none."""
    if stall is None:
        return None
    if stall.avg10 < STALLED_PERCENT:
        return stall.avg10
    who = "some task" if kind == "some" else "every task"
    return Mark(
        stall.avg10,
        f"{who} waited for {resource} at least {STALLED_PERCENT:g} % of the last 10 s",
    )


def psi_rows(pressures: Sequence[Pressure]) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for p in pressures:
        for kind, stall in (("some", p.some), ("full", p.full)):
            if stall is None:
                continue
            recent = recent_stall(p.resource, kind, stall)
            rows.append(
                [p.resource, kind, recent, stall.avg60, stall.avg300, stall.total_us / 1e6]
            )
    return rows


def waiting_rows(sample: PressureSample) -> list[list[Cell]]:
    return [
        ["runnable (running or waiting for a CPU)", sample.running],
        ["blocked, waiting for I/O", sample.blocked],
        ["scheduling entities in all (/proc/loadavg)", sample.load.entities],
    ]


#: node_exporter 1.5's pressure families: resource, line, name, help
_FAMILIES: Final = (
    (
        "cpu",
        "some",
        "node_pressure_cpu_waiting_seconds",
        "Total time in seconds that processes have waited for CPU time",
    ),
    (
        "io",
        "some",
        "node_pressure_io_waiting_seconds",
        "Total time in seconds that processes have waited due to IO congestion",
    ),
    (
        "io",
        "full",
        "node_pressure_io_stalled_seconds",
        "Total time in seconds no process could make progress due to IO congestion",
    ),
    (
        "memory",
        "some",
        "node_pressure_memory_waiting_seconds",
        "Total time in seconds that processes have waited for memory",
    ),
    (
        "memory",
        "full",
        "node_pressure_memory_stalled_seconds",
        "Total time in seconds no process could make progress due to memory congestion",
    ),
)


def pressure_families(pressures: Sequence[Pressure]) -> list[Metric]:
    """PSI totals as node_exporter's pressure collector names them (seconds)."""
    found = {p.resource: p for p in pressures}
    families: list[Metric] = []
    for resource, kind, name, help_text in _FAMILIES:
        p = found.get(resource)
        stall: Stall | None = None if p is None else (p.some if kind == "some" else p.full)
        if stall is not None:
            families.append(CounterMetricFamily(name, help_text, stall.total_us / 1e6))
    return families


# Reactor-safe: PSI, /proc/stat and /proc/loadavg are kernel counters in memory, no disk.
@implementer(IInfoModule, IMetricsSource, IReactorSafe, IGlance)
class PressureModule(SampledModule):
    """The page, and (as a Service the SpyService starts) the sampler behind its history."""

    name = "pressure"
    title = "Pressure"
    description = "How long tasks stalled for CPU, memory, I/O and IRQ; who waits now."

    def __init__(
        self, context: ModuleContext, source: PressureSource = read_pressure_sample
    ) -> None:
        self._source = source
        self.readings = Recorder(source, pressure_point)
        self.sampler: Sampler[array[float]] = Sampler(self.readings, context.reactor, context.log)

    def collect(self, query: Query) -> Page:
        now = self._source()
        points = list(self.sampler.samples)
        minutes = len(points) * self.sampler.interval / 60
        notes = []
        if now.unreadable is not None:
            notes.append(f"Pressure stall information could not be read: {now.unreadable}.")
        elif not now.pressures:
            notes.append(NO_PSI)
        else:
            notes.append(
                "Share of the time some task, or every non-idle task at once (full), "
                "stalled waiting for the resource, averaged over 10, 60 and 300 s; "
                "total stalled time since boot."
            )
        notes.append(
            f"History: one sample every {self.sampler.interval:g} s, "
            f"the last {minutes:.1f} minutes."
        )
        tables = [Table("What waits", WAITING_COLUMNS, waiting_rows(now))]
        if now.pressures:
            tables.insert(
                0, Table("Pressure stall information", PSI_COLUMNS, psi_rows(now.pressures))
            )
        return Report(
            title=self.title,
            tables=tables,
            notes=notes,
            series=pressure_history(points, self.sampler.interval),
        )

    def glance(self) -> Sequence[Table]:
        """Each resource's 10 s averages from the sampler's latest reading."""
        if not self.readings.latest:
            return []
        pressures = self.readings.latest[-1].pressures
        rows: list[list[Cell]] = [
            [
                p.resource,
                recent_stall(p.resource, "some", p.some),
                recent_stall(p.resource, "full", p.full),
            ]
            for p in pressures
        ]
        return [Table("Pressure stalls", GLANCE_COLUMNS, rows)] if rows else []

    def metrics(self) -> list[Metric]:
        # On the reactor (module docstring). No PSI is a failed collector, as for
        # node_exporter: its success is 0, the scrape goes on.
        def pressure() -> list[Metric]:
            sample = self._source()
            if sample.unreadable is not None:
                raise OSError(sample.unreadable)
            if not sample.pressures:
                raise LookupError(NO_PSI)
            return pressure_families(sample.pressures)

        return run_collectors({"pressure": pressure})


@implementer(IPlugin, IModuleFactory)
class PressureFactory:
    name = "pressure"

    def build(self, context: ModuleContext) -> IInfoModule:
        return PressureModule(context)
