# -*- test-case-name: tests.test_cpu -*-
"""The `cpu` module: load averages, overall and per-CPU utilisation, recent history; and
for /metrics, node_exporter's cpu, loadavg, stat, interrupts and schedstat families.

Utilisation is the share of each mode (proc(5) /proc/stat: user, nice, system, idle,
iowait, irq, softirq, steal) between two readings, as top(1) shows it; the history is a
ring of what the sparklines draw, taken every five seconds by the module's own sampler
(see twistedspy/history.py).

/proc/stat and /proc/loadavg are read on the reactor thread, not through
`run_blocking`: the kernel builds both from counters in memory (no disk, no mount that
can hang), and the read and parse take about 50 µs on 2 CPUs (bench/metrics.py),
less than handing the work to a thread and back would cost.

node_exporter's hwmon collector is served here too: its readings are mostly the CPU's
temperatures (coretemp, k10temp) beside those of the fans that cool it, and no page of
its own shows them. Its files are read through `run_blocking`: a hwmon read may be a
transaction on a slow bus (I2C, an NVMe admin command), not kernel memory.
"""

from __future__ import annotations

import math
import os
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from twisted.internet.defer import Deferred
from twisted.plugin import IPlugin
from zope.interface import implementer

from twistedspy.collectors import PartlyCollected, joined, run_collectors
from twistedspy.context import ModuleContext
from twistedspy.history import Recorder, SampledModule, Sampler, column
from twistedspy.interfaces import (
    IGlance,
    IInfoModule,
    IMetricsSource,
    IModuleFactory,
    IReactorSafe,
)
from twistedspy.procfs import PROC, SYS
from twistedspy.procfs.hwmon import HwmonReading, clean_name, read_hwmon, si_value
from twistedspy.procfs.interrupts import (
    CpuSchedule,
    Interrupt,
    read_interrupts,
    read_schedstat,
)
from twistedspy.procfs.stat import (
    MODES,
    CpuTimes,
    LoadAverage,
    ProcStat,
    read_loadavg,
    read_stat,
)
from twistedspy.query import Query
from twistedspy.report import Cell, Column, Page, Report, Series, Table
from twistedspy.thresholds import DEFAULT, Thresholds

#: CPUs beyond this many get no sparkline of their own (the table still lists them)
MAX_CPU_SPARKLINES: Final = 32


@dataclass(frozen=True, slots=True)
class CpuSample:
    #: a monotonic clock's seconds
    taken_at: float
    stat: ProcStat
    load: LoadAverage


CpuSource = Callable[[], CpuSample]


def read_cpu_sample(proc: str = PROC) -> CpuSample:
    return CpuSample(time.monotonic(), read_stat(proc), read_loadavg(proc))


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
    shares: Iterable[Utilisation | None],
    names: Sequence[str],
    thresholds: Thresholds = DEFAULT,
) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for name, share in zip(names, shares, strict=True):
        if share is None:
            rows.append([name, None, *(None for _ in MODES)])
            continue
        busy = thresholds.cpu_busy(round(share.busy, 1))
        rows.append([name, busy, *(round(share.percent[m], 1) for m in MODES)])
    return rows


def load_rows(load: LoadAverage, cpus: int, thresholds: Thresholds = DEFAULT) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for over, value in (
        ("1 minute", load.one),
        ("5 minutes", load.five),
        ("15 minutes", load.fifteen),
    ):
        per_cpu = round(value / cpus, 2) if cpus else None
        rows.append([over, value, thresholds.load(per_cpu)])
    return rows


