# -*- test-case-name: tests.test_metrics -*-
"""The `metrics` module: the same facts as the pages, for Prometheus, at `/metrics`.

Names and labels are node_exporter's wherever it has the metric (so that dashboards
made for it, such as Grafana's "Node Exporter Full", work unchanged); `twistedspy_*`
names cover what it lacks: processes by state and by user (never one series per
process: PIDs would make series without end), each collector's duration and success,
and the server's own requests. The exposition is written by `prometheus_client`
(`generate_latest` over a registry made for each scrape), which also escapes label
values: process, user, interface and mount names are whatever their owners chose.

Each collector reads through `run_blocking` with a deadline, one run in flight at a
time (inflight.py), and fails alone: its `twistedspy_scrape_collector_success` is then
0 and the others are still served. File systems go through the diskfree module's own
statvfs-with-deadline, so a hung mount gives `node_filesystem_device_error 1` instead
of a hung scrape, and is not asked again while it stays stuck.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from twisted.internet.defer import Deferred, DeferredList
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import implementer

from twistedspy.context import ModuleContext
from twistedspy.inflight import SharedCollection
from twistedspy.interfaces import IInfoModule, IModuleFactory, IReactorSafe
from twistedspy.modules.cpu import MODES, CpuSample, read_cpu_sample
from twistedspy.modules.diskfree import (
    PSEUDO_TYPES,
    DiskfreeModule,
    Mount,
    MountSource,
    Usage,
    read_mounts,
)
from twistedspy.modules.meminfo import read_proc_meminfo
from twistedspy.modules.network import NetworkSample, read_proc_net_dev
from twistedspy.modules.processes import ProcessSnapshot, ProcfsProcessSource
from twistedspy.modules.version import read_os_release, read_small_file
from twistedspy.query import Query
from twistedspy.report import InvalidQuery, Page, RawBody

#: Prometheus text format 0.0.4, what `generate_latest` writes
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
COLLECT: Final = "collect[]"
EXCLUDE: Final = "exclude[]"

Families = list[Metric]

# --- metric families from parsed facts (pure functions, tested with fixtures) -------------

_NOT_IN_NAME: Final = re.compile(r"[^a-zA-Z0-9_]")


def meminfo_families(text: str) -> Families:
    """
    Every /proc/meminfo field, named as node_exporter's meminfo collector names it:
    `Active(anon)` becomes `node_memory_Active_anon_bytes`; a field counted in kB gets
    `_bytes` and is scaled, one without a unit (`HugePages_Total`) keeps its name.
    """
    families: Families = []
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if not fields:
            continue
        try:
            value = float(fields[0])
        except ValueError:
            continue
        name = key.strip().replace("(", "_").replace(")", "")
        if fields[1:] == ["kB"]:
            value *= 1024
            name += "_bytes"
        name = _NOT_IN_NAME.sub("_", name)
        families.append(
            GaugeMetricFamily(f"node_memory_{name}", f"Memory information field {name}.", value)
        )
    return families


def cpu_families(sample: CpuSample, ticks_per_second: int) -> Families:
    """/proc/stat and /proc/loadavg as node_exporter's cpu, stat and loadavg collectors."""
    seconds = CounterMetricFamily(
        "node_cpu_seconds", "Seconds the CPUs spent in each mode.", labels=["cpu", "mode"]
    )
    guest = CounterMetricFamily(
        "node_cpu_guest_seconds",
        "Seconds the CPUs spent in guests (VMs) for each mode.",
        labels=["cpu", "mode"],
    )
    for cpu in sample.stat.cpus:
        number = cpu.name.removeprefix("cpu")
        for mode in MODES:
            seconds.add_metric([number, mode], cpu.mode(mode) / ticks_per_second)
        guest.add_metric([number, "user"], cpu.guest / ticks_per_second)
        guest.add_metric([number, "nice"], cpu.guest_nice / ticks_per_second)
    stat, load = sample.stat, sample.load
    return [
        seconds,
        guest,
        GaugeMetricFamily("node_load1", "1m load average.", load.one),
        GaugeMetricFamily("node_load5", "5m load average.", load.five),
        GaugeMetricFamily("node_load15", "15m load average.", load.fifteen),
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


def network_families(sample: NetworkSample) -> Families:
    """/proc/net/dev as node_exporter's netdev collector names it."""
    counters = [
        ("receive_bytes", "rx_bytes"),
        ("receive_packets", "rx_packets"),
        ("receive_errs", "rx_errors"),
        ("receive_drop", "rx_drops"),
        ("transmit_bytes", "tx_bytes"),
        ("transmit_packets", "tx_packets"),
        ("transmit_errs", "tx_errors"),
        ("transmit_drop", "tx_drops"),
        ("transmit_colls", "collisions"),
    ]
    families: Families = []
    for name, field in counters:
        family = CounterMetricFamily(
            f"node_network_{name}",
            f"Network device statistic {name}.",
            labels=["device"],
        )
        for interface in sample.interfaces:
            family.add_metric([interface.name], getattr(interface, field))
        families.append(family)
    return families


#: node_exporter's default mount point exclusion (collector/filesystem_linux.go)
_IGNORED_MOUNT_POINTS: Final = re.compile(
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)


def exported_mounts(mounts: Sequence[Mount]) -> list[Mount]:
    """
    The mounts node_exporter would export: no pseudo file systems (diskfree's list), not
    under /dev, /proc, /sys (its default exclusion), each mount point once (the last
    mounted there is the one visible).
    """
    chosen: dict[str, Mount] = {}
    for m in mounts:
        if m.fs_type in PSEUDO_TYPES or _IGNORED_MOUNT_POINTS.match(m.mount_point):
            continue
        chosen.pop(m.mount_point, None)
        chosen[m.mount_point] = m
    return list(chosen.values())


def filesystem_families(answers: Sequence[tuple[Mount, Usage | None]]) -> Families:
    """
    node_exporter's filesystem metrics; a mount with no answer (hung, or statvfs failed)
    gets only `node_filesystem_device_error 1`, as node_exporter does.
    """
    labels = ["device", "fstype", "mountpoint"]

    def gauge(name: str, text: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"node_filesystem_{name}", text, labels=labels)

    size = gauge("size_bytes", "Filesystem size in bytes.")
    free = gauge("free_bytes", "Filesystem free space in bytes.")
    avail = gauge("avail_bytes", "Filesystem space available to non-root users in bytes.")
    files = gauge("files", "Filesystem total file nodes.")
    files_free = gauge("files_free", "Filesystem total free file nodes.")
    readonly = gauge("readonly", "Filesystem read-only status.")
    error = gauge("device_error", "Whether an error occurred while getting statistics.")
    for mount, usage in answers:
        key = [mount.device, mount.fs_type, mount.mount_point]
        error.add_metric(key, 0 if usage is not None else 1)
        if usage is None:
            continue
        size.add_metric(key, usage.size)
        free.add_metric(key, usage.size - usage.used)
        avail.add_metric(key, usage.available)
        files.add_metric(key, (usage.inodes_used or 0) + (usage.inodes_free or 0))
        files_free.add_metric(key, usage.inodes_free or 0)
        readonly.add_metric(key, 1 if usage.readonly else 0)
    return [size, free, avail, files, files_free, readonly, error]


def process_families(snapshot: ProcessSnapshot) -> Families:
    """Processes summed by state and by user: counts, resident memory, CPU seconds."""
    count: dict[str, Counter[str]] = {"state": Counter(), "user": Counter()}
    rss: dict[str, defaultdict[str, float]] = {
        "state": defaultdict(float),
        "user": defaultdict(float),
    }
    cpu: dict[str, defaultdict[str, float]] = {
        "state": defaultdict(float),
        "user": defaultdict(float),
    }
    for p in snapshot.processes:
        for by, key in (("state", p.state), ("user", p.user if p.user is not None else "")):
            count[by][key] += 1
            rss[by][key] += p.rss or 0
            cpu[by][key] += p.cpu_seconds or 0.0
    families: Families = []
    for by, prefix in (("state", "twistedspy_processes"), ("user", "twistedspy_user_processes")):
        what = f"by {by}" if by == "state" else "by effective user"
        families.append(
            _gauges(prefix, f"Processes {what}.", by, count[by]),
        )
        families.append(
            _gauges(
                f"{prefix}_resident_memory_bytes",
                f"Resident memory of the processes {what}, summed.",
                by,
                rss[by],
            )
        )
        families.append(
            _gauges(
                f"{prefix}_cpu_seconds",
                f"CPU time used so far by the processes alive now, {what}, summed.",
                by,
                cpu[by],
            )
        )
    return families


def _gauges(name: str, text: str, label: str, values: Mapping[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=[label])
    for key in sorted(values):
        family.add_metric([key], values[key])
    return family


def uname_families(
    uname: os.uname_result, domainname: str, os_release: Mapping[str, str]
) -> Families:
    info = GaugeMetricFamily(
        "node_uname_info",
        "Labeled system information as provided by the uname system call.",
        labels=["domainname", "machine", "nodename", "release", "sysname", "version"],
    )
    info.add_metric(
        [domainname, uname.machine, uname.nodename, uname.release, uname.sysname, uname.version],
        1,
    )
    # node_exporter's os collector: the os-release fields it copies into labels
    keys = ["build_id", "id", "id_like", "image_id", "image_version", "name", "pretty_name",
            "variant", "variant_id", "version", "version_codename", "version_id"]  # fmt: skip
    os_info = GaugeMetricFamily(
        "node_os_info", "A metric with a constant '1' value labeled by os-release fields.",
        labels=keys,
    )  # fmt: skip
    os_info.add_metric([os_release.get(k.upper(), "") for k in keys], 1)
    return [info, os_info]


def read_uname() -> Families:
    domainname = read_small_file("/proc/sys/kernel/domainname").strip()
    return uname_families(os.uname(), domainname, read_os_release())


def scrape_families(results: Sequence[CollectorResult]) -> Families:
    duration = GaugeMetricFamily(
        "twistedspy_scrape_collector_duration_seconds",
        "twistedspy: duration of a collector scrape.",
        labels=["collector"],
    )
    success = GaugeMetricFamily(
        "twistedspy_scrape_collector_success",
        "twistedspy: whether a collector succeeded.",
        labels=["collector"],
    )
    for r in results:
        duration.add_metric([r.name], r.seconds)
        success.add_metric([r.name], 1 if r.ok else 0)
    return [duration, success]


def exposition(families: Iterable[Metric]) -> bytes:
    """The text format for these families, written by prometheus_client."""

    class Fixed:
        def __init__(self, found: list[Metric]) -> None:
            self.found = found

        def collect(self) -> Iterator[Metric]:
            return iter(self.found)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed(list(families)))
    return generate_latest(registry)


# --- the module ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CollectorResult:
    name: str
    families: Families
    seconds: float
    ok: bool


Collect = Callable[[], Deferred[Families]]


# Reactor-safe: returns a Deferred; each collector reads through run_blocking.
@implementer(IInfoModule, IReactorSafe)
class MetricsModule:
    name = "metrics"
    title = "Metrics"
    description = "Prometheus exposition with node_exporter's names; collect[]= and exclude[]=."

    def __init__(self, context: ModuleContext, mounts: MountSource = read_mounts) -> None:
        self._context = context
        self._mounts = mounts
        self._deadline = context.settings.module_timeout / 2
        self._own_diskfree: DiskfreeModule | None = None
        ticks = os.sysconf("SC_CLK_TCK")
        processes = ProcfsProcessSource(cmdline=False)

        def blocking(work: Callable[[], Families]) -> Collect:
            # One run in flight per collector: a stuck read holds one thread, not one per scrape.
            return SharedCollection(lambda: context.run_blocking(work))

        self.collectors: dict[str, Collect] = {
            "cpu": blocking(lambda: cpu_families(read_cpu_sample(), ticks)),
            "diskfree": self._filesystems,
            "meminfo": blocking(lambda: meminfo_families(read_proc_meminfo())),
            "network": blocking(lambda: network_families(read_proc_net_dev())),
            "processes": blocking(lambda: process_families(processes())),
            "server": self._server,
            "time": self._time,
            "version": blocking(read_uname),
        }

    def chosen(self, query: Query) -> list[str]:
        """`collect[]=` names the collectors wanted (all by default), `exclude[]=` drops some."""
        wanted, dropped = query.getall(COLLECT), query.getall(EXCLUDE)
        unknown = sorted({*wanted, *dropped} - set(self.collectors))
        if unknown:
            raise InvalidQuery(
                f"no such collector: {', '.join(unknown)}; "
                f"the collectors are {', '.join(self.collectors)}"
            )
        names = [n for n in self.collectors if not wanted or n in wanted]
        return [n for n in names if n not in dropped]

    def collect(self, query: Query) -> Deferred[Page]:
        names = self.chosen(query)
        return Deferred.fromCoroutine(self._scrape(names))

    async def _scrape(self, names: list[str]) -> Page:
        results = await DeferredList([self._timed(n) for n in names], fireOnOneErrback=True)
        done = [r for _, r in results]
        families = [f for r in done for f in r.families]
        families.extend(scrape_families(done))
        return RawBody(exposition(families), CONTENT_TYPE)

    def _timed(self, name: str) -> Deferred[CollectorResult]:
        started = time.perf_counter()
        running = self.collectors[name]()
        running.addTimeout(self._deadline, self._context.reactor)

        def finished(result: Families | Failure) -> CollectorResult:
            seconds = time.perf_counter() - started
            if isinstance(result, Failure):
                self._context.log.failure(
                    "metrics collector {collector} failed", result, collector=name
                )
                return CollectorResult(name, [], seconds, ok=False)
            return CollectorResult(name, result, seconds, ok=True)

        return running.addBoth(finished)

    def _diskfree(self) -> DiskfreeModule:
        """The served diskfree module, so both know the same stuck mounts; else our own."""
        for module in self._context.served():
            if isinstance(module, DiskfreeModule):
                return module
        if self._own_diskfree is None:
            self._own_diskfree = DiskfreeModule(self._context)
        return self._own_diskfree

    def _filesystems(self) -> Deferred[Families]:
        return Deferred.fromCoroutine(self._measure_filesystems())

    async def _measure_filesystems(self) -> Families:
        disk = self._diskfree()
        mounts = exported_mounts(await self._context.run_blocking(self._mounts))
        answers = await DeferredList(
            [disk.measure(m.mount_point) for m in mounts], consumeErrors=True
        )
        return filesystem_families(
            [(m, usage if ok else None) for m, (ok, usage) in zip(mounts, answers, strict=True)]
        )

    def _server(self) -> Deferred[Families]:
        requests = self._context.requests
        found: Families = [] if requests is None else list(requests.collect())
        done: Deferred[Families] = Deferred()
        done.callback(found)
        return done

    def _time(self) -> Deferred[Families]:
        done: Deferred[Families] = Deferred()
        done.callback(
            [
                GaugeMetricFamily(
                    "node_time_seconds", "System time in seconds since epoch (1970).", time.time()
                )
            ]
        )
        return done


@implementer(IPlugin, IModuleFactory)
class MetricsFactory:
    name = "metrics"

    def build(self, context: ModuleContext) -> IInfoModule:
        return MetricsModule(context)
