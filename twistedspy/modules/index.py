# -*- test-case-name: tests.test_index,tests.test_golden,tests.test_pages_live -*-
"""The `index` module: the machine at a glance, then how to connect, what each status
means, and the modules served.

The figures come from every served module that provides `IGlance`, each from what its
sampler already holds (cpu, network, processes) or a read of kernel memory (meminfo);
only the file systems' statvfs goes to threads, under diskfree's deadline. So a landing
page never scans /proc/* (docs/performance.md measures it). Every figure links to its
module's page, and every value past a threshold (twistedspy/thresholds.py) is listed
first, with why.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet.defer import Deferred, fail, succeed
from twisted.plugin import IPlugin
from zope.interface import implementer

from twistedspy.context import ModuleContext
from twistedspy.interfaces import IGlance, IInfoModule, IModuleFactory, IReactorSafe
from twistedspy.query import Query
from twistedspy.report import Cell, Column, Link, Page, Report, Table, cell_mark, cell_value
from twistedspy.thresholds import Thresholds

#: Every status the server answers, in the words a user needs (docs/architecture.md, "HTTP").
STATUS_CODES: tuple[tuple[int, str, str], ...] = (
    (200, "OK", "The page was served, or the message was stored."),
    (400, "Bad Request", "The request, a header or a query parameter is malformed."),
    (401, "Unauthorized", "Security is on and the user name or password is missing or wrong."),
    (403, "Forbidden", "A form on another site tried to post here."),
    (404, "Not Found", "There is no such module, or it is not enabled."),
    (405, "Method Not Allowed", "Modules answer GET and HEAD; the message form also POST."),
    (408, "Request Timeout", "The request did not arrive whole in time."),
    (413, "Content Too Large", "The body is larger than 64 KiB."),
    (414, "URI Too Long", "The request line is longer than 8 KiB."),
    (415, "Unsupported Media Type", "A posted message must be a URL-encoded form."),
    (421, "Misdirected Request", "The Host header names a host this server does not serve."),
    (429, "Too Many Requests", "Too many failed logins from your address; wait and retry."),
    (431, "Request Header Fields Too Large", "A header line is over 8 KiB, or over 100 fields."),
    (500, "Internal Server Error", "A module failed; the journal has the details."),
    (501, "Not Implemented", "Transfer-Encoding is not supported in requests."),
    (504, "Gateway Timeout", "A module did not answer in time (a hung mount, say)."),
    (505, "HTTP Version Not Supported", "Only HTTP/1.0 and HTTP/1.1 are spoken."),
)


# Reactor-safe: the settings and the module list are in memory, and each module's figures
# come from IGlance, which answers on the reactor (from memory, or with a Deferred).
@implementer(IInfoModule, IReactorSafe)
class IndexModule:
    name = "index"
    title = "Index"
    description = (
        "The machine at a glance; how to connect, what the status codes mean, the modules."
    )
    #: seconds a rendered page stays true (see IInfoModule): the samplers behind the
    #: figures move every few seconds, and a live page asks once a second at most
    max_age = 1.0

    def __init__(self, context: ModuleContext) -> None:
        self._context = context
        self._thresholds = Thresholds.of(context.settings)

    def collect(self, query: Query) -> Deferred[Page]:
        return Deferred.fromCoroutine(self._report())

    async def _report(self) -> Page:
        sources = [m for m in self._context.served() if IGlance.providedBy(m)]
        # All asked at once; then each answer awaited in turn.
        pending = [ask(IGlance(m)) for m in sources]
        figures: list[Table] = []
        crossed: list[tuple[Cell, ...]] = []
        missing = []
        for module, asked in zip(sources, pending, strict=True):
            try:
                tables = await asked
            except Exception:
                missing.append(module.title)  # the failure is the module's page's to show
                continue
            for table in tables:
                figures.append(linked(table, f"/{module.name}"))
                crossed += past_threshold(table, module)
        alerts = Table("Past a threshold", ALERT_COLUMNS, crossed)
        notes = ["Nothing is past a threshold." if not crossed else
                 f"{len(crossed)} past a threshold: see the first table."]  # fmt: skip
        if missing:
            notes.append(f"No figures from: {', '.join(missing)}.")
        return Report(
            title="twistedspy",
            notes=[*self._help_notes(), *notes],
            tables=[alerts, *figures, self._thresholds.table(), *self._help()],
        )

    def _help_notes(self) -> list[str]:
        security = "on: every page needs a login" if self._context.settings.security else "off"
        return [f"Watch this machine from a browser, curl or Prometheus. Security is {security}."]

    def _help(self) -> list[Table]:
        modules = Table(
            title="Modules",
            columns=["module", "title", "description"],
            rows=[[m.name, m.title, m.description] for m in self._context.served()],
        )
        usage = Table(
            title="How to ask",
            columns=["form", "meaning"],
            rows=[
                ["/MODULE", "a module's page as HTML, e.g. /version"],
                [
                    "/MODULE?format=json",
                    "the same facts as JSON (or send Accept: application/json)",
                ],
                ["/MODULE?login=USER&password=PASS", "log in with the query, when security is on"],
                ["Authorization: Basic …", "log in as browsers do after a 401 (security on)"],
                [
                    "/MODULE?refresh=N",
                    "reload the page every N seconds (5 to 3600); with JavaScript, the Live "
                    "control updates it in place instead",
                ],
                ["/metrics", "Prometheus text format, when the metrics module is served"],
                ["/-/healthy", "200 when the server runs; needs no login, shows nothing else"],
            ],
        )
        statuses = Table(
            title="Status codes",
            columns=[Column("status", "int"), "reason", "meaning"],
            rows=[list(row) for row in STATUS_CODES],
        )
        return [modules, usage, statuses]


def ask(source: IGlance) -> Deferred[Sequence[Table]]:
    """A module's figures as a Deferred, whether it answered at once, later, or raised."""
    try:
        answer = source.glance()
    except Exception:
        return fail()
    return answer if isinstance(answer, Deferred) else succeed(answer)


ALERT_COLUMNS = (Column("Where"), Column("What"), Column("Value"), Column("Why"))


def linked(table: Table, href: str) -> Table:
    """The table with each row's first cell leading to `href` (unless it leads elsewhere)."""
    rows = [
        (row[0] if isinstance(row[0], Link) else Link(row[0], href), *row[1:])
        for row in table.rows
        if row
    ]
    return Table(table.title, table.columns, rows)


def past_threshold(table: Table, module: IInfoModule) -> list[tuple[Cell, ...]]:
    """A row for each marked cell: where (linked to the page), what, the value, why."""
    found: list[tuple[Cell, ...]] = []
    for row in table.rows:
        for column, cell in zip(table.column_list, row, strict=True):
            mark = cell_mark(cell)
            if mark is None:
                continue
            where = module.title if table.title == module.title else table.title
            first = table.column_list[0]
            if column is not first and first.unit in ("text", "id"):
                where += f": {cell_value(row[0])}"  # the row's name (a mount, a PID)
            found.append((Link(where, f"/{module.name}"), column.name, str(mark.value), mark.why))
    return found


@implementer(IPlugin, IModuleFactory)
class IndexFactory:
    name = "index"

    def build(self, context: ModuleContext) -> IInfoModule:
        return IndexModule(context)