def cpu_families(stat: ProcStat, ticks_per_second: int) -> list[Metric]:
    """/proc/stat's cpu lines as node_exporter's cpu collector."""
    seconds = CounterMetricFamily(
        "node_cpu_seconds", "Seconds the CPUs spent in each mode.", labels=["cpu", "mode"]
    )
    guest = CounterMetricFamily(
        "node_cpu_guest_seconds",
        "Seconds the CPUs spent in guests (VMs) for each mode.",
        labels=["cpu", "mode"],
    )
    for cpu in stat.cpus:
        number = cpu.name.removeprefix("cpu")
        for mode in MODES:
            seconds.add_metric([number, mode], cpu.mode(mode) / ticks_per_second)
        guest.add_metric([number, "user"], cpu.guest / ticks_per_second)
        guest.add_metric([number, "nice"], cpu.guest_nice / ticks_per_second)
    return [seconds, guest]


def loadavg_families(load: LoadAverage) -> list[Metric]:
    """/proc/loadavg as node_exporter's loadavg collector."""
    return [
        GaugeMetricFamily("node_load1", "1m load average.", load.one),
        GaugeMetricFamily("node_load5", "5m load average.", load.five),
        GaugeMetricFamily("node_load15", "15m load average.", load.fifteen),
    ]


def stat_families(stat: ProcStat) -> list[Metric]:
    """/proc/stat's system counters as node_exporter's stat collector."""
    return [
        GaugeMetricFamily(
            "node_boot_time_seconds", "Node boot time, in unixtime.", stat.boot_time
        ),
        CounterMetricFamily(
            "node_context_switches", "Total number of context switches.", stat.context_switches
        ),
        CounterMetricFamily("node_forks", "Total number of forks.", stat.forks),
        CounterMetricFamily("node_intr", "Total number of interrupts serviced.", stat.interrupts),
        GaugeMetricFamily(
            "node_procs_running", "Number of processes in runnable state.", stat.procs_running
        ),
        GaugeMetricFamily(
            "node_procs_blocked",
            "Number of processes blocked waiting for I/O.",
            stat.procs_blocked,
        ),
    ]


def interrupt_families(interrupts: Sequence[Interrupt]) -> list[Metric]:
    """/proc/interrupts as node_exporter's interrupts collector: one series a source and CPU."""
    family = CounterMetricFamily(
        "node_interrupts", "Interrupt details.", labels=["cpu", "devices", "info", "type"]
    )
    for interrupt in interrupts:
        for cpu, count in enumerate(interrupt.counts):
            family.add_metric([str(cpu), interrupt.devices, interrupt.info, interrupt.type], count)
    return [family]


def schedstat_families(cpus: Sequence[CpuSchedule]) -> list[Metric]:
    """/proc/schedstat as node_exporter's schedstat collector."""
    running = CounterMetricFamily(
        "node_schedstat_running_seconds",
        "Number of seconds CPU spent running a process.",
        labels=["cpu"],
    )
    waiting = CounterMetricFamily(
        "node_schedstat_waiting_seconds",
        "Number of seconds spent by processing waiting for this CPU.",
        labels=["cpu"],
    )
    slices = CounterMetricFamily(
        "node_schedstat_timeslices", "Number of timeslices executed by CPU.", labels=["cpu"]
    )
    for cpu in cpus:
        running.add_metric([cpu.cpu], cpu.running_ns / 1e9)
        waiting.add_metric([cpu.cpu], cpu.waiting_ns / 1e9)
        slices.add_metric([cpu.cpu], cpu.timeslices)
    return [running, waiting, slices]


GLANCE_COLUMNS: Final = (
    Column("Busy", "percent"),
    Column("Load, 1 minute", "float"),
    Column("Load per CPU", "float"),
    Column("CPUs", "int"),
)


#: node_exporter's families for a sensor's special kinds: name, HELP, no property
_HWMON_SPECIAL: Final = {
    "beep_enable": ("node_hwmon_beep_enabled", "Hardware beep enabled"),
    "vrm": ("node_hwmon_voltage_regulator_version", "Hardware voltage regulator"),
    "update_interval": ("node_hwmon_update_interval_seconds", "Hardware monitor update interval"),
}
_POWER_INTERVALS: Final = ("average_interval", "average_interval_min", "average_interval_max")


