# -*- test-case-name: tests.test_cpu -*-
"""The `cpu` module: load averages, overall and per-CPU utilisation, recent history.

Utilisation is the share of each mode (proc(5) /proc/stat: user, nice, system, idle,
iowait, irq, softirq, steal) between two readings, as top(1) shows it; the history is a
ring of what the sparklines draw, taken every five seconds by the module's own sampler
(see history.py).

/proc/stat and /proc/loadavg are read on the reactor thread, not through
`run_blocking`: the kernel builds both from counters in memory (no disk, no mount that
can hang), and the read and parse take about 50 µs on 2 CPUs (bench/metrics.py),
less than handing the work to a thread and back would cost.
"""

from __future__ import annotations

import math
import os
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from twisted.plugin import IPlugin
from zope.interface import implementer

from twistedspy.context import ModuleContext
from twistedspy.interfaces import IInfoModule, IModuleFactory, IReactorSafe
from twistedspy.modules.history import Recorder, SampledModule, Sampler, column
from twistedspy.query import Query
from twistedspy.report import Cell, Column, Mark, Page, Report, Series, Table

#: the modes of /proc/stat's cpu lines, in the kernel's order (proc(5)); `guest` and
#: `guest_nice` follow but are already counted in user and nice
MODES: Final = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
#: CPUs beyond this many get no sparkline of their own (the table still lists them)
MAX_CPU_SPARKLINES: Final = 32
BUSY_PERCENT: Final = 90.0


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """One `cpu` or `cpuN` line: clock ticks (USER_HZ) spent in each mode since boot."""

    #: "cpu" for the total, "cpu0", "cpu1" ... for each CPU
    name: str
    user: int
    nice: int
    system: int
    idle: int
    iowait: int
    irq: int
    softirq: int
    steal: int
    guest: int
    guest_nice: int

    def mode(self, mode: str) -> int:
        value: int = getattr(self, mode)
        return value

    @property
    def total(self) -> int:
        # guest time is already inside user (and guest_nice inside nice): not added again
        return sum(self.mode(m) for m in MODES)


@dataclass(frozen=True, slots=True)
class ProcStat:
    """What /proc/stat says: CPU times, and the system-wide counters node_exporter reads."""

    total: CpuTimes
    cpus: tuple[CpuTimes, ...]
    boot_time: int
    context_switches: int
    forks: int
    interrupts: int
    procs_running: int
    procs_blocked: int


def parse_proc_stat(text: str) -> ProcStat:
    """Parse /proc/stat (proc(5)); older kernels lack the last cpu fields: read as 0."""
    total: CpuTimes | None = None
    cpus: list[CpuTimes] = []
    counters: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        key = fields[0]
        if key.startswith("cpu"):
            ticks = [int(v) for v in fields[1:11]]
            ticks += [0] * (10 - len(ticks))
            times = CpuTimes(key, *ticks)
            if key == "cpu":
                total = times
            else:
                cpus.append(times)
        elif len(fields) >= 2 and fields[1].isdigit():
            counters[key] = int(fields[1])
    if total is None:
        raise ValueError("no cpu line in /proc/stat")
    return ProcStat(
        total=total,
        cpus=tuple(cpus),
        boot_time=counters.get("btime", 0),
        context_switches=counters.get("ctxt", 0),
        forks=counters.get("processes", 0),
        interrupts=counters.get("intr", 0),
        procs_running=counters.get("procs_running", 0),
        procs_blocked=counters.get("procs_blocked", 0),
    )


@dataclass(frozen=True, slots=True)
class LoadAverage:
    one: float
    five: float
    fifteen: float
    #: runnable scheduling entities now, and all of them (the `2/110` of /proc/loadavg)
    runnable: int
    entities: int


def parse_loadavg(text: str) -> LoadAverage:
    """Parse /proc/loadavg: `0.34 0.37 0.23 2/110 19169` (proc(5))."""
    fields = text.split()
    runnable, _, entities = fields[3].partition("/")
    return LoadAverage(
        float(fields[0]), float(fields[1]), float(fields[2]), int(runnable), int(entities)
    )


@dataclass(frozen=True, slots=True)
class CpuSample:
    #: a monotonic clock's seconds
    taken_at: float
    stat: ProcStat
    load: LoadAverage


CpuSource = Callable[[], CpuSample]


def read_cpu_sample() -> CpuSample:
    with open("/proc/stat", "rb") as f:
        stat = f.read().decode("ascii", "replace")
    with open("/proc/loadavg", "rb") as f:
        load = f.read().decode("ascii", "replace")
    return CpuSample(time.monotonic(), parse_proc_stat(stat), parse_loadavg(load))


@dataclass(frozen=True, slots=True)
class Utilisation:
    """Each mode's share of the time between two readings, in percent (sums to 100)."""

    name: str
    percent: dict[str, float]

    @property
    def busy(self) -> float:
        return 100.0 - self.percent["idle"] - self.percent["iowait"]


def utilisation(before: CpuTimes, after: CpuTimes) -> Utilisation | None:
    """Shares between two readings of one CPU; None if no tick passed (or a CPU reset)."""
    elapsed = after.total - before.total
    if elapsed <= 0:
        return None
    percent = {m: max(0, after.mode(m) - before.mode(m)) * 100 / elapsed for m in MODES}
    return Utilisation(after.name, percent)


def utilisations(before: ProcStat, after: ProcStat) -> list[Utilisation | None]:
    """The total first, then each CPU present in both readings (CPUs can go offline)."""
    earlier = {c.name: c for c in before.cpus}
    shares = [utilisation(before.total, after.total)]
    for cpu in after.cpus:
        previous = earlier.get(cpu.name)
        shares.append(None if previous is None else utilisation(previous, cpu))
    return shares


