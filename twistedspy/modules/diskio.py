# -*- test-case-name: tests.test_diskio -*-
"""The `diskio` module: each block device's I/O rates, waits and utilisation, as
`iostat -x` shows them, with ten minutes of history; and for /metrics, node_exporter's
diskstats families.

Rates come from two readings of /proc/diskstats (twistedspy/procfs/diskstats.py): the
one taken now and the latest of the module's sampler a second or more ago, so a request
never sleeps to measure. The formulas are iostat's (sysstat, rd_stats.c
compute_ext_disk_stats): await = time spent by the requests / requests, %util = time the
device was busy / elapsed, aqu-sz = weighted time / elapsed.

/proc/diskstats is read on the reactor, as cpu.py reads /proc/stat: the kernel writes
it from counters in memory (no disk, nothing that can hang), a few tens of µs.
"""

from __future__ import annotations

import math
import re
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
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
from twistedspy.procfs.diskstats import (
    SECTOR_BYTES,
    DiskCounters,
    UdevDisk,
    parent_disk,
    read_diskstats,
    read_udev_disk,
)
from twistedspy.query import Query
from twistedspy.report import Cell, Column, InvalidQuery, Mark, Page, Report, Series, Table

BUSY_PERCENT: Final = 90.0
#: devices that hold no disk of their own: hidden unless `all=1`
VIRTUAL_DEVICE: Final = re.compile(r"(loop|z?ram)\d+")
#: node_exporter 1.5's --collector.diskstats.device-exclude default: partitions, loop,
#: ram and floppy devices are left out of /metrics
EXPORT_EXCLUDE: Final = re.compile(r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$")


@dataclass(frozen=True, slots=True)
class DiskSample:
    #: a monotonic clock's seconds
    taken_at: float
    disks: tuple[DiskCounters, ...]


DiskSource = Callable[[], DiskSample]


def read_disk_sample(proc: str = PROC) -> DiskSample:
    return DiskSample(time.monotonic(), read_diskstats(proc))


@dataclass(frozen=True, slots=True)
class DiskRates:
    """One device between two readings, in iostat -x's terms."""

    name: str
    #: the disk a partition belongs to; None for a whole disk
    disk: str | None
    reads_per_second: float
    writes_per_second: float
    read_bytes_per_second: float
    written_bytes_per_second: float
    #: ms a read (a write) took on average, queueing included; None without any
    read_await: float | None
    write_await: float | None
    #: % of the time the device had I/O in flight
    utilisation: float
    in_flight: int
    #: average requests queued or in service (aqu-sz)
    queue_size: float


def disk_rates(
    before: DiskCounters, after: DiskCounters, seconds: float, disk: str | None
) -> DiskRates:
    """iostat's figures for one device; a counter that went back (reset) counts as 0."""

    def delta(field: str) -> int:
        change: int = getattr(after, field) - getattr(before, field)
        return max(0, change)

    reads, writes = delta("reads"), delta("writes")
    elapsed_ms = seconds * 1000
    return DiskRates(
        name=after.name,
        disk=disk,
        reads_per_second=round(reads / seconds, 1),
        writes_per_second=round(writes / seconds, 1),
        read_bytes_per_second=round(delta("read_sectors") * SECTOR_BYTES / seconds, 1),
        written_bytes_per_second=round(delta("written_sectors") * SECTOR_BYTES / seconds, 1),
        read_await=round(delta("read_ms") / reads, 2) if reads else None,
        write_await=round(delta("write_ms") / writes, 2) if writes else None,
        utilisation=round(min(100.0, delta("io_ms") * 100 / elapsed_ms), 1),
        in_flight=after.in_flight,
        queue_size=round(delta("weighted_io_ms") / elapsed_ms, 2),
    )


def shown(disks: Sequence[DiskCounters], show_all: bool) -> list[tuple[DiskCounters, str | None]]:
    """
    The devices the page lists, each with its disk (None for a whole disk), every disk
    followed by its partitions. Without `show_all`, loop and ram devices and those with
    no I/O since boot are left out, and so are the partitions of a disk left out.
    """
    names = {d.name for d in disks}
    parents = {d.name: parent_disk(d.name, names) for d in disks}
    visible = {
        d.name for d in disks if show_all or not (VIRTUAL_DEVICE.fullmatch(d.name) or d.idle)
    }
    ordered: list[tuple[DiskCounters, str | None]] = []
    for disk in disks:
        if parents[disk.name] is not None or disk.name not in visible:
            continue
        ordered.append((disk, None))
        ordered += [
            (p, disk.name) for p in disks if parents[p.name] == disk.name and p.name in visible
        ]
    return ordered


def whole_disks(disks: Sequence[DiskCounters]) -> list[DiskCounters]:
    """The disks the history sums: no partition (counted in its disk), no loop or ram."""
    names = {d.name for d in disks}
    return [
        d
        for d in disks
        if parent_disk(d.name, names) is None and not VIRTUAL_DEVICE.fullmatch(d.name)
    ]


#: where each quantity sits in a diskio history point
READ, WRITTEN, OPERATIONS, BUSIEST = range(4)


def io_point(before: DiskSample | None, after: DiskSample) -> array[float]:
    """
    Bytes read and written per second and operations per second, summed over the
    whole disks, and the busiest disk's utilisation, since the sample before; NaN
    without one.
    """
    seconds = 0.0 if before is None else after.taken_at - before.taken_at
    if before is None or seconds <= 0:
        return array("d", [math.nan] * 4)
    earlier = {d.name: d for d in before.disks}
    rates = [
        disk_rates(earlier[d.name], d, seconds, None)
        for d in whole_disks(after.disks)
        if d.name in earlier
    ]
    return array(
        "d",
        [
            round(sum(r.read_bytes_per_second for r in rates), 1),
            round(sum(r.written_bytes_per_second for r in rates), 1),
            round(sum(r.reads_per_second + r.writes_per_second for r in rates), 1),
            max((r.utilisation for r in rates), default=0.0),
        ],
    )


def io_history(points: Sequence[array[float]], step: float) -> list[Series]:
    return [
        Series("Read, all disks (bytes/s)", "bytes", column(points, READ), step),
        Series("Written, all disks (bytes/s)", "bytes", column(points, WRITTEN), step),
        Series("Reads and writes, all disks (/s)", "float", column(points, OPERATIONS), step),
        Series("Busiest disk's utilisation (%)", "percent", column(points, BUSIEST), step),
    ]


GLANCE_COLUMNS: Final = (
    Column("Read", "rate"),
    Column("Written", "rate"),
    Column("Operations/s", "float"),
    Column("Busiest disk", "percent"),
)


def glance_rows(point: array[float]) -> list[list[Cell]]:
    """One history point as the landing page's row: the busiest disk marked as on the page."""
    busiest: Cell = point[BUSIEST]
    if point[BUSIEST] >= BUSY_PERCENT:
        busiest = Mark(point[BUSIEST], f"a disk busy at least {BUSY_PERCENT:g} % of the time")
    return [[point[READ], point[WRITTEN], point[OPERATIONS], busiest]]


COLUMNS: Final = (
    Column("Device"),
    Column("Disk"),
    Column("Reads/s", "float"),
    Column("Writes/s", "float"),
    Column("Read (bytes/s)", "rate"),
    Column("Written (bytes/s)", "rate"),
    Column("Read await (ms)", "float"),
    Column("Write await (ms)", "float"),
    Column("Utilisation", "percent"),
    Column("In flight", "int"),
    Column("Queue size", "float"),
)


def rate_rows(rates: Sequence[DiskRates], await_limit: float) -> list[list[Cell]]:
    def waited(ms: float | None) -> Cell:
        if ms is not None and ms > await_limit:
            return Mark(ms, f"requests waited more than {await_limit:g} ms on average")
        return ms

    rows: list[list[Cell]] = []
    for r in rates:
        busy: Cell = r.utilisation
        if r.utilisation >= BUSY_PERCENT:
            busy = Mark(r.utilisation, f"busy at least {BUSY_PERCENT:g} % of the time")
        rows.append(
            [
                r.name,
                r.disk,
                r.reads_per_second,
                r.writes_per_second,
                r.read_bytes_per_second,
                r.written_bytes_per_second,
                waited(r.read_await),
                waited(r.write_await),
                busy,
                r.in_flight,
                r.queue_size,
            ]
        )
    return rows


#: node_exporter's diskstats families: name, help, the field, and the unit: a count,
#: sectors of 512 bytes, or milliseconds
_COUNTERS: Final = (
    ("reads_completed", "The total number of reads completed successfully.", "reads", "count"),
    ("reads_merged", "The total number of reads merged.", "reads_merged", "count"),
    ("read_bytes", "The total number of bytes read successfully.", "read_sectors", "sectors"),
    ("read_time_seconds", "The total number of seconds spent by all reads.", "read_ms", "ms"),
    ("writes_completed", "The total number of writes completed successfully.", "writes", "count"),
    ("writes_merged", "The number of writes merged.", "writes_merged", "count"),
    (
        "written_bytes",
        "The total number of bytes written successfully.",
        "written_sectors",
        "sectors",
    ),
    (
        "write_time_seconds",
        "This is the total number of seconds spent by all writes.",
        "write_ms",
        "ms",
    ),
    ("io_time_seconds", "Total seconds spent doing I/Os.", "io_ms", "ms"),
    (
        "io_time_weighted_seconds",
        "The weighted # of seconds spent doing I/Os.",
        "weighted_io_ms",
        "ms",
    ),
    (
        "discards_completed",
        "The total number of discards completed successfully.",
        "discards",
        "count",
    ),
    ("discards_merged", "The total number of discards merged.", "discards_merged", "count"),
    (
        "discarded_sectors",
        "The total number of sectors discarded successfully.",
        "discarded_sectors",
        "count",
    ),
    (
        "discard_time_seconds",
        "This is the total number of seconds spent by all discards.",
        "discard_ms",
        "ms",
    ),
    (
        "flush_requests",
        "The total number of flush requests completed successfully",
        "flushes",
        "count",
    ),
    (
        "flush_requests_time_seconds",
        "This is the total number of seconds spent by all flush requests.",
        "flush_ms",
        "ms",
    ),
)


def _in_base_units(value: int, unit: str) -> float:
    """Bytes and seconds, as Prometheus wants them (ms / 1000 prints 119.359; ms * 0.001,
    119.35900000000001)."""
    if unit == "sectors":
        return value * SECTOR_BYTES
    if unit == "ms":
        return value / 1000
    return value


INFO_LABELS: Final = ("device", "major", "minor", "model", "path", "revision", "serial", "wwn")


#: node_exporter's families for udev's ATA properties: property, name, help
_ATA: Final = (
    ("ID_ATA_WRITE_CACHE", "ata_write_cache", "ATA disk has a write cache."),
    (
        "ID_ATA_WRITE_CACHE_ENABLED",
        "ata_write_cache_enabled",
        "ATA disk has its write cache enabled.",
    ),
    (
        "ID_ATA_ROTATION_RATE_RPM",
        "ata_rotation_rate_rpm",
        "ATA disk rotation rate in RPMs (0 for SSDs).",
    ),
)


def ata_families(records: Mapping[str, UdevDisk]) -> list[Metric]:
    """An ATA disk's write cache and rotation rate (udev's record of each device by
    name), where udev has them; a family no disk has is left out, as node_exporter does."""
    families: list[Metric] = []
    for prop, name, help_text in _ATA:
        family = GaugeMetricFamily(f"node_disk_{name}", help_text, labels=["device"])
        for device, record in records.items():
            value = record.ata.get(prop)
            if value is not None:
                family.add_metric([device], value)
        if family.samples:
            families.append(family)
    return families


def diskstats_families(
    disks: Sequence[DiskCounters], udev: Callable[[int, int], UdevDisk]
) -> list[Metric]:
    """/proc/diskstats as node_exporter's diskstats collector names it."""
    exported = [d for d in disks if not EXPORT_EXCLUDE.search(d.name)]
    families: list[Metric] = []
    info = GaugeMetricFamily(
        "node_disk_info", "Info of /sys/block/<block_device>.", labels=INFO_LABELS
    )
    io_now = GaugeMetricFamily(
        "node_disk_io_now", "The number of I/Os currently in progress.", labels=["device"]
    )
    records = {disk.name: udev(disk.major, disk.minor) for disk in exported}
    for disk in exported:
        found = records[disk.name]
        info.add_metric(
            [
                disk.name,
                str(disk.major),
                str(disk.minor),
                found.model,
                found.path,
                found.revision,
                found.serial,
                found.wwn,
            ],
            1,
        )
        io_now.add_metric([disk.name], disk.in_flight)
    families += [info, io_now, *ata_families(records)]
    for name, help_text, field, unit in _COUNTERS:
        family = CounterMetricFamily(f"node_disk_{name}", help_text, labels=["device"])
        for disk in exported:
            value: int | None = getattr(disk, field)
            if value is None:
                continue  # a field this kernel does not have
            family.add_metric([disk.name], _in_base_units(value, unit))
        families.append(family)
    return families


# Reactor-safe: /proc/diskstats are kernel counters in memory, no disk (module docstring).
@implementer(IInfoModule, IMetricsSource, IReactorSafe, IGlance)
class DiskioModule(SampledModule):
    """The page, and (as a Service the SpyService starts) the sampler behind its history."""

    name = "diskio"
    title = "Disk I/O"
    description = "Each block device: reads and writes per second, bytes, await, utilisation."

    def __init__(
        self,
        context: ModuleContext,
        source: DiskSource = read_disk_sample,
        udev: Callable[[int, int], UdevDisk] = read_udev_disk,
    ) -> None:
        self._source = source
        self._udev = udev
        self._await_limit = context.settings.disk_await_limit
        self.readings = Recorder(source, io_point)
        self.sampler: Sampler[array[float]] = Sampler(self.readings, context.reactor, context.log)

    def collect(self, query: Query) -> Page:
        show_all = query.get("all", "0")
        if show_all not in ("0", "1"):
            raise InvalidQuery(f"all must be 0 or 1; got {show_all!r}")
        try:
            now = self._source()
        except OSError as e:
            # Said on the page, not a 500: the other pages still serve.
            return Report(title=self.title, notes=(f"Could not read {e.filename}: {e.strerror}.",))
        latest = list(self.readings.latest)
        # As cpu.py: rates since the latest sample a second or more ago (the older one
        # will do if both are newer), so the table is always current.
        base = next((s for s in reversed(latest) if now.taken_at - s.taken_at >= 1.0), None)
        if base is None and latest:
            base = latest[0]
        listed = shown(now.disks, show_all == "1")
        seconds = 0.0 if base is None else now.taken_at - base.taken_at
        rows: list[list[Cell]]
        if base is None or seconds <= 0:
            rows = [[d.name, disk, *([None] * 7), d.in_flight, None] for d, disk in listed]
            interval = "no earlier sample yet"
        else:
            earlier = {d.name: d for d in base.disks}
            rates = [disk_rates(earlier.get(d.name, d), d, seconds, disk) for d, disk in listed]
            rows = rate_rows(rates, self._await_limit)
            interval = f"over the last {seconds:.1f} s"
        hidden = len(now.disks) - len(listed)
        points = list(self.sampler.samples)
        minutes = len(points) * self.sampler.interval / 60
        notes = [
            f"Rates {interval}; await is the average time a request took, queueing "
            "included (iostat -x's r_await and w_await).",
            f"History: one sample every {self.sampler.interval:g} s, the last "
            f"{minutes:.1f} minutes.",
        ]
        if hidden:
            notes.append(f"{hidden} loop, ram or never used devices hidden: all=1 shows them.")
        return Report(
            title=self.title,
            tables=(Table("Block devices", COLUMNS, rows),),
            notes=notes,
            series=io_history(points, self.sampler.interval),
        )

    def glance(self) -> Sequence[Table]:
        """Whole disks over the sampler's last interval (partitions counted in their disk)."""
        points = [p for p in self.sampler.samples if not math.isnan(p[READ])]
        if not points:
            return []
        return [Table("Disk I/O, all disks", GLANCE_COLUMNS, glance_rows(points[-1]))]

    def metrics(self) -> list[Metric]:
        # On the reactor, as the page reads it (module docstring).
        return run_collectors(
            {"diskstats": lambda: diskstats_families(self._source().disks, self._udev)}
        )


@implementer(IPlugin, IModuleFactory)
class DiskioFactory:
    name = "diskio"

    def build(self, context: ModuleContext) -> IInfoModule:
        return DiskioModule(context)
