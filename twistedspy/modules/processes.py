# -*- test-case-name: tests.test_processes -*-
"""The `processes` module: every process, like `ps`, with CPU % between two samples.

Collection reads /proc directly instead of through psutil: psutil's full listing costs
about 90 ms per 1000 processes where `ps` needs 28 ms (TWISTED-NOTES), and SPEC asks
for a page no slower than 1.5 times `ps`. Three reads per process (`stat`, `status`,
`cmdline`) with `os.open`/`os.read` keep it close to `ps` (bench/processes_speed.py,
1069 processes on 2 CPUs: ps 52 ms, this reader with the table built 54 ms, psutil
105 ms). The parsers are pure
functions so fixtures test them. As psutil does, a process that exits mid-scan is
skipped and a file we may not read leaves its fields empty.
"""

from __future__ import annotations

import grp
import itertools
import os
import pwd
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from twisted.internet.defer import Deferred
from twisted.plugin import IPlugin
from zope.interface import implementer

from twistedspy.context import ModuleContext
from twistedspy.inflight import SharedCollection
from twistedspy.interfaces import IInfoModule, IModuleFactory, IReactorSafe
from twistedspy.query import Query
from twistedspy.report import Cell, Column, InvalidQuery, Mark, Page, Report, Table


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """One process as seen at one moment; None where the kernel would not tell us."""

    pid: int
    name: str
    #: the one-letter state of proc(5) /proc/PID/stat field 3: R, S, D, Z, T, t, X, I
    state: str
    user: str | None
    group: str | None
    rss: int | None
    #: user + system CPU time used so far, in seconds
    cpu_seconds: float | None
    threads: int | None
    #: seconds since the epoch
    start_time: float | None
    #: the argument vector; empty for kernel threads and zombies
    cmdline: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class ProcessSnapshot:
    """Every process at one moment of a monotonic clock (seconds)."""

    taken_at: float
    processes: tuple[ProcessSample, ...]


ProcessSource = Callable[[], ProcessSnapshot]


# --- /proc parsing (proc(5)) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatFields:
    """The fields of /proc/PID/stat this module uses."""

    name: str
    state: str
    #: utime + stime, in clock ticks (fields 14 and 15)
    cpu_ticks: int
    threads: int
    #: clock ticks after boot (field 22)
    start_ticks: int
    #: pages (field 24)
    rss_pages: int


def parse_stat(data: bytes) -> StatFields:
    """
    Parse /proc/PID/stat. The name (field 2) sits in parentheses and may itself hold
    spaces and ')', so it ends at the LAST ')' (proc(5); psutil does the same).
    """
    open_paren = data.index(b"(")
    close_paren = data.rindex(b")")
    name = data[open_paren + 1 : close_paren].decode("utf-8", "backslashreplace")
    rest = data[close_paren + 2 :].split()
    # rest[0] is field 3 (state); field N is rest[N - 3].
    return StatFields(
        name=name,
        state=rest[0].decode("ascii", "replace"),
        cpu_ticks=int(rest[11]) + int(rest[12]),
        threads=int(rest[17]),
        start_ticks=int(rest[19]),
        rss_pages=int(rest[21]),
    )