#: where each quantity sits in a cpu history point; each CPU's busy % follows in order
LOAD, BUSY, USER, SYSTEM, IOWAIT, FIRST_CPU = range(6)


def cpu_point(before: CpuSample | None, after: CpuSample) -> array[float]:
    """
    What the sparklines draw of one sample: the 1-minute load, the busy, user, system
    and iowait % of all CPUs since the sample before, then each CPU's busy %; NaN where
    there is no sample before or no tick passed.
    """
    overall = None if before is None else utilisation(before.stat.total, after.stat.total)
    values = [after.load.one]
    if overall is None:
        values += [math.nan] * (FIRST_CPU - BUSY)
    else:
        values.append(round(overall.busy, 1))
        values += [round(overall.percent[m], 1) for m in ("user", "system", "iowait")]
    for index, cpu in enumerate(after.stat.cpus):
        share = None
        if before is not None and index < len(before.stat.cpus):
            share = utilisation(before.stat.cpus[index], cpu)
        values.append(math.nan if share is None else round(share.busy, 1))
    # built from the whole list: an array grown in place keeps spare room
    return array("d", values)


def history(points: Sequence[array[float]], cpus: Sequence[str], step: float) -> list[Series]:
    """Sparklines from the ring of points: overall modes, load, then each CPU's busy %."""
    series = [
        Series("Busy, all CPUs (%)", "percent", column(points, BUSY), step),
        Series("User (%)", "percent", column(points, USER), step),
        Series("System (%)", "percent", column(points, SYSTEM), step),
        Series("I/O wait (%)", "percent", column(points, IOWAIT), step),
        Series("Load, 1 minute", "float", column(points, LOAD), step),
    ]
    if points and len(cpus) <= MAX_CPU_SPARKLINES:
        for index, name in enumerate(cpus):
            values = column(points, FIRST_CPU + index)
            series.append(Series(f"Busy, {name} (%)", "percent", values, step))
    return series


UTILISATION_COLUMNS: Final = (
    Column("CPU"),
    Column("Busy", "percent"),
    *(Column(m, "percent") for m in MODES),
)
LOAD_COLUMNS: Final = (Column("Over"), Column("Load", "float"), Column("Per CPU", "float"))


def utilisation_rows(
    shares: Iterable[Utilisation | None], names: Sequence[str]
) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for name, share in zip(names, shares, strict=True):
        if share is None:
            rows.append([name, None, *(None for _ in MODES)])
            continue
        busy: Cell = round(share.busy, 1)
        if share.busy >= BUSY_PERCENT:
            busy = Mark(round(share.busy, 1), f"at least {BUSY_PERCENT:g} % busy")
        rows.append([name, busy, *(round(share.percent[m], 1) for m in MODES)])
    return rows


def load_rows(load: LoadAverage, cpus: int) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for over, value in (
        ("1 minute", load.one),
        ("5 minutes", load.five),
        ("15 minutes", load.fifteen),
    ):
        per_cpu = round(value / cpus, 2) if cpus else None
        cell: Cell = per_cpu
        if per_cpu is not None and per_cpu > 1:
            cell = Mark(per_cpu, "more runnable tasks than CPUs: some wait their turn")
        rows.append([over, value, cell])
    return rows


# Reactor-safe: /proc/stat is kernel counters in memory, no disk (docs/writing-modules.md).
@implementer(IInfoModule, IReactorSafe)
class CpuModule(SampledModule):
    """The page, and (as a Service the SpyService starts) the sampler behind its history."""

    name = "cpu"
    title = "CPU"
    description = "Load averages, overall and per-CPU utilisation, and the last ten minutes."

    def __init__(self, context: ModuleContext, source: CpuSource = read_cpu_sample) -> None:
        self._source = source
        self.readings = Recorder(source, cpu_point)
        self.sampler: Sampler[array[float]] = Sampler(self.readings, context.reactor, context.log)

    def collect(self, query: Query) -> Page:
        now = self._source()
        latest = list(self.readings.latest)
        # Utilisation since the latest sample a second or more ago (the older one will
        # do if both are newer), so the table is always current.
        base = next((s for s in reversed(latest) if now.taken_at - s.taken_at >= 1.0), None)
        if base is None and latest:
            base = latest[0]
        names = ["all", *(c.name for c in now.stat.cpus)]
        if base is None:
            shares: list[Utilisation | None] = [None] * len(names)
            interval = "no earlier sample yet"
        else:
            shares = utilisations(base.stat, now.stat)
            interval = f"over the last {now.taken_at - base.taken_at:.1f} s"
        cpus = len(now.stat.cpus) or os.cpu_count() or 1
        points = list(self.sampler.samples)
        minutes = len(points) * self.sampler.interval / 60
        return Report(
            title=self.title,
            tables=(
                Table("Load average", LOAD_COLUMNS, load_rows(now.load, cpus)),
                Table("Utilisation", UTILISATION_COLUMNS, utilisation_rows(shares, names)),
            ),
            notes=(
                f"{cpus} CPUs; {now.load.runnable} of {now.load.entities} tasks runnable. "
                f"Utilisation {interval}; busy = 100 % - idle - iowait.",
                f"History: one sample every {self.sampler.interval:g} s, "
                f"the last {minutes:.1f} minutes.",
            ),
            series=history(points, names[1:], self.sampler.interval),
        )


@implementer(IPlugin, IModuleFactory)
class CpuFactory:
    name = "cpu"

    def build(self, context: ModuleContext) -> IInfoModule:
        return CpuModule(context)
