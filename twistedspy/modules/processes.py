# -*- test-case-name: tests.test_processes,tests.test_process_page -*-
"""The `processes` module: every process, like `ps`, with CPU % between two samples;
one process in detail (`?pid=N`); and for /metrics, processes summed by state and by
user (never one series per process: PIDs would make series without end), and
node_exporter's processes collector, both from one scan that serves scrapes for
SCAN_MAX_AGE seconds.

The scan is twistedspy/procfs/processes.py's, which reads /proc directly (its docstring
says why and how fast); /metrics uses the same reader without the command lines, which
its sums do not need.

The page of every process is scanned, sorted and rendered in a child process (a
`twistedspy.worker.Worker` running this file through `python -m twistedspy.child`):
in a thread of the server the page's Python held the GIL the reactor needs, and small
pages waited behind it (docs/architecture.md, "The process worker"). The child keeps the
CPU % bookkeeping and answers with the page's bytes. While no child runs (it died and is
being restarted), the page is made in the server's threads as before, so a request still
gets its page.

The module is also a Service: while the server runs it asks for a scan every five
seconds (in the child, or in a thread without one) and keeps the few rows the landing
page's top five and stuck processes need (`glance`), so the landing page never scans.
A page request scans afresh. While no one has looked at the landing page or a process
page for WATCHED_FOR seconds (a server only Prometheus asks, say), the sampler rests,
scanning once every RESTING_INTERVAL seconds: a scan of every process is the largest
part of what an unwatched server spends (docs/performance.md). The landing page that
wakes it shows the rows of the last rested scan, CPU % over up to that interval.

The page of one process and the /metrics families stay in the server: the first reads a
dozen small files of one process, the second is a stat-only scan at most every
SCAN_MAX_AGE seconds whose families the metrics module merges as objects.

The page of one process is `/processes?pid=N` rather than a path of its own: the
dispatcher maps one path segment to one module, the process page is this module's data,
and a query keeps the login, format and refresh parameters working as on every page.
"""

from __future__ import annotations

import grp
import json
import pwd
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from twisted.internet.defer import Deferred, succeed
from twisted.plugin import IPlugin
from twisted.protocols import amp
from twisted.python.failure import Failure
from typing_extensions import override
from zope.interface import implementer

from twistedspy.collectors import Families, run_collectors
from twistedspy.context import ModuleContext
from twistedspy.history import SAMPLE_INTERVAL, PolledModule
from twistedspy.inflight import SharedCollection
from twistedspy.interfaces import (
    IGlance,
    IInfoModule,
    IMetricsSource,
    IModuleFactory,
    IPageRenderer,
    IReactorSafe,
)
from twistedspy.masking import shown_command_line
from twistedspy.procfs import PROC
from twistedspy.procfs.kernel import ProcessLimits, read_process_limits
from twistedspy.procfs.process import Ids, ProcessDetail, ProcessGone, read_process
from twistedspy.procfs.processes import ProcessSample, ProcessSnapshot, ProcfsProcessSource
from twistedspy.query import Query
from twistedspy.render import Renderer
from twistedspy.report import (
    Cell,
    Column,
    InvalidQuery,
    Link,
    NavItem,
    Page,
    PageContext,
    PageError,
    RawBody,
    Report,
    Table,
    cell_mark,
)
from twistedspy.thresholds import DEFAULT, Thresholds
from twistedspy.worker import LargeBytes, Worker, WorkerUnavailable, child_argv, serve_stdio

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
    #: seconds it has been in state D, as far as the scans have seen; None if not in D
    d_seconds: float | None = None


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


def process_link(pid: int) -> Link:
    """A PID that leads to its process's page."""
    return Link(pid, f"/processes?pid={pid}")


def command_line(s: ProcessSample) -> str | None:
    if s.cmdline is None:
        return None
    if s.cmdline:
        return shown_command_line(s.cmdline)
    return f"[{s.name}]"  # kernel thread or zombie, shown as ps shows it


