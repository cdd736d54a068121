# -*- test-case-name: tests.test_processes -*-
"""The `processes` module: every process, like `ps`, with CPU % between two samples;
and for /metrics, processes summed by state and by user (never one series per process:
PIDs would make series without end), and node_exporter's processes collector, both from
one scan that serves scrapes for SCAN_MAX_AGE seconds.

The scan is twistedspy/procfs/processes.py's, which reads /proc directly (its docstring
says why and how fast); /metrics uses the same reader without the command lines, which
its sums do not need.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from twisted.internet.defer import Deferred, succeed
from twisted.plugin import IPlugin
from zope.interface import implementer

from twistedspy.collectors import Families, run_collectors
from twistedspy.context import ModuleContext
from twistedspy.inflight import SharedCollection
from twistedspy.interfaces import IInfoModule, IMetricsSource, IModuleFactory, IReactorSafe
from twistedspy.masking import shown_command_line
from twistedspy.procfs import PROC
from twistedspy.procfs.kernel import ProcessLimits, read_process_limits
from twistedspy.procfs.processes import ProcessSample, ProcessSnapshot, ProcfsProcessSource
from twistedspy.query import Query
from twistedspy.report import Cell, Column, InvalidQuery, Mark, Page, Report, Table

ProcessSource = Callable[[], ProcessSnapshot]


# --- the module --------------------------------------------------------------------------

SORT_KEYS: Final = ("pid", "name", "state", "user", "group", "rss", "cpu", "threads", "start")
#: sort keys whose natural order is biggest first (as top shows them)
_DESCENDING_BY_DEFAULT: Final = frozenset({"rss", "cpu", "threads"})
DEFAULT_SORT: Final = "pid"

COLUMNS: Final = (
    Column("PID", "id", "pid"),
    Column("Name", "text", "name"),
    Column("State", "text", "state"),
    Column("User", "text", "user"),
    Column("Group", "text", "group"),
    Column("RSS", "bytes", "rss"),
    Column("CPU", "percent", "cpu"),
    Column("Threads", "int", "threads"),
    Column("Started", "time", "start"),
    Column("Command", "text"),
)


@dataclass(frozen=True, slots=True)
class ProcessQuery:
    """What `sort=`, `order=`, `user=`, `name=` and `limit=` asked for, checked."""

    sort: str = DEFAULT_SORT
    descending: bool = False
    user: str | None = None
    name: str | None = None
    limit: int | None = None

    @classmethod
    def parse(cls, query: Query) -> ProcessQuery:
        sort = query.get("sort", DEFAULT_SORT).lower()
        if sort not in SORT_KEYS:
            raise InvalidQuery(f"sort must be one of {', '.join(SORT_KEYS)}; got {sort!r}")
        order = query.get("order")
        if order is None or order == "":
            descending = sort in _DESCENDING_BY_DEFAULT
        elif order.lower() in ("asc", "desc"):
            descending = order.lower() == "desc"
        else:
            raise InvalidQuery(f"order must be asc or desc; got {order!r}")
        limit = query.whole_number("limit", minimum=1)
        return cls(
            sort=sort,
            descending=descending,
            user=query.get("user") or None,
            name=query.get("name") or None,
            limit=limit,
        )


@dataclass(frozen=True, slots=True)
class ProcessRow:
    """A process with its CPU % over the last interval (None for one not seen before)."""

    sample: ProcessSample
    cpu_percent: float | None


def _sort_value(row: ProcessRow, key: str) -> str | int | float | None:
    s = row.sample
    match key:
        case "pid":
            return s.pid
        case "name":
            return s.name.lower()
        case "state":
            return s.state
        case "user":
            return s.user
        case "group":
            return s.group
        case "rss":
            return s.rss
        case "cpu":
            return row.cpu_percent
        case "threads":
            return s.threads
        case _:
            return s.start_time


def select_rows(rows: Iterable[ProcessRow], wanted: ProcessQuery) -> list[ProcessRow]:
    """Filter, sort (ties by PID, unknown values last in either order) and limit."""
    chosen = [
        r
        for r in rows
        if (wanted.user is None or r.sample.user == wanted.user)
        and (wanted.name is None or wanted.name.lower() in r.sample.name.lower())
    ]
    chosen.sort(key=lambda r: r.sample.pid)
    known = [r for r in chosen if _sort_value(r, wanted.sort) is not None]
    unknown = [r for r in chosen if _sort_value(r, wanted.sort) is None]
    known.sort(key=lambda r: _sort_value(r, wanted.sort), reverse=wanted.descending)  # type: ignore[arg-type, return-value]
    ordered = known + unknown
    return ordered if wanted.limit is None else ordered[: wanted.limit]


_STATE_WHY: Final = {
    "D": "uninterruptible sleep: usually waiting on disk or network I/O",
}


def process_cells(row: ProcessRow) -> tuple[Cell, ...]:
    s = row.sample
    state: Cell = Mark(s.state, _STATE_WHY[s.state]) if s.state in _STATE_WHY else s.state
    if s.cmdline is None:
        command = None
    elif s.cmdline:
        command = shown_command_line(s.cmdline)
    else:
        command = f"[{s.name}]"  # kernel thread or zombie, shown as ps shows it
    cpu = None if row.cpu_percent is None else round(row.cpu_percent, 1)
    return (
        s.pid,
        s.name,
        state,
        s.user,
        s.group,
        s.rss,
        cpu,
        s.threads,
        s.start_time,
        command,
    )


@dataclass(slots=True)
class CpuTracker:
    """Keeps the previous sample's CPU time per (pid, start time) between requests."""

    previous: dict[tuple[int, float | None], float] = field(default_factory=dict)
    previous_at: float | None = None

    def rows(self, snapshot: ProcessSnapshot) -> list[ProcessRow]:
        elapsed = None if self.previous_at is None else snapshot.taken_at - self.previous_at
        rows = []
        current: dict[tuple[int, float | None], float] = {}
        for s in snapshot.processes:
            key = (s.pid, s.start_time)
            percent = None
            if s.cpu_seconds is not None:
                current[key] = s.cpu_seconds
                before = self.previous.get(key)
                if before is not None and elapsed is not None and elapsed > 0:
                    percent = max(0.0, (s.cpu_seconds - before) / elapsed * 100)
            rows.append(ProcessRow(s, percent))
        self.previous, self.previous_at = current, snapshot.taken_at
        return rows


