# -*- test-case-name: tests.test_render,tests.test_golden -*-
"""What a module returns: a titled set of tables, free of any HTML or JSON.

Rendering is the server's job; a module only says what each value is (bytes, a
percentage, a time) so that HTML can show human units while JSON keeps raw numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, TypeAlias

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

#: how a value reads: `id` is a number that names something (a PID), shown without digit
#: grouping; `rate` is bytes per second
Unit: TypeAlias = Literal[
    "text", "id", "int", "float", "bytes", "rate", "percent", "seconds", "time"
]
Scalar: TypeAlias = str | int | float | bool | None


class PageError(Exception):
    """A module's refusal with the status to answer and a message in plain words."""

    status = 500

    def __init__(
        self, message: str, status: int | None = None, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        #: fields the answer carries besides (Retry-After with a 429)
        self.headers = headers


class InvalidQuery(PageError):
    """A query parameter the module does not accept; the message says what is allowed."""

    status = 400


class Committed(Exception):
    """
    What a module's Deferred fails with when ModuleTimeout cancels work that has begun
    and cannot be undone (a post being written to disk): `outcome` fires with the page
    once that work is done. The client gets that page rather than 504, which would tell
    it that nothing happened and invite it to post again.
    """

    def __init__(self, outcome: Deferred[Page]) -> None:
        super().__init__("the work had begun when it was cancelled")
        self.outcome = outcome


@dataclass(frozen=True, slots=True)
class Column:
    """A column heading and how its values read."""

    name: str
    unit: Unit = "text"
    #: the `sort=` value that orders a table by this column, if the module supports it
    sort_key: str | None = None


@dataclass(frozen=True, slots=True)
class Mark:
    """A value past a threshold (a disk over 90 % full): shown highlighted, with why."""

    value: Scalar
    why: str


@dataclass(frozen=True, slots=True)
class Link:
    """A value that leads to a page about it (a PID to its process's page, a figure on
    the landing page to its module); `href` is a path on this server."""

    value: Scalar | Mark
    href: str


Cell: TypeAlias = Scalar | Mark | Link


def cell_value(cell: Cell) -> Scalar:
    """The bare value of a cell, as JSON carries it."""
    if isinstance(cell, Link):
        cell = cell.value
    return cell.value if isinstance(cell, Mark) else cell


def cell_mark(cell: Cell) -> Mark | None:
    """The mark on a cell, if its value is past a threshold."""
    if isinstance(cell, Link):
        cell = cell.value
    return cell if isinstance(cell, Mark) else None


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of cells under columns; `columns` may be plain names, as in `hello.py`."""

    title: str
    columns: Sequence[str | Column]
    rows: Sequence[Sequence[Cell]]

    def __post_init__(self) -> None:
        columns = tuple(c if isinstance(c, Column) else Column(str(c)) for c in self.columns)
        rows = tuple(tuple(row) for row in self.rows)
        for number, row in enumerate(rows):
            if len(row) != len(columns):
                raise ValueError(
                    f"table {self.title!r}: row {number} has {len(row)} cells "
                    f"for {len(columns)} columns"
                )
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "rows", rows)

    @property
    def column_list(self) -> tuple[Column, ...]:
        """The columns, typed (construction has normalised them)."""
        return tuple(c for c in self.columns if isinstance(c, Column))


@dataclass(frozen=True, slots=True)
class Series:
    """Recent values of one quantity, drawn as a sparkline in HTML."""

    title: str
    unit: Unit
    values: Sequence[float]
    #: seconds between two values
    step: float


@dataclass(frozen=True, slots=True)
class Form:
    """
    A form that posts one multi-line text field back to the server (the message form).

    HTML shows it between the notes and the tables, as a plain `<form method="post">`
    that needs no script; JSON leaves it out, since programs post without a form.
    """

    #: the path the form posts to, e.g. `/message`
    action: str
    #: the name of the posted field, e.g. `text`
    field: str
    label: str
    button: str


#: top-level JSON keys that a Report's summary may not replace
RESERVED_JSON_KEYS = frozenset(
    {"module", "title", "host", "generated", "tables", "series", "error"}
)


@dataclass(frozen=True, slots=True)
class Report:
    """One page of facts."""

    title: str
    tables: Sequence[Table] = ()
    #: short paragraphs shown above the tables (plain text, escaped when rendered)
    notes: Sequence[str] = ()
    series: Sequence[Series] = field(default=())
    form: Form | None = None
    #: a few named values that JSON puts at the top level of its document, beside
    #: `module` and `tables` (`{"stored": true}` after a message is stored); HTML leaves
    #: them out, so the notes should say the same in words
    summary: Mapping[str, Scalar] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", tuple(self.tables))
        object.__setattr__(self, "notes", tuple(self.notes))
        object.__setattr__(self, "series", tuple(self.series))
        clash = sorted(RESERVED_JSON_KEYS & set(self.summary))
        if clash:
            raise ValueError(f"report {self.title!r}: summary may not use {', '.join(clash)}")
        object.__setattr__(self, "summary", MappingProxyType(dict(self.summary)))


@dataclass(frozen=True, slots=True)
class RawBody:
    """A body served as it is, for formats other than HTML and JSON (Prometheus text)."""

    content: bytes
    content_type: str


Page: TypeAlias = Report | RawBody


@dataclass(frozen=True, slots=True)
class NavItem:
    name: str
    title: str


@dataclass(frozen=True, slots=True)
class PageContext:
    """What every page shows beside the report itself."""

    host: str
    nav: Sequence[NavItem]
    now: float
