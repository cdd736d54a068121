# -*- test-case-name: tests.test_meminfo -*-
"""The `meminfo` module: memory and swap, in bytes, as `free` counts them.

Read from /proc/meminfo directly (proc(5)); "used" is total minus available, as
procps-ng `free` has counted it since 4.0.1, and "cached" includes reclaimable slab,
as `free` shows it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.plugin import IPlugin
from zope.interface import implementer

from twistedspy.context import ModuleContext
from twistedspy.inflight import SharedCollection
from twistedspy.interfaces import IInfoModule, IModuleFactory, IReactorSafe
from twistedspy.query import Query
from twistedspy.report import Cell, Column, Mark, Page, Report, Table

MeminfoSource = Callable[[], str]


def read_proc_meminfo() -> str:
    return Path("/proc/meminfo").read_text()


def parse_meminfo(text: str) -> dict[str, int]:
    """`Key: value kB` lines as bytes; a line without a unit (HugePages_Total) as is."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if not fields or not fields[0].isdigit():
            continue
        scale = 1024 if fields[1:] == ["kB"] else 1
        values[key.strip()] = int(fields[0]) * scale
    return values


@dataclass(frozen=True, slots=True)
class Memory:
    total: int
    free: int
    available: int
    used: int
    shared: int
    buffers: int
    cached: int
    swap_total: int
    swap_used: int
    swap_free: int

    @classmethod
    def from_meminfo(cls, values: Mapping[str, int]) -> Memory:
        total = values["MemTotal"]
        free = values["MemFree"]
        # MemAvailable exists since Linux 3.14; before it, free's own estimate.
        available = values.get(
            "MemAvailable", free + values.get("Buffers", 0) + values.get("Cached", 0)
        )
        swap_total = values.get("SwapTotal", 0)
        swap_free = values.get("SwapFree", 0)
        return cls(
            total=total,
            free=free,
            available=available,
            used=total - available,
            shared=values.get("Shmem", 0),
            buffers=values.get("Buffers", 0),
            cached=values.get("Cached", 0) + values.get("SReclaimable", 0),
            swap_total=swap_total,
            swap_used=swap_total - swap_free,
            swap_free=swap_free,
        )


COLUMNS = (Column("Quantity"), Column("Size", "bytes"), Column("Of total", "percent"))


def _share(part: int, whole: int) -> float | None:
    return round(part * 100 / whole, 1) if whole else None


def memory_tables(m: Memory) -> tuple[Table, Table]:
    memory = Table(
        "Memory",
        COLUMNS,
        [
            (name, value, _share(value, m.total))
            for name, value in [
                ("total", m.total),
                ("used", m.used),
                ("free", m.free),
                ("available", m.available),
                ("shared", m.shared),
                ("buffers", m.buffers),
                ("cached", m.cached),
            ]
        ],
    )
    used: Cell = m.swap_used
    if m.swap_used > 0:
        used = Mark(m.swap_used, "swap in use: memory has been short")
    swap = Table(
        "Swap",
        COLUMNS,
        [
            ("total", m.swap_total, _share(m.swap_total, m.swap_total)),
            ("used", used, _share(m.swap_used, m.swap_total)),
            ("free", m.swap_free, _share(m.swap_free, m.swap_total)),
        ],
    )
    return memory, swap


# Reactor-safe: returns a Deferred; the file read goes to run_blocking.
@implementer(IInfoModule, IReactorSafe)
class MeminfoModule:
    name = "meminfo"
    title = "Memory"
    description = "Memory and swap: total, used, free, available, shared, buffers, cached."

    def __init__(self, context: ModuleContext, source: MeminfoSource = read_proc_meminfo) -> None:
        self._context = context
        self._source = source
        self._read: SharedCollection[str] = SharedCollection(lambda: context.run_blocking(source))

    def collect(self, query: Query) -> Deferred[Page]:
        return self._read().addCallback(self._report)

    def _report(self, text: str) -> Page:
        memory = Memory.from_meminfo(parse_meminfo(text))
        return Report(
            title=self.title,
            tables=memory_tables(memory),
            notes=(
                "used = total - available, as free(1) counts it; cached includes "
                "reclaimable slab.",
            ),
        )


@implementer(IPlugin, IModuleFactory)
class MeminfoFactory:
    name = "meminfo"

    def build(self, context: ModuleContext) -> IInfoModule:
        return MeminfoModule(context)