def process_families(snapshot: ProcessSnapshot) -> list[Metric]:
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
    families: list[Metric] = []
    for by, prefix in (("state", "twistedspy_processes"), ("user", "twistedspy_user_processes")):
        what = f"by {by}" if by == "state" else "by effective user"
        families.append(_gauges(prefix, f"Processes {what}.", by, count[by]))
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


#: seconds a scan serves /metrics before the next scrape scans again: a thousand processes
#: cost tens of milliseconds to walk, node_exporter's whole default scrape about ten
SCAN_MAX_AGE: Final = 10.0


def node_process_families(snapshot: ProcessSnapshot, limits: ProcessLimits) -> list[Metric]:
    """
    node_exporter's processes collector (off by default there, on here: the dashboards'
    process panels read it), but for `node_processes_threads_state`, which would read
    every thread's own stat file.
    """
    states = Counter(p.state for p in snapshot.processes)
    age = f" From a scan up to {SCAN_MAX_AGE:g} s old."
    return [
        GaugeMetricFamily(
            "node_processes_threads",
            "Allocated threads in system." + age,
            sum(p.threads or 0 for p in snapshot.processes),
        ),
        GaugeMetricFamily(
            "node_processes_max_threads", "Limit of threads in the system", limits.threads_max
        ),
        _gauges("node_processes_state", "Number of processes in each state." + age, "state",
                states),
        GaugeMetricFamily(
            "node_processes_pids", "Number of PIDs." + age, len(snapshot.processes)
        ),
        GaugeMetricFamily(
            "node_processes_max_processes", "Number of max PIDs limit", limits.pid_max
        ),
    ]  # fmt: skip