def hwmon_family(kind: str, prop: str, bare: bool) -> tuple[str, str]:
    """
    node_exporter 1.5's family name and HELP for one property of a sensor of `kind`
    (`bare`: the sensor also has a file without a property, such as `pwm1` beside
    `pwm1_enable`), in the order its hwmon collector decides them.
    """
    name = f"node_hwmon_{kind}"
    if prop == "input":
        if bare:
            name += "_input"
    elif prop:
        name += f"_{clean_name(prop)}"
    if prop in ("fault", "alarm"):
        return name, f"Hardware sensor {prop} status ({kind})"
    if prop == "beep":
        return f"{name}_enabled", "Hardware monitor sensor has beeping enabled"
    if kind in ("in", "cpu"):
        return f"{name}_volts", f"Hardware monitor for voltage ({prop})"
    if kind == "temp" and prop != "type":
        return f"{name}_celsius", f"Hardware monitor for temperature ({prop or 'input'})"
    if kind == "curr":
        return f"{name}_amps", f"Hardware monitor for current ({prop})"
    if kind == "energy":
        return f"{name}_joule_total", f"Hardware monitor for joules used so far ({prop})"
    if kind == "power" and prop == "accuracy":
        return name, "Hardware monitor power meter accuracy, as a ratio"
    if kind == "power" and prop in _POWER_INTERVALS:
        return f"{name}_seconds", f"Hardware monitor power usage update interval ({prop})"
    if kind == "power":
        return f"{name}_watt", f"Hardware monitor for power usage in watts ({prop})"
    if kind == "humidity":
        return name, (
            "Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the "
            f"humidity as a percentage) ({prop})"
        )
    if kind == "fan" and prop in ("input", "min", "max", "target"):
        return f"{name}_rpm", f"Hardware monitor for fan revolutions per minute ({prop})"
    return name, f"Hardware monitor {kind} element {prop}"


def hwmon_families(reading: HwmonReading) -> list[Metric]:
    """
    /sys/class/hwmon as node_exporter's hwmon collector: one family per name it would
    make, families by name and samples by labels as its registry orders them. A chip
    that could not be read fails the collector, after the others' families, as
    node_exporter does.
    """
    samples: dict[str, tuple[str, list[tuple[list[str], float]]]] = {}

    def add(name: str, help_text: str, labels: list[str], value: float) -> None:
        # the first HELP wins: node_exporter's would refuse the scrape on a second one
        samples.setdefault(name, (help_text, []))[1].append((labels, value))

    for chip in reading.chips:
        if chip.chip_name is not None:
            add(
                "node_hwmon_chip_names",
                "Annotation metric for human-readable chip names",
                [chip.chip, chip.chip_name],
                1,
            )
        for sensor in chip.sensors:
            labels = [chip.chip, sensor.name]
            if sensor.label is not None:
                add(
                    "node_hwmon_sensor_label",
                    "Label for given chip and sensor",
                    [chip.chip, sensor.label, sensor.name],
                    1,
                )
            special = _HWMON_SPECIAL.get(sensor.kind)
            if special is not None:
                value = si_value(sensor.kind, "", sensor.text.get("", ""))
                if value is not None:
                    add(*special, labels, value)
                continue
            for prop in sensor.text:
                value = None if prop == "label" else sensor.value(prop)
                if value is not None:
                    add(*hwmon_family(sensor.kind, prop, "" in sensor.text), labels, value)
    families: list[Metric] = []
    for name, (help_text, found) in sorted(samples.items()):
        label_names = {
            "node_hwmon_chip_names": ["chip", "chip_name"],
            "node_hwmon_sensor_label": ["chip", "label", "sensor"],
        }.get(name, ["chip", "sensor"])
        family: GaugeMetricFamily | CounterMetricFamily
        if name.endswith("_total"):
            family = CounterMetricFamily(name, help_text, labels=label_names)
        else:
            family = GaugeMetricFamily(name, help_text, labels=label_names)
        for labels, value in sorted(found, key=lambda sample: sample[0]):
            family.add_metric(labels, value)
        families.append(family)
    if reading.unreadable:
        raise PartlyCollected(families, f"unreadable: {', '.join(reading.unreadable)}")
    return families


