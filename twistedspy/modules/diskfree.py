# -*- test-case-name: tests.test_diskfree -*-
"""The `diskfree` module: mounted file systems, as `df` shows them, hang-proof; and for
/metrics, node_exporter's filesystem families.

Each mount's statvfs runs in a worker thread with a deadline. A mount that misses it
(a stale NFS server) is shown as not responding, and is not asked again while that
thread is still stuck: a worker thread cannot be cancelled, so asking on every request
would pile up one blocked thread per request. When the stuck call finally returns, the
mount is asked again on the next request.

A file system filling up is marked before it is full: the module is also a Service whose
sampler measures the shown mounts once a minute (the same statvfs, deadline and memory of
stuck mounts), and a least-squares line through the last six hours of each mount's
available bytes predicts when it reaches zero, as node-mixin's
NodeFilesystemSpaceFillingUp alert does with `predict_linear` (twistedspy/thresholds.py
decides what is too soon).

Which mounts show (df's rule, gnulib `me_dummy` and df.c): without `all=1`, pseudo file
systems (the types in PSEUDO_TYPES) and any file system with 0 blocks are hidden, and a
device mounted at several places (bind mounts) shows once, at its shortest mount point.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from twisted.internet.defer import Deferred, DeferredList
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import implementer

from twistedspy.collectors import Families, timed_into
from twistedspy.context import ModuleContext
from twistedspy.history import PolledModule
from twistedspy.interfaces import (
    IGlance,
    IInfoModule,
    IMetricsSource,
    IModuleFactory,
    IReactorSafe,
)
from twistedspy.procfs.mounts import Mount, read_mounts
from twistedspy.query import Query
from twistedspy.report import Cell, Column, InvalidQuery, Page, Report, Table, cell_value
from twistedspy.thresholds import DEFAULT, Thresholds

PSEUDO_TYPES: Final = frozenset(
    {
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs",
        "devpts", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "proc", "pstore",
        "rpc_pipefs", "securityfs", "selinuxfs", "sysfs", "tracefs", "none",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Usage:
    """One statvfs(3) answer in df's terms."""

    size: int
    used: int
    available: int
    inodes_used: int | None
    inodes_free: int | None
    #: mounted read-only (statvfs(3) ST_RDONLY), for /metrics' node_filesystem_readonly
    readonly: bool = False

    @classmethod
    def from_statvfs(cls, st: os.statvfs_result) -> Usage:
        # df counts in f_frsize units; "used" is blocks minus free (root's reserve
        # included), "available" what an ordinary user may still write.
        frsize = st.f_frsize or st.f_bsize
        has_inodes = st.f_files > 0  # btrfs and others report 0 inodes
        return cls(
            size=st.f_blocks * frsize,
            used=(st.f_blocks - st.f_bfree) * frsize,
            available=st.f_bavail * frsize,
            inodes_used=st.f_files - st.f_ffree if has_inodes else None,
            inodes_free=st.f_ffree if has_inodes else None,
            readonly=bool(st.f_flag & os.ST_RDONLY),
        )

    @property
    def percent(self) -> float | None:
        # df: used / (used + available), the share ordinary users can fill
        usable = self.used + self.available
        return round(self.used * 100 / usable, 1) if usable else None


StatVfs = Callable[[str], os.statvfs_result]
MountSource = Callable[[], Sequence[Mount]]

COLUMNS: Final = (
    Column("Device"),
    Column("Mounted on"),
    Column("Type"),
    Column("Size", "bytes"),
    Column("Used", "bytes"),
    Column("Available", "bytes"),
    Column("Use", "percent"),
    Column("Inodes used", "int"),
    Column("Inodes free", "int"),
)
#: how many file systems the landing page shows, the fullest first
GLANCE_MOUNTS: Final = 3
#: seconds between two measurements kept for the filling rate
FILL_SAMPLE: Final = 60.0
#: how far back the filling rate looks (node-mixin's predict_linear window)
FILL_WINDOW: Final = 6 * 3600.0
#: the shortest span of measurements a rate is predicted from
FILL_MIN_SPAN: Final = 600.0


