# -*- test-case-name: tests.test_render -*-
"""Turning a module's `Report` into HTML (one layout for every page) or JSON
(docs/pages.md, "Layout and formats").

HTML shows human units and marks; JSON keeps raw numbers, so scripts never parse
"1.5 GiB". Every value a module returns is data: Jinja2's autoescaping and `json.dumps`
are the only ways it reaches the client.
"""

from __future__ import annotations

import functools
import json
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Final, get_args
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from twistedspy import __version__
from twistedspy.http.response import Response
from twistedspy.query import Query
from twistedspy.report import (
    Cell,
    Column,
    Link,
    PageContext,
    Report,
    Series,
    Table,
    Unit,
    cell_mark,
    cell_value,
)

HTML = "text/html; charset=utf-8"
JSON = "application/json; charset=utf-8"
#: Error statuses answered before, or instead of, a login: a malformed request, missing
#: or wrong credentials, a refused Host, too many attempts. Their pages are anonymous.
ANSWERED_BEFORE_LOGIN = frozenset({400, 401, 421, 429})

_environment = Environment(
    loader=PackageLoader("twistedspy", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def human_bytes(value: float) -> str:
    """1536 -> '1.5 KiB': binary units, as free(1) and df(1) -h show them."""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(size) < 1024 or unit == "PiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_seconds(value: float) -> str:
    """A duration as days and h:mm:ss."""
    total = int(value)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{days}d {clock}" if days else clock


def local_time(value: float) -> str:
    return datetime.fromtimestamp(value).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def iso_time(value: float) -> str:
    return datetime.fromtimestamp(value).astimezone().isoformat(timespec="seconds")


def format_value(value: object, unit: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if unit == "bytes":
            return human_bytes(value)
        if unit == "rate":
            return human_bytes(value) + "/s"
        if unit == "percent":
            return f"{value:.1f} %"
        if unit == "seconds":
            return human_seconds(value)
        if unit == "time":
            return local_time(value)
        if unit == "float" or isinstance(value, float):
            return f"{value:,.2f}"
        return f"{value:,}" if unit == "int" else str(value)
    return str(value)


#: What Jinja2's autoescape writes for each special character (markupsafe's choice),
#: so hand-built rows read exactly like the rest of the page.
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;"})


def escape(text: str) -> str:
    """Text made safe for HTML element content and quoted attribute values."""
    return text.translate(_ESCAPES)


def _table_json(table: Table) -> dict[str, object]:
    """
    A table's JSON: its values, and where a table has values past a threshold, `marks`
    as [row, column, why], by which a live page marks the cells as a reload would.
    """
    document: dict[str, object] = {
        "title": table.title,
        "columns": [c.name for c in table.column_list],
        "rows": [[cell_value(cell) for cell in row] for row in table.rows],
    }
    marks = [
        [r, c, mark.why]
        for r, row in enumerate(table.rows)
        for c, cell in enumerate(row)
        if (mark := cell_mark(cell)) is not None
    ]
    if marks:
        document["marks"] = marks
    return document


def _cell_html(cell: Cell, column: Column) -> str:
    """
    One `<td>`, with no byte the page does not need (a page of 4000 processes has 40,000
    of them): text is the stylesheet's default, so a plain text cell has no class; and
    spy.js sorts by the shown text where that reads as the value itself (a PID, a small
    count), so `data-sort` is written only where the text differs (1.5 GiB, 12,345).
    """
    value = cell_value(cell)
    mark = cell_mark(cell)
    why = mark.why if mark is not None else None
    text = escape(format_value(value, column.unit))
    css = f' class="{column.unit} mark"' if why else _CELL_CLASS[column.unit]
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    sort = "" if number is None else _sort_key(number, text)
    title = f' title="{escape(why)}"' if why else ""
    if isinstance(cell, Link):
        text = f'<a href="{escape(cell.href)}">{text}</a>'
    meter = ""
    if number is not None and column.unit == "percent":
        # Numbers need no quotes (HTML's unquoted attribute values); min is 0 by default.
        meter = f"<meter max=100 low=75 high=90 optimum=0 value={float(number)}></meter> "
    return f"<td{css}{sort}{title}>{meter}{text}</td>"


def _sort_key(value: float, text: str) -> str:
    """The `data-sort` attribute of a number shown as `text`: none where they read alike."""
    return "" if text == str(value) else f' data-sort="{value}"'


#: the class attribute of an unmarked cell, by its column's unit
_CELL_CLASS: Final = {
    unit: "" if unit == "text" else f' class="{unit}"' for unit in get_args(Unit)
}


def _cell_writer(column: Column) -> Callable[[Cell], str]:
    """
    What writes a column's cells: the common ones (a string in a text column, a whole
    number in an `id` or `int` column) by a path made for them, the same HTML as
    `_cell_html` without its checks for marks, meters and units; any other by
    `_cell_html`.
    """
    unit = column.unit
    css = _CELL_CLASS[unit]

    def text(cell: Cell) -> str:
        if type(cell) is str:
            return f"<td>{cell.translate(_ESCAPES)}</td>"
        return _cell_html(cell, column)

    def whole(cell: Cell) -> str:
        if type(cell) is int:
            shown = f"{cell:,}" if unit == "int" else str(cell)
            return f"<td{css}{_sort_key(cell, shown)}>{shown}</td>"
        return _cell_html(cell, column)

    if unit == "text":
        return text
    if unit in ("id", "int"):
        return whole
    return functools.partial(_cell_html, column=column)


def table_rows_html(rows: Sequence[Sequence[Cell]], columns: Sequence[Column]) -> Markup:
    """
    The `<tr>` lines of a table body, built here rather than in the template: a page of
    1000 processes has 10,000 cells, and a Jinja2 loop over per-cell objects took most
    of the page's time (bench/processes.py). Every value passes through `escape`.
    """
    writers = [_cell_writer(column) for column in columns]
    lines = [_row_html(writers, row) for row in rows]
    return Markup("".join(lines))  # noqa: S704 - built from escaped text only


def _row_html(writers: Sequence[Callable[[Cell], str]], row: Sequence[Cell]) -> str:
    return "<tr>" + "".join([write(c) for write, c in zip(writers, row, strict=True)]) + "</tr>\n"


def remembered_rows_html(
    rows: Sequence[Sequence[Cell]],
    columns: Sequence[Column],
    before: Mapping[Sequence[Cell], str],
) -> tuple[Markup, dict[Sequence[Cell], str]]:
    """
    `table_rows_html`, taking each row's line from `before` where the same cells were
    written last time, and what to pass as `before` next time. A sleeping process's row
    is the same from one scan to the next, so most lines of a big page are found, not
    written. Only for tables whose columns each hold one type of value (or None): cells
    are compared with `==`, for which 1, 1.0 and True are alike.
    """
    writers: list[Callable[[Cell], str]] | None = None
    kept: dict[Sequence[Cell], str] = {}
    lines = []
    for row in rows:
        line = before.get(row)
        if line is None:
            if writers is None:
                writers = [_cell_writer(column) for column in columns]
            line = _row_html(writers, row)
        kept[row] = line
        lines.append(line)
    return Markup("".join(lines)), kept  # noqa: S704 - built from escaped text only


@dataclass(frozen=True, slots=True)
class _ColumnView:
    name: str
    unit: str
    href: str | None
    arrow: str


def _column_view(column: Column, query: Query) -> _ColumnView:
    if column.sort_key is None:
        return _ColumnView(column.name, column.unit, None, "")
    current = query.get("sort") == column.sort_key
    ascending = query.get("order", "asc") == "asc"
    order = "desc" if current and ascending else "asc"
    # The query comes without login and password (Query.parse_apart): links never carry them.
    kept = [(k, v) for k, v in query.pairs() if k not in ("sort", "order")]
    href = "?" + urlencode([*kept, ("sort", column.sort_key), ("order", order)])
    arrow = (" ▲" if ascending else " ▼") if current else ""
    return _ColumnView(column.name, column.unit, href, arrow)


def sparkline(series: Series, width: int = 240, height: int = 48) -> Markup:
    """Inline SVG of recent values: drawn on the server, so no script is needed."""
    values = [float(v) for v in series.values]
    if not values:
        return Markup("")
    top = max(*values, 1e-9)
    if series.unit == "percent":
        top = max(top, 100.0)
    step = width / max(1, len(values) - 1)
    points = " ".join(
        f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}" for i, v in enumerate(values)
    )
    # Every interpolated value is a number formatted here: nothing from a module is raw.
    return Markup(  # noqa: S704
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><polyline fill="none" '
        f'stroke="#2358a5" stroke-width="1.5" points="{points}"/></svg>'
    )


@dataclass(frozen=True, slots=True)
class _SeriesView:
    title: str
    last: str
    svg: Markup


class Renderer:
    """Renders reports and errors for one running service."""

    def __init__(self, host: str | None = None, *, remember_rows: bool = False) -> None:
        self.host = host or socket.gethostname()
        #: with `remember_rows`, each table's lines as last written, by title and columns
        #: (`remembered_rows_html`); None otherwise
        self._lines: dict[tuple[str, tuple[Column, ...]], dict[Sequence[Cell], str]] | None = (
            {} if remember_rows else None
        )

    def _body(
        self, title: str, rows: Sequence[Sequence[Cell]], columns: tuple[Column, ...]
    ) -> Markup:
        if self._lines is None:
            return table_rows_html(rows, columns)
        key = (title, columns)
        body, self._lines[key] = remembered_rows_html(rows, columns, self._lines.get(key, {}))
        return body

    def _common(self, context: PageContext | None, title: str, current: str) -> dict[str, object]:
        """What the layout shows around a page; without a context, nothing of the machine."""
        return {
            "title": title,
            "host": context and context.host,
            "nav": context.nav if context else (),
            "current": current,
            "generated": local_time(context.now if context else time.time()),
            "version": context and __version__,
        }

    def html(self, module: str, report: Report, query: Query, context: PageContext) -> Response:
        tables = [
            {
                "title": table.title,
                "columns": [_column_view(c, query) for c in table.column_list],
                "count": len(table.rows),
                "body": self._body(table.title, table.rows, table.column_list),
            }
            for table in report.tables
        ]
        series = [
            _SeriesView(
                s.title, format_value(s.values[-1], s.unit) if s.values else "", sparkline(s)
            )
            for s in report.series
        ]
        refresh = refresh_seconds(query)
        kept = [(k, v) for k, v in query.pairs() if k != "format"]
        page = _environment.get_template("report.html").render(
            **self._common(context, report.title, module),
            report=report,
            tables=tables,
            series=series,
            refresh=refresh,
            json_link="?" + urlencode([*kept, ("format", "json")]),
        )
        return Response(200, page.encode("utf-8"), HTML)

    def json(self, module: str, report: Report, context: PageContext) -> Response:
        document: dict[str, object] = {
            "module": module,
            "title": report.title,
            "host": context.host,
            "generated": iso_time(context.now),
            **report.summary,
            "tables": [_table_json(table) for table in report.tables],
        }
        if report.series:
            # The live page extends its sparklines from these (static/spy.js).
            document["series"] = [
                {"title": s.title, "unit": s.unit, "values": list(s.values), "step": s.step}
                for s in report.series
            ]
        return Response(200, _dump(document), JSON)

    def error(
        self,
        status: int,
        message: str,
        *,
        as_json: bool,
        context: PageContext | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        close: bool = False,
    ) -> Response:
        """An error in plain words: a page for people, `{"error": ...}` for programs."""
        reason = HTTPStatus(status).phrase
        if as_json:
            body = _dump({"error": {"status": status, "message": message}})
            return Response(status, body, JSON, headers, close)
        if status in ANSWERED_BEFORE_LOGIN:
            # Nobody known asked: the page names nothing of the machine (no host name, no
            # module list, no version), so it tells a stranger nothing to aim at.
            context = None
        page = _environment.get_template("error.html").render(
            **self._common(context, f"{status} {reason}", ""),
            status=status,
            reason=reason,
            message=message,
            refresh=None,
            json_link=None,
        )
        return Response(status, page.encode("utf-8"), HTML, headers, close)


def refresh_seconds(query: Query) -> int | None:
    """
    `refresh=N` reloads the page every N seconds (held to 5 to 3600), with no script;
    InvalidQuery if N is not a whole number.
    """
    seconds = query.whole_number("refresh")
    return None if seconds is None else min(max(seconds, 5), 3600)


def _dump(document: object) -> bytes:
    # ensure_ascii keeps hostile names from meeting a mis-declared charset anywhere.
    return json.dumps(document, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"