_UID_LINE: Final = re.compile(rb"^Uid:\s+\d+\s+(\d+)", re.MULTILINE)
_GID_LINE: Final = re.compile(rb"^Gid:\s+\d+\s+(\d+)", re.MULTILINE)
_RSS_LINE: Final = re.compile(rb"^VmRSS:\s+(\d+) kB", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class StatusFields:
    """The fields of /proc/PID/status this module uses."""

    #: effective ids, what `ps -o user,group` shows
    uid: int | None
    gid: int | None
    #: VmRSS in bytes; None for kernel threads, which have no memory of their own
    rss: int | None


def parse_status(data: bytes) -> StatusFields:
    """
    Parse /proc/PID/status. RSS comes from here rather than stat's field 24, which
    lags behind on kernels with split RSS counting (proc(5): "inaccurate"); ps reads
    VmRSS too.
    """
    uid = _UID_LINE.search(data)
    gid = _GID_LINE.search(data)
    rss = _RSS_LINE.search(data)
    return StatusFields(
        uid=int(uid.group(1)) if uid else None,
        gid=int(gid.group(1)) if gid else None,
        rss=int(rss.group(1)) * 1024 if rss else None,
    )


def parse_cmdline(data: bytes) -> tuple[str, ...]:
    """The NUL-separated argument vector of /proc/PID/cmdline."""
    if not data:
        return ()
    if data.endswith(b"\0"):
        data = data[:-1]
    return tuple(arg.decode("utf-8", "backslashreplace") for arg in data.split(b"\0"))


def parse_boot_time(data: bytes) -> int:
    """The `btime` line of /proc/stat: boot time in seconds since the epoch."""
    for line in data.splitlines():
        if line.startswith(b"btime "):
            return int(line.split()[1])
    raise ValueError("no btime line in /proc/stat")


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class ProcfsProcessSource:
    """
    Reads every process from /proc; uid and gid names are looked up once each.
    `cmdline=False` skips the third read per process for callers that need no command
    line (the metrics module's sums), leaving `cmdline` None.
    """

    def __init__(self, proc: str = "/proc", *, cmdline: bool = True) -> None:
        self._proc = proc
        self._with_cmdline = cmdline
        self._ticks = os.sysconf("SC_CLK_TCK")
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._boot = parse_boot_time(_read(f"{proc}/stat"))
        self._users: dict[int, str] = {}
        self._groups: dict[int, str] = {}

    def _user(self, uid: int | None) -> str | None:
        if uid is None:
            return None
        name = self._users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)  # as ps does for a uid without a name
            self._users[uid] = name
        return name

    def _group(self, gid: int | None) -> str | None:
        if gid is None:
            return None
        name = self._groups.get(gid)
        if name is None:
            try:
                name = grp.getgrgid(gid).gr_name
            except KeyError:
                name = str(gid)
            self._groups[gid] = name
        return name

    def _sample(self, pid: int) -> ProcessSample | None:
        base = f"{self._proc}/{pid}/"
        try:
            stat = parse_stat(_read(base + "stat"))
        except (FileNotFoundError, ProcessLookupError):
            return None  # exited during the scan
        try:
            status = parse_status(_read(base + "status"))
        except (FileNotFoundError, ProcessLookupError):
            return None
        except PermissionError:
            status = StatusFields(None, None, stat.rss_pages * self._page)
        cmdline: tuple[str, ...] | None = None
        try:
            if self._with_cmdline:
                cmdline = parse_cmdline(_read(base + "cmdline"))
        except (FileNotFoundError, ProcessLookupError):
            return None
        except PermissionError:
            cmdline = None
        return ProcessSample(
            pid=pid,
            name=stat.name,
            state=stat.state,
            user=self._user(status.uid),
            group=self._group(status.gid),
            rss=status.rss if status.rss is not None else stat.rss_pages * self._page,
            cpu_seconds=stat.cpu_ticks / self._ticks,
            threads=stat.threads,
            start_time=self._boot + stat.start_ticks / self._ticks,
            cmdline=cmdline,
        )

    def __call__(self) -> ProcessSnapshot:
        taken_at = time.monotonic()
        samples = []
        # Plain strings, not pathlib: this loop is the hot path (module docstring).
        for entry in os.listdir(self._proc):  # noqa: PTH208
            if not entry.isdigit():
                continue
            sample = self._sample(int(entry))
            if sample is not None:
                samples.append(sample)
        return ProcessSnapshot(taken_at, tuple(samples))


# --- masking secrets in command lines --------------------------------------------------

MASK: Final = "***"

#: words that make an option or variable name secret, once split at '-', '_' and '.'
SECRET_WORDS: Final = frozenset(
    {"password", "passwd", "pass", "pwd", "secret", "token", "apikey", "credentials"}
)
#: two-word names that are secret together ("api-key", "access_key", "private.key")
SECRET_PAIRS: Final = frozenset(
    {("api", "key"), ("access", "key"), ("secret", "key"), ("private", "key"), ("auth", "key")}
)
#: a last word that makes the value a place where a secret is kept, not the secret
NOT_SECRET_LAST: Final = frozenset({"file", "path", "dir", "fd", "env", "length", "prompt"})