# Reactor-safe: /proc/stat is kernel counters in memory, no disk (docs/writing-modules.md).
@implementer(IInfoModule, IMetricsSource, IGlance, IReactorSafe)
class CpuModule(SampledModule):
    """The page, and (as a Service the SpyService starts) the sampler behind its history."""

    name = "cpu"
    title = "CPU"
    description = "Load averages, overall and per-CPU utilisation, and the last ten minutes."

    def __init__(
        self,
        context: ModuleContext,
        source: CpuSource = read_cpu_sample,
        proc: str = PROC,
        sys: str = SYS,
    ) -> None:
        self._source = source
        self._proc = proc
        self._sys = sys
        self._run_blocking = context.run_blocking
        self._ticks = os.sysconf("SC_CLK_TCK")
        self._thresholds = Thresholds.of(context.settings)
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
                Table("Load average", LOAD_COLUMNS, load_rows(now.load, cpus, self._thresholds)),
                Table(
                    "Utilisation",
                    UTILISATION_COLUMNS,
                    utilisation_rows(shares, names, self._thresholds),
                ),
            ),
            notes=(
                f"{cpus} CPUs; {now.load.runnable} of {now.load.entities} tasks runnable. "
                f"Utilisation {interval}; busy = 100 % - idle - iowait.",
                f"History: one sample every {self.sampler.interval:g} s, "
                f"the last {minutes:.1f} minutes.",
            ),
            series=history(points, names[1:], self.sampler.interval),
        )

    def glance(self) -> Sequence[Table]:
        """All CPUs' busy % between the sampler's last two readings, and the load."""
        latest = list(self.readings.latest)
        if not latest:
            return []
        now = latest[-1]
        share = utilisation(latest[0].stat.total, now.stat.total) if len(latest) == 2 else None
        cpus = len(now.stat.cpus) or os.cpu_count() or 1
        busy = None if share is None else round(share.busy, 1)
        per_cpu = round(now.load.one / cpus, 2)
        row = (
            self._thresholds.cpu_busy(busy),
            now.load.one,
            self._thresholds.load(per_cpu),
            cpus,
        )
        return [Table("CPU", GLANCE_COLUMNS, (row,))]

    def metrics(self) -> list[Metric] | Deferred[list[Metric]]:
        # On the reactor, as the page reads it (module docstring): kernel memory, ~50 µs
        # for /proc/stat and /proc/loadavg, as much again for /proc/interrupts on 2 CPUs.
        sample = self._source()
        found = run_collectors(
            {
                "cpu": lambda: cpu_families(sample.stat, self._ticks),
                "loadavg": lambda: loadavg_families(sample.load),
                "stat": lambda: stat_families(sample.stat),
                "interrupts": lambda: interrupt_families(read_interrupts(self._proc)),
                "schedstat": lambda: schedstat_families(read_schedstat(self._proc)),
            }
        )
        hwmon = {"hwmon": lambda: hwmon_families(read_hwmon(self._sys))}
        if not Path(self._sys, "class", "hwmon").is_dir():
            # No hwmon: read_hwmon fails at once, and the collector is listed with
            # success 0 and no families, as node_exporter 1.5 lists it.
            return joined(found, run_collectors(hwmon))
        threaded: Deferred[list[Metric]] = self._run_blocking(run_collectors, hwmon)
        return threaded.addCallback(lambda read: joined(found, read))


@implementer(IPlugin, IModuleFactory)
class CpuFactory:
    name = "cpu"

    def build(self, context: ModuleContext) -> IInfoModule:
        return CpuModule(context)