def hours_to_full(points: Sequence[tuple[float, int]]) -> float | None:
    """
    Hours until a least-squares line through (seconds, available bytes) reaches zero,
    counted from the last point; None when space is not shrinking or the points span
    less than FILL_MIN_SPAN.
    """
    if len(points) < 3 or points[-1][0] - points[0][0] < FILL_MIN_SPAN:
        return None
    mean_t = sum(t for t, _ in points) / len(points)
    mean_a = sum(a for _, a in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    slope = sum((t - mean_t) * (a - mean_a) for t, a in points) / spread
    if slope >= 0:
        return None
    return points[-1][1] / -slope / 3600


def visible(mounts: Sequence[Mount], usage: dict[str, Usage | None]) -> list[Mount]:
    """df's default choice (module docstring); a mount without an answer stays shown."""
    shown = []
    for m in mounts:
        u = usage.get(m.mount_point)
        if m.fs_type in PSEUDO_TYPES or (u is not None and u.size == 0):
            continue
        shown.append(m)
    by_device: dict[str, Mount] = {}
    for m in shown:
        if not m.device.startswith("/"):
            continue
        kept = by_device.get(m.device)
        if kept is None or len(m.mount_point) < len(kept.mount_point):
            by_device[m.device] = m
    return [m for m in shown if not m.device.startswith("/") or by_device[m.device] is m]


def disk_row(
    mount: Mount,
    usage: Usage | None,
    thresholds: Thresholds = DEFAULT,
    full_in_hours: float | None = None,
) -> tuple[Cell, ...]:
    if usage is None:
        return (mount.device, mount.mount_point, mount.fs_type,
                thresholds.not_responding(), None, None, None, None, None)  # fmt: skip
    percent = thresholds.disk(usage.percent, full_in_hours)
    return (
        mount.device, mount.mount_point, mount.fs_type, usage.size, usage.used,
        usage.available, percent, usage.inodes_used, usage.inodes_free,
    )  # fmt: skip


#: node_exporter's default mount point exclusion (collector/filesystem_linux.go)
_IGNORED_MOUNT_POINTS: Final = re.compile(
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)


def exported_mounts(mounts: Sequence[Mount]) -> list[Mount]:
    """
    The mounts node_exporter would export: no pseudo file systems (PSEUDO_TYPES), not
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


def filesystem_families(answers: Sequence[tuple[Mount, Usage | None]]) -> list[Metric]:
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


GLANCE_COLUMNS: Final = (
    Column("Mounted on"),
    Column("Use", "percent"),
    Column("Available", "bytes"),
    Column("Size", "bytes"),
)


def fullest(rows: Sequence[Sequence[Cell]], count: int = GLANCE_MOUNTS) -> list[tuple[Cell, ...]]:
    """The landing page's rows: mounts not responding first, then the fullest."""

    def fill(row: Sequence[Cell]) -> float:
        use = cell_value(row[6])
        return float(use) if isinstance(use, int | float) else 101.0 if use else 0.0

    return [(r[1], r[6], r[5], r[3]) for r in sorted(rows, key=fill, reverse=True)[:count]]


# Reactor-safe: returns a Deferred; each statvfs goes to run_blocking, and the mount table
# too but for /metrics (metrics).
@implementer(IInfoModule, IMetricsSource, IGlance, IReactorSafe)
class DiskfreeModule(PolledModule):
    name = "diskfree"
    title = "Disk space"
    description = "Mounted file systems: size, used, available, use %, inodes."

    def __init__(
        self,
        context: ModuleContext,
        mounts: MountSource = read_mounts,
        statvfs: StatVfs = os.statvfs,
        deadline: float | None = None,
    ) -> None:
        self._context = context
        self._mounts = mounts
        self._statvfs = statvfs
        self._deadline = deadline if deadline is not None else context.settings.module_timeout / 2
        #: mount points whose statvfs is still running past its deadline
        self.stuck: set[str] = set()
        self._thresholds = Thresholds.of(context.settings)
        #: (reactor seconds, available bytes) of each mount point, one a FILL_SAMPLE
        self.available: dict[str, deque[tuple[float, int]]] = {}
        super().__init__(context.reactor, context.log, FILL_SAMPLE, "file system sample")

    def poll(self) -> Deferred[Page]:
        return self._shown()

    def _shown(self) -> Deferred[Page]:
        """The page as df shows it by default (what the sampler and the glance measure)."""
        return self._context.run_blocking(self._mounts).addCallback(self._measure, False)

    def _record(self, point: str, usage: Usage) -> float | None:
        """Keep one measurement a FILL_SAMPLE; answer the hours until full, if filling."""
        now = self._context.reactor.seconds()
        kept = self.available.setdefault(point, deque())
        if not kept or now - kept[-1][0] >= FILL_SAMPLE:
            kept.append((now, usage.available))
        while kept and now - kept[0][0] > FILL_WINDOW:
            kept.popleft()
        return hours_to_full(kept)

    def collect(self, query: Query) -> Deferred[Page]:
        show_all = query.get("all", "0")
        if show_all not in ("0", "1"):
            raise InvalidQuery(f"all must be 0 or 1; got {show_all!r}")
        mounts = self._context.run_blocking(self._mounts)
        return mounts.addCallback(self._measure, show_all == "1")

    def glance(self) -> Deferred[Sequence[Table]]:
        """The fullest file systems, with the page's deadlines and memory of stuck mounts."""

        def shown(page: Page) -> Sequence[Table]:
            assert isinstance(page, Report)
            return [Table("Fullest file systems", GLANCE_COLUMNS, fullest(page.tables[0].rows))]

        return self._shown().addCallback(shown)

    def metrics(self) -> Deferred[list[Metric]]:
        """
        The exported mounts' statvfs, with the page's deadline and memory of stuck
        mounts: a hung mount gives `node_filesystem_device_error 1` instead of a hung
        scrape, and is not asked again while it stays stuck.
        """
        return Deferred.fromCoroutine(self._measure_exported())

    async def _measure_exported(self) -> list[Metric]:
        # Timed where the work runs, not the waits for threads (collectors.Families). The
        # mount table is kernel memory, read here on the reactor: a hand-off to a thread
        # costs more than the read, on every scrape (docs/performance.md).
        spent: list[float] = []
        mounts = exported_mounts(timed_into(spent, self._mounts))
        answers = await DeferredList(
            [self._stat(m.mount_point, spent) for m in mounts], consumeErrors=True
        )
        found = Families(
            filesystem_families(
                [
                    (m, usage if ok else None)
                    for m, (ok, usage) in zip(mounts, answers, strict=True)
                ]
            )
        )
        found.seconds = sum(spent)
        return found

    def _stat(self, path: str, spent: list[float] | None = None) -> Deferred[Usage | None]:
        """
        statvfs for one mount point: its Usage, or None if it missed the deadline. Its
        seconds go to `spent`, the deadline's for a call that missed it.
        """
        if path in self.stuck:
            answer: Deferred[Usage | None] = Deferred()
            answer.callback(None)
            return answer
        if spent is None:
            running = self._context.run_blocking(self._statvfs, path)
        else:
            running = self._context.run_blocking(timed_into, spent, self._statvfs, path)
        answer = Deferred()

        def late(result: os.statvfs_result | Failure) -> None:
            self.stuck.discard(path)  # it answered at last: ask again next time

        def arrived(result: os.statvfs_result | Failure) -> None:
            if answer.called:
                return late(result)
            if timer.active():  # not when the reactor has already dropped it at shutdown
                timer.cancel()
            if isinstance(result, Failure):
                answer.errback(result)
            else:
                answer.callback(Usage.from_statvfs(result))
            return None

        def too_late() -> None:
            self.stuck.add(path)
            if spent is not None:
                spent.append(self._deadline)
            answer.callback(None)

        timer = self._context.reactor.callLater(self._deadline, too_late)
        running.addBoth(arrived)
        return answer

    def _measure(self, mounts: Sequence[Mount], show_all: bool) -> Deferred[Page]:
        # Every mount point once, even when mounted over several times.
        points = list(dict.fromkeys(m.mount_point for m in mounts))
        asked = DeferredList([self._stat(p) for p in points], consumeErrors=True)

        def report(results: list[tuple[bool, Usage | None]]) -> Page:
            usage: dict[str, Usage | None] = {}
            failed: set[str] = set()
            for point, (ok, value) in zip(points, results, strict=True):
                if ok:  # otherwise value is the Failure
                    usage[point] = value
                else:
                    failed.add(point)  # unmounted meanwhile, or not ours to read
            chosen = [m for m in mounts if m.mount_point not in failed]
            if not show_all:
                chosen = visible(chosen, usage)
            rows = []
            for m in chosen:
                measured = usage[m.mount_point]
                hours = None if measured is None else self._record(m.mount_point, measured)
                rows.append(disk_row(m, measured, self._thresholds, hours))
            notes = [
                "Pseudo file systems and duplicate mounts are hidden; all=1 shows them."
                if not show_all
                else "All mounts, pseudo file systems included."
            ]
            if self.stuck:
                notes.append(f"Not responding: {', '.join(sorted(self.stuck))}.")
            return Report(self.title, (Table("File systems", COLUMNS, rows),), notes)

        return asked.addCallback(report)


@implementer(IPlugin, IModuleFactory)
class DiskfreeFactory:
    name = "diskfree"

    def build(self, context: ModuleContext) -> IInfoModule:
        return DiskfreeModule(context)