def process_cells(row: ProcessRow, thresholds: Thresholds = DEFAULT) -> tuple[Cell, ...]:
    s = row.sample
    state = thresholds.process_state(s.state, row.d_seconds)
    command = command_line(s)
    cpu = None if row.cpu_percent is None else round(row.cpu_percent, 1)
    return (
        process_link(s.pid),
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
    #: when each process now in state D was first seen in it (a monotonic clock)
    in_d_since: dict[tuple[int, float | None], float] = field(default_factory=dict)

    def rows(self, snapshot: ProcessSnapshot) -> list[ProcessRow]:
        elapsed = None if self.previous_at is None else snapshot.taken_at - self.previous_at
        rows = []
        current: dict[tuple[int, float | None], float] = {}
        in_d: dict[tuple[int, float | None], float] = {}
        for s in snapshot.processes:
            key = (s.pid, s.start_time)
            percent = None
            if s.cpu_seconds is not None:
                current[key] = s.cpu_seconds
                before = self.previous.get(key)
                if before is not None and elapsed is not None and elapsed > 0:
                    percent = max(0.0, (s.cpu_seconds - before) / elapsed * 100)
            d_seconds = None
            if s.state == "D":
                in_d[key] = self.in_d_since.get(key, snapshot.taken_at)
                d_seconds = snapshot.taken_at - in_d[key]
            rows.append(ProcessRow(s, percent, d_seconds))
        self.previous, self.previous_at = current, snapshot.taken_at
        self.in_d_since = in_d
        return rows


#: seconds a scan serves /metrics before the next scrape scans again: a thousand processes
#: cost tens of milliseconds to walk, node_exporter's whole default scrape about ten
SCAN_MAX_AGE: Final = 15.0
#: what the HELP of each family from that scan says of its age
SCAN_AGE: Final = f" From a scan up to {SCAN_MAX_AGE:g} s old."


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
        families.append(_gauges(prefix, f"Processes {what}.{SCAN_AGE}", by, count[by]))
        families.append(
            _gauges(
                f"{prefix}_resident_memory_bytes",
                f"Resident memory of the processes {what}, summed.{SCAN_AGE}",
                by,
                rss[by],
            )
        )
        families.append(
            _gauges(
                f"{prefix}_cpu_seconds",
                f"CPU time used so far by the processes alive now, {what}, summed.{SCAN_AGE}",
                by,
                cpu[by],
            )
        )
    return families


#: seconds after the last look at the landing page or a process page that the process
#: sampler keeps scanning every SAMPLE_INTERVAL; then it rests (module docstring)
WATCHED_FOR: Final = 600.0
#: seconds between the resting sampler's scans
RESTING_INTERVAL: Final = 60.0


def node_process_families(snapshot: ProcessSnapshot, limits: ProcessLimits) -> list[Metric]:
    """
    node_exporter's processes collector (off by default there, on here: the dashboards'
    process panels read it), but for `node_processes_threads_state`, which would read
    every thread's own stat file.
    """
    states = Counter(p.state for p in snapshot.processes)
    return [
        GaugeMetricFamily(
            "node_processes_threads",
            "Allocated threads in system." + SCAN_AGE,
            sum(p.threads or 0 for p in snapshot.processes),
        ),
        GaugeMetricFamily(
            "node_processes_max_threads", "Limit of threads in the system", limits.threads_max
        ),
        _gauges("node_processes_state", "Number of processes in each state." + SCAN_AGE, "state",
                states),
        GaugeMetricFamily(
            "node_processes_pids", "Number of PIDs." + SCAN_AGE, len(snapshot.processes)
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


def _id_name(ids: Ids | None, look_up: Callable[[int], str]) -> str | None:
    """`alice (1000)`, or `alice (1000) / root (0)` when real and effective differ."""
    if ids is None:
        return None

    def named(number: int) -> str:
        try:
            return f"{look_up(number)} ({number})"
        except KeyError:
            return str(number)

    if ids.real == ids.effective:
        return named(ids.real)
    return f"{named(ids.real)} real / {named(ids.effective)} effective"


def _unreadable(value: object) -> str | None:
    return "not readable" if value is None else None


FIELD_COLUMNS: Final = (Column("Field"), Column("Value"))
RESOURCE_COLUMNS: Final = (
    Column("Started", "time"),
    Column("User CPU (s)", "float"),
    Column("System CPU (s)", "float"),
    Column("Threads", "int"),
    Column("Nice", "int"),
    Column("RSS", "bytes"),
    Column("PSS", "bytes"),
    Column("USS", "bytes"),
    Column("Swap", "bytes"),
    Column("Read", "bytes"),
    Column("Written", "bytes"),
)
DESCRIPTOR_COLUMNS: Final = (
    Column("Open", "int"),
    Column("Limit (soft)", "int"),
    Column("Limit (hard)", "int"),
    Column("Files", "int"),
    Column("Sockets", "int"),
    Column("Pipes", "int"),
    Column("Other", "int"),
)
SOCKET_COLUMNS: Final = (
    Column("Protocol"),
    Column("State"),
    Column("Local address"),
    Column("Local port", "id"),
    Column("Remote address"),
    Column("Remote port", "id"),
)
RELATIVE_COLUMNS: Final = (Column("Relation"), Column("PID", "id"), Column("Name"))
LIMIT_COLUMNS: Final = (
    Column("Limit"),
    Column("Soft", "int"),
    Column("Hard", "int"),
    Column("Unit"),
)


def process_report(p: ProcessDetail) -> Report:
    """One process's page: what `htop` shows on one key, environment values left out."""
    command = None if p.cmdline is None else shown_command_line(p.cmdline) or f"[{p.name}]"
    identity = Table(
        "Process",
        FIELD_COLUMNS,
        (
            ("Command line", command or _unreadable(p.cmdline)),
            ("Executable", p.exe or _unreadable(p.exe)),
            ("Working directory", p.cwd or _unreadable(p.cwd)),
            ("User", _id_name(p.uid, lambda n: pwd.getpwuid(n).pw_name)),
            ("Group", _id_name(p.gid, lambda n: grp.getgrgid(n).gr_name)),
            ("State", p.state),
            ("Priority", str(p.priority)),
            (
                "OOM score",
                None if p.oom_score is None else f"{p.oom_score} (adj {p.oom_score_adj})",
            ),
            ("Cgroup", p.cgroup),
        ),
    )
    resources = Table(
        "Time, memory and I/O",
        RESOURCE_COLUMNS,
        (
            (
                p.start_time,
                round(p.user_seconds, 2),
                round(p.system_seconds, 2),
                p.threads,
                p.nice,
                p.rss,
                p.pss,
                p.uss,
                p.swap,
                p.read_bytes,
                p.write_bytes,
            ),
        ),
    )
    tables = [identity, resources]
    d, limit = p.descriptors, p.open_files_limit
    if d is not None:
        soft = None if limit is None else limit.soft
        hard = None if limit is None else limit.hard
        row = (d.total, soft, hard, d.files, d.sockets, d.pipes, d.other)
        tables.append(Table("File descriptors", DESCRIPTOR_COLUMNS, (row,)))
    if p.sockets is not None:
        sockets = [
            (s.protocol, s.state, s.local_address, s.local_port, s.remote_address, s.remote_port)
            for s in sorted(
                p.sockets, key=lambda s: (s.state != "LISTEN", s.protocol, s.local_port)
            )
        ]
        tables.append(Table("Sockets (TCP and UDP)", SOCKET_COLUMNS, sockets))
    relatives: list[tuple[Cell, ...]] = [
        ("parent", process_link(r.pid), r.name) for r in p.parents
    ]
    relatives += [("child", process_link(r.pid), r.name) for r in p.children or ()]
    tables.append(Table("Parents and children", RELATIVE_COLUMNS, relatives))
    tables.append(
        Table("Limits", LIMIT_COLUMNS, [(x.name, x.soft, x.hard, x.unit) for x in p.limits])
    )
    if p.environ_names is not None:
        names = [(n,) for n in p.environ_names]
        tables.append(Table("Environment variable names", (Column("Name"),), names))
    notes = [
        "Secrets in the command line are masked; the environment shows variable names "
        "only, never their values.",
    ]
    if p.descriptors is None:
        notes.append(
            "Open files, sockets, I/O and the environment are readable only by the "
            "process's owner, or by root where the process allows it."
        )
    return Report(title=f"Process {p.pid}: {p.name}", tables=tables, notes=notes)


#: how many processes the landing page lists by CPU and by memory
TOP: Final = 5
#: the largest PID Linux hands out (PID_MAX_LIMIT on 64-bit, proc(5) pid_max)
PID_MAX: Final = 4194304

TOP_COLUMNS: Final = (
    Column("PID", "id"),
    Column("Name"),
    Column("User"),
    Column("CPU", "percent"),
    Column("RSS", "bytes"),
)


def top_rows(rows: Iterable[ProcessRow], key: str, count: int = TOP) -> list[tuple[Cell, ...]]:
    """The `count` biggest by `key` (cpu or rss), as the landing page lists them."""
    chosen = select_rows(rows, ProcessQuery(sort=key, descending=True, limit=count))
    return [
        (
            process_link(r.sample.pid),
            r.sample.name,
            r.sample.user,
            None if r.cpu_percent is None else round(r.cpu_percent, 1),
            r.sample.rss,
        )
        for r in chosen
        if _sort_value(r, key) is not None
    ]


def parse_pid(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= PID_MAX:
        raise InvalidQuery(f"pid must be a process ID (a whole number from 1); got {text!r}")
    return int(text)


def processes_report(
    rows: Sequence[ProcessRow], wanted: ProcessQuery, thresholds: Thresholds = DEFAULT
) -> Report:
    """The page of every process: `rows` filtered, sorted and limited as `wanted` says."""
    chosen = select_rows(rows, wanted)
    order = "descending" if wanted.descending else "ascending"
    notes = (
        f"{len(chosen)} of {len(rows)} processes, sorted by {wanted.sort} ({order}). "
        "CPU % is measured since the previous sample (100 % = one CPU); "
        "secrets in command lines are masked. A PID leads to that process's page.",
    )
    cells = [process_cells(r, thresholds) for r in chosen]
    table = Table("Processes", COLUMNS, cells)
    return Report(title=ProcessesModule.title, tables=(table,), notes=notes)


def glance_rows(rows: Sequence[ProcessRow]) -> list[ProcessRow]:
    """The rows `glance` can show: the top by CPU and by memory, and those in state D."""
    chosen = {
        id(r): r
        for key in ("cpu", "rss")
        for r in select_rows(rows, ProcessQuery(sort=key, descending=True, limit=TOP))
    }
    chosen.update((id(r), r) for r in rows if r.d_seconds)
    return sorted(chosen.values(), key=lambda r: r.sample.pid)


def rows_to_json(rows: Iterable[ProcessRow]) -> bytes:
    return json.dumps(
        [[*(getattr(r.sample, f) for f in ProcessSample.__slots__), r.cpu_percent, r.d_seconds]
         for r in rows]
    ).encode("utf-8")  # fmt: skip


def rows_from_json(data: bytes) -> list[ProcessRow]:
    rows = []
    for *fields, cpu_percent, d_seconds in json.loads(data):
        values = dict(zip(ProcessSample.__slots__, fields, strict=True))
        if values["cmdline"] is not None:
            values["cmdline"] = tuple(values["cmdline"])
        rows.append(ProcessRow(ProcessSample(**values), cpu_percent, d_seconds))
    return rows


def context_to_json(context: PageContext) -> str:
    nav = [(n.name, n.title) for n in context.nav]
    return json.dumps({"host": context.host, "nav": nav, "now": context.now})


def context_from_json(text: str) -> PageContext:
    found = json.loads(text)
    nav = tuple(NavItem(name, title) for name, title in found["nav"])
    return PageContext(found["host"], nav, found["now"])


# --- the child process: the scans, the CPU % and the page's bytes -------------------------


class MakePage(amp.Command):
    """Scan, and render the page of every process for a query in one format."""

    arguments = [(b"query", amp.Unicode()), (b"as_json", amp.Boolean()),
                 (b"context", amp.Unicode())]  # fmt: skip
    response = [(b"body", LargeBytes()), (b"content_type", amp.Unicode())]


class TakeSample(amp.Command):
    """Scan, and answer the rows the landing page shows (`glance_rows`)."""

    arguments = []
    response = [(b"rows", LargeBytes())]


class PageMaker(amp.AMP):
    """The child's side: one scan at a time, each measured against the one before."""

    def __init__(self, source: ProcessSource, thresholds: Thresholds) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._source = source
        self._thresholds = thresholds
        self._cpu = CpuTracker()
        # Its types are fixed per column, as remembering rows needs.
        self._renderer = Renderer(remember_rows=True)

    def rows(self) -> list[ProcessRow]:
        return self._cpu.rows(self._source())

    @MakePage.responder
    def make_page(self, query: str, as_json: bool, context: str) -> dict[str, object]:
        asked = Query(tuple((k, v) for k, v in json.loads(query)))
        report = processes_report(self.rows(), ProcessQuery.parse(asked), self._thresholds)
        page_context = context_from_json(context)
        if as_json:
            response = self._renderer.json(ProcessesModule.name, report, page_context)
        else:
            response = self._renderer.html(ProcessesModule.name, report, asked, page_context)
        return {"body": response.body, "content_type": response.content_type}

    @TakeSample.responder
    def take_sample(self) -> dict[str, object]:
        return {"rows": rows_to_json(glance_rows(self.rows()))}


def worker_argv(thresholds: Thresholds, proc: str) -> list[str]:
    """How the server starts the child: this file, with what the page needs to know."""
    module = __spec__.name if __spec__ is not None else __name__
    return child_argv(module, json.dumps(asdict(thresholds)), proc)


def worker_main(argv: Sequence[str]) -> None:
    thresholds = Thresholds(**json.loads(argv[1]))
    maker = PageMaker(ProcfsProcessSource(argv[2]), thresholds)
    maker.rows()  # the first sample, so that the first page already shows CPU %
    serve_stdio(lambda: maker)


# --- the module ---------------------------------------------------------------------------


# Reactor-safe: returns a Deferred; the scans and the pages are made in the child process
# or in threads.
@implementer(IInfoModule, IMetricsSource, IGlance, IPageRenderer, IReactorSafe)
class ProcessesModule(PolledModule):
    name = "processes"
    title = "Processes"
    description = (
        "Every process: state, owner, memory, CPU %, threads, command line; "
        "?pid=N for one in detail."
    )

    def __init__(
        self,
        context: ModuleContext,
        source: ProcessSource | None = None,
        proc: str = PROC,
        totals: ProcessSource | None = None,
        interval: float = SAMPLE_INTERVAL,
        *,
        worker: Worker | None = None,
    ) -> None:
        self._context = context
        self._proc = proc
        self._thresholds = Thresholds.of(context.settings)
        self._source: ProcessSource = source if source is not None else ProcfsProcessSource(proc)
        #: the child process that makes the page of every process; None: threads make it
        self.worker = worker
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
        #: the rows of the latest scan the landing page can show (module docstring)
        self.latest: list[ProcessRow] = []
        self._scan: SharedCollection[list[ProcessRow]] = SharedCollection(self._start_scan)
        self._sample: SharedCollection[list[ProcessRow]] = SharedCollection(self._take_sample)
        #: when a page last showed this module's rows, and when the sampler last scanned:
        #: unwatched from the start, so a server no one looks at rests from the start
        self._watched_at = context.reactor.seconds() - WATCHED_FOR
        self._sampled_at: float | None = None
        super().__init__(context.reactor, context.log, interval, "process sample")
        #: fires once the first sample, taken now so that the first request already
        #: has an interval to measure CPU % over, is in (the child takes its own)
        self.primed: Deferred[None] = (
            succeed(None)
            if worker is not None
            else self._scan().addCallbacks(
                lambda _: None, lambda f: context.log.failure("first process sample failed", f)
            )
        )

    @override
    def startService(self) -> None:
        super().startService()
        if self.worker is not None:
            self.worker.startService()

    @override
    def stopService(self) -> Deferred[None]:  # type: ignore[override]
        super().stopService()
        return self.worker.stopService() if self.worker is not None else succeed(None)

    def poll(self) -> Deferred[list[ProcessRow]]:
        now = self._context.reactor.seconds()
        resting = now - self._watched_at > WATCHED_FOR
        if resting and self._sampled_at is not None and now - self._sampled_at < RESTING_INTERVAL:
            return succeed(self.latest)
        self._sampled_at = now
        return self._sample()

    def _watched(self) -> None:
        self._watched_at = self._context.reactor.seconds()

    def _take_sample(self) -> Deferred[list[ProcessRow]]:
        if self.worker is None:
            return self._scan()
        asked = self.worker.call(TakeSample)

        def answered(answer: dict[str, Any]) -> list[ProcessRow]:
            return self._keep_rows(rows_from_json(answer["rows"]))

        def without_child(failure: Failure) -> Deferred[list[ProcessRow]]:
            failure.trap(WorkerUnavailable)
            return self._scan()

        return asked.addCallbacks(answered, without_child)

    def _start_scan(self) -> Deferred[list[ProcessRow]]:
        # CpuTracker runs in the worker thread too; SharedCollection guarantees one at a time.
        scan = self._context.run_blocking(lambda: self._cpu.rows(self._source()))
        return scan.addCallback(self._keep_rows)

    def _keep_rows(self, rows: list[ProcessRow]) -> list[ProcessRow]:
        self.latest = glance_rows(rows)
        return rows

    def render_page(self, query: Query, as_json: bool, context: PageContext) -> Deferred[Page]:
        """The page of every process from the child, finished; anything else (one
        process's page, no child running) as a Report the server renders."""
        if query.get("pid") is not None or self.worker is None:
            return self.collect(query)
        self._watched()
        ProcessQuery.parse(query)  # a bad query is 400 here, without asking the child
        asked = self.worker.call(
            MakePage,
            query=json.dumps(query.pairs()),
            as_json=as_json,
            context=context_to_json(context),
        )

        def answered(answer: dict[str, Any]) -> Page:
            return RawBody(answer["body"], answer["content_type"])

        def without_child(failure: Failure) -> Deferred[Page]:
            failure.trap(WorkerUnavailable)
            return self.collect(query)

        return asked.addCallbacks(answered, without_child)

    def collect(self, query: Query) -> Deferred[Page]:
        self._watched()
        pid = query.get("pid")
        if pid is not None:
            return self._detail(parse_pid(pid))
        wanted = ProcessQuery.parse(query)
        # Sorting and a thousand rows of cells take milliseconds: in the pool too, so the
        # reactor keeps answering small pages while a big one is built.
        compute = self._context.run_computation or self._context.run_blocking
        return self._scan().addCallback(
            lambda rows: compute(processes_report, rows, wanted, self._thresholds)
        )

    def glance(self) -> Sequence[Table]:
        """The top five by CPU and by memory, and the stuck ones, from the latest scan."""
        self._watched()
        rows = self.latest
        tables = [
            Table("Top processes by CPU", TOP_COLUMNS, top_rows(rows, "cpu")),
            Table("Top processes by memory", TOP_COLUMNS, top_rows(rows, "rss")),
        ]
        stuck = [
            c
            for c in (process_cells(r, self._thresholds) for r in rows if r.d_seconds)
            if cell_mark(c[2])
        ]
        if stuck:
            tables.append(Table("Processes stuck in state D", COLUMNS, stuck))
        return tables

    def metrics(self) -> Deferred[list[Metric]]:
        now = self._context.reactor.seconds()
        if self._latest is not None and now - self._latest[0] < SCAN_MAX_AGE:
            reused = Families(self._latest[1])  # no work done for this scrape: seconds 0
            return succeed(reused)
        return self._totals().addCallback(self._keep_families, now)

    def _keep_families(self, families: list[Metric], at: float) -> list[Metric]:
        self._latest = (at, families)
        return families

    def _detail(self, pid: int) -> Deferred[Page]:
        def read() -> Page:
            return process_report(read_process(pid, self._proc))

        def gone(failure: Failure) -> Failure:
            if failure.check(ProcessGone):
                raise PageError(
                    f"There is no process {pid}: it has exited, or it never existed.", 404
                )
            return failure

        # The report too in the thread: naming ids may ask NSS (LDAP, say), which blocks.
        return self._context.run_blocking(read).addErrback(gone)


@implementer(IPlugin, IModuleFactory)
class ProcessesFactory:
    name = "processes"

    def build(self, context: ModuleContext) -> IInfoModule:
        thresholds = Thresholds.of(context.settings)
        worker = Worker(
            context.reactor,
            worker_argv(thresholds, PROC),
            context.log,
            context.settings.module_timeout,
            "process page worker",
        )
        return ProcessesModule(context, worker=worker)


if __name__ == "__main__":
    worker_main(sys.argv)