def _gauges(name: str, text: str, label: str, values: Mapping[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=[label])
    for key in sorted(values):
        family.add_metric([key], values[key])
    return family


# Reactor-safe: returns a Deferred; the scan and the report are built in threads.
@implementer(IInfoModule, IMetricsSource, IReactorSafe)
class ProcessesModule:
    name = "processes"
    title = "Processes"
    description = "Every process: state, owner, memory, CPU %, threads, command line."

    def __init__(
        self,
        context: ModuleContext,
        source: ProcessSource | None = None,
        proc: str = PROC,
        totals: ProcessSource | None = None,
    ) -> None:
        self._context = context
        self._source: ProcessSource = source if source is not None else ProcfsProcessSource(proc)
        if totals is None:
            # /metrics: stat files only, half the cost (ProcfsProcessSource says what it
            # gives up); the page reads status too
            totals = ProcfsProcessSource(proc, cmdline=False, status=False)

        def scan() -> list[Metric]:
            snapshot = totals()
            return [
                *process_families(snapshot),
                *node_process_families(snapshot, read_process_limits(proc)),
            ]

        self._totals: SharedCollection[list[Metric]] = SharedCollection(
            lambda: context.run_blocking(run_collectors, {"processes": scan})
        )
        self._latest: tuple[float, list[Metric]] | None = None
        self._cpu = CpuTracker()
        self._scan: SharedCollection[list[ProcessRow]] = SharedCollection(self._start_scan)
        #: fires once the first sample, taken now so that the first request already
        #: has an interval to measure CPU % over, is in
        self.primed: Deferred[None] = self._scan().addCallbacks(
            lambda _: None, lambda f: context.log.failure("first process sample failed", f)
        )

    def _start_scan(self) -> Deferred[list[ProcessRow]]:
        # CpuTracker runs in the worker thread too; SharedCollection guarantees one at a time.
        return self._context.run_blocking(lambda: self._cpu.rows(self._source()))

    def collect(self, query: Query) -> Deferred[Page]:
        wanted = ProcessQuery.parse(query)
        # Sorting and a thousand rows of cells take milliseconds: in the pool too, so the
        # reactor keeps answering small pages while a big one is built.
        compute = self._context.run_computation or self._context.run_blocking
        return self._scan().addCallback(lambda rows: compute(self._report, rows, wanted))

    def metrics(self) -> Deferred[list[Metric]]:
        now = self._context.reactor.seconds()
        if self._latest is not None and now - self._latest[0] < SCAN_MAX_AGE:
            reused = Families(self._latest[1])  # no work done for this scrape: seconds 0
            return succeed(reused)
        return self._totals().addCallback(self._keep, now)

    def _keep(self, families: list[Metric], at: float) -> list[Metric]:
        self._latest = (at, families)
        return families

    def _report(self, rows: list[ProcessRow], wanted: ProcessQuery) -> Page:
        chosen = select_rows(rows, wanted)
        order = "descending" if wanted.descending else "ascending"
        notes = (
            f"{len(chosen)} of {len(rows)} processes, sorted by {wanted.sort} ({order}). "
            "CPU % is measured since the previous sample (100 % = one CPU); "
            "secrets in command lines are masked.",
        )
        table = Table("Processes", COLUMNS, [process_cells(r) for r in chosen])
        return Report(title=self.title, tables=(table,), notes=notes)


@implementer(IPlugin, IModuleFactory)
class ProcessesFactory:
    name = "processes"

    def build(self, context: ModuleContext) -> IInfoModule:
        return ProcessesModule(context)
