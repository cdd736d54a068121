# -*- test-case-name: tests.test_meminfo -*-
"""The `meminfo` module: memory and swap, in bytes, as `free` counts them; and for
/metrics, every /proc/meminfo field as node_exporter's meminfo collector names it, and
its vmstat collector's /proc/vmstat counters.

Read from /proc/meminfo directly (proc(5)); "used" is total minus available, as
procps-ng `free` has counted it since 4.0.1, and "cached" includes reclaimable slab,
as `free` shows it.

The landing page's figures (`glance`) and the /metrics families read /proc/meminfo
and /proc/vmstat on the reactor: the kernel builds both from counters in memory, as
cpu.py reads /proc/stat, and a hand-off to a worker thread costs more CPU than the
reads (docs/performance.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client.core import GaugeMetricFamily, UnknownMetricFamily
from prometheus_client.metrics_core import Metric
from twisted.internet.defer import Deferred
from twisted.plugin import IPlugin
from zope.interface import implementer

from twistedspy.collectors import run_collectors
from twistedspy.context import ModuleContext
from twistedspy.inflight import SharedCollection
from twistedspy.interfaces import (
    IGlance,
    IInfoModule,
    IMetricsSource,
    IModuleFactory,
    IReactorSafe,
)
from twistedspy.procfs.meminfo import Meminfo, read_meminfo
from twistedspy.procfs.vmstat import read_vmstat
from twistedspy.query import Query
from twistedspy.report import Column, Page, Report, Table
from twistedspy.thresholds import DEFAULT, Thresholds

MeminfoSource = Callable[[], Meminfo]

_NOT_IN_NAME: Final = re.compile(r"[^a-zA-Z0-9_]")


def meminfo_families(meminfo: Meminfo) -> list[Metric]:
    """
    Every /proc/meminfo field, named as node_exporter's meminfo collector names it:
    `Active(anon)` becomes `node_memory_Active_anon_bytes`; a field counted in kB gets
    `_bytes` (and is in bytes), one without a unit (`HugePages_Total`) keeps its name.
    """
    families: list[Metric] = []
    for field in meminfo.fields:
        name = field.name.replace("(", "_").replace(")", "")
        if field.in_bytes:
            name += "_bytes"
        name = _NOT_IN_NAME.sub("_", name)
        families.append(
            GaugeMetricFamily(
                f"node_memory_{name}", f"Memory information field {name}.", field.value
            )
        )
    return families


#: node_exporter's default --collector.vmstat.fields
VMSTAT_FIELDS: Final = re.compile(r"^(oom_kill|pgpg|pswp|pg.*fault).*")


def vmstat_families(counters: Mapping[str, int]) -> list[Metric]:
    """The /proc/vmstat counters node_exporter's vmstat collector shows by default, untyped."""
    return [
        UnknownMetricFamily(
            f"node_vmstat_{name}", f"/proc/vmstat information field {name}.", value
        )
        for name, value in counters.items()
        if VMSTAT_FIELDS.match(name)
    ]


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


def memory_tables(m: Memory, thresholds: Thresholds = DEFAULT) -> tuple[Table, Table]:
    memory = Table(
        "Memory",
        COLUMNS,
        [
            (
                name,
                thresholds.memory_available(value, m.total) if name == "available" else value,
                _share(value, m.total),
            )
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
    swap = Table(
        "Swap",
        COLUMNS,
        [
            ("total", m.swap_total, _share(m.swap_total, m.swap_total)),
            (
                "used",
                thresholds.swap_used(m.swap_used, m.swap_total),
                _share(m.swap_used, m.swap_total),
            ),
            ("free", m.swap_free, _share(m.swap_free, m.swap_total)),
        ],
    )
    return memory, swap


GLANCE_COLUMNS: Final = (
    Column("Memory used", "percent"),
    Column("Available", "bytes"),
    Column("Total", "bytes"),
    Column("Swap used", "bytes"),
    Column("Swap total", "bytes"),
)


# Reactor-safe: the page returns a Deferred (its read goes to run_blocking); glance and
# metrics read kernel memory on the reactor (module docstring).
@implementer(IInfoModule, IMetricsSource, IGlance, IReactorSafe)
class MeminfoModule:
    name = "meminfo"
    title = "Memory"
    description = "Memory and swap: total, used, free, available, shared, buffers, cached."

    def __init__(
        self,
        context: ModuleContext,
        source: MeminfoSource = read_meminfo,
        vmstat: Callable[[], Mapping[str, int]] = read_vmstat,
    ) -> None:
        self._source = source
        self._thresholds = Thresholds.of(context.settings)
        self._read: SharedCollection[Meminfo] = SharedCollection(
            lambda: context.run_blocking(source)
        )
        self._vmstat = vmstat

    def collect(self, query: Query) -> Deferred[Page]:
        return self._read().addCallback(self._report)

    def metrics(self) -> list[Metric]:
        # On the reactor (module docstring).
        return run_collectors(
            {
                "meminfo": lambda: meminfo_families(self._source()),
                "vmstat": lambda: vmstat_families(self._vmstat()),
            }
        )

    def _report(self, meminfo: Meminfo) -> Page:
        memory = Memory.from_meminfo(meminfo.values())
        return Report(
            title=self.title,
            tables=memory_tables(memory, self._thresholds),
            notes=(
                "used = total - available, as free(1) counts it; cached includes "
                "reclaimable slab.",
            ),
        )

    def glance(self) -> Sequence[Table]:
        # On the reactor: a read of kernel memory (module docstring).
        m = Memory.from_meminfo(self._source().values())
        row = (
            _share(m.used, m.total),
            self._thresholds.memory_available(m.available, m.total),
            m.total,
            self._thresholds.swap_used(m.swap_used, m.swap_total),
            m.swap_total,
        )
        return [Table("Memory", GLANCE_COLUMNS, (row,))]


@implementer(IPlugin, IModuleFactory)
class MeminfoFactory:
    name = "meminfo"

    def build(self, context: ModuleContext) -> IInfoModule:
        return MeminfoModule(context)