_NAME_CHARS: Final = r"[A-Za-z0-9_.-]"
_WHOLE_ASSIGNMENT: Final = re.compile(rf"(-{{0,2}}[A-Za-z]{_NAME_CHARS}*)=(.*)", re.DOTALL)
_INNER_ASSIGNMENT: Final = re.compile(rf"(?<=[?&;\s])(-{{0,2}}[A-Za-z]{_NAME_CHARS}*)=([^&;\s#]*)")
_INNER_OPTION: Final = re.compile(rf"(?:^|(?<=\s))(--?[A-Za-z]{_NAME_CHARS}*)(\s+)([^\s-]\S*)")
# RFC 3986 §3.2.1 userinfo: the password runs up to the last '@' of the authority.
_USERINFO: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/?#\s:@]*):[^/?#\s]*@")


def is_secret_name(name: str) -> bool:
    """Whether an option or variable name (`--db-password`, `API_KEY`) names a secret."""
    words = [w for w in re.split(r"[-_.]", name.lower()) if w]
    if not words or words[-1] in NOT_SECRET_LAST:
        return False
    if any(w in SECRET_WORDS for w in words):
        return True
    return any(pair in SECRET_PAIRS for pair in itertools.pairwise(words))


def _mask_inner(arg: str) -> str:
    def assignment(m: re.Match[str]) -> str:
        return f"{m.group(1)}={MASK}" if is_secret_name(m.group(1)) else m.group(0)

    def option(m: re.Match[str]) -> str:
        if is_secret_name(m.group(1)):
            return f"{m.group(1)}{m.group(2)}{MASK}"
        return m.group(0)

    arg = _USERINFO.sub(rf"\1:{MASK}@", arg)
    arg = _INNER_ASSIGNMENT.sub(assignment, arg)
    return _INNER_OPTION.sub(option, arg)


def mask_secrets(argv: Sequence[str]) -> tuple[str, ...]:
    """
    The argument vector with secret values replaced by `***`:

    - `--password=VALUE`, `-token=VALUE`, `DB_PASSWORD=VALUE` (the whole rest of the
      argument), and `?token=VALUE&` / `;secret=VALUE` inside an argument;
    - `--password VALUE`: the argument after a secret option that has no `=`;
    - `scheme://user:PASSWORD@host` keeps the user, hides the password;
    - the same forms inside one argument holding a whole shell command (`sh -c "..."`).

    A name is secret when one of its words is in SECRET_WORDS (or a pair in
    SECRET_PAIRS), unless its last word says it is only where the secret is kept
    (`--password-file PATH`). Short options (`-p`) are left alone: too many mean port.
    """
    masked: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            masked.append(MASK)
            hide_next = False
            continue
        whole = _WHOLE_ASSIGNMENT.fullmatch(arg)
        if whole is not None and is_secret_name(whole.group(1)):
            masked.append(f"{whole.group(1)}={MASK}")
            continue
        if arg.startswith("--") and "=" not in arg and is_secret_name(arg):
            hide_next = True
            masked.append(arg)
            continue
        masked.append(_mask_inner(arg))
    return tuple(masked)


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
        limit_text = query.get("limit")
        limit = None
        if limit_text is not None and limit_text != "":
            if not limit_text.isascii() or not limit_text.isdigit() or int(limit_text) < 1:
                raise InvalidQuery(f"limit must be a positive whole number; got {limit_text!r}")
            limit = int(limit_text)
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
        command = " ".join(mask_secrets(s.cmdline))
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


# Reactor-safe: returns a Deferred; the scan and the report are built in threads.
@implementer(IInfoModule, IReactorSafe)
class ProcessesModule:
    name = "processes"
    title = "Processes"
    description = "Every process: state, owner, memory, CPU %, threads, command line."

    def __init__(self, context: ModuleContext, source: ProcessSource | None = None) -> None:
        self._context = context
        self._source: ProcessSource = source if source is not None else ProcfsProcessSource()
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
