# -*- test-case-name: tests.test_thresholds -*-
"""Every "past a threshold" judgement, in one place, with the reason a page shows for it.

The modules ask here whether a value is worth a person's attention; the answer is the
cell to show (a `Mark` carrying why, or the bare value). The limits are settings
(docs/configuration.md); their defaults follow what Glances (`glances.conf`: file
system critical at 90 %, memory critical at 90 % used, load warning at 1.0 per CPU,
CPU user critical at 90 %) and the node-mixin alerts (`NodeFilesystemAlmostOutOfSpace`,
`NodeMemoryHighUtilization`, swap in use) commonly use. The landing page lists them,
in HTML and in JSON, so nobody has to guess what a mark means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from twistedspy.report import Cell, Column, Mark, Table

if TYPE_CHECKING:
    from twistedspy.settings import Settings

#: what a mount that does not answer statvfs(3) in time shows instead of its figures
NOT_RESPONDING: Final = "not responding"
#: a file system filling up is marked only below this share available (node-mixin's
#: NodeFilesystemSpaceFillingUp warning: `predict_linear(...[6h], 24*3600) < 0` and < 40 %)
FILLING_AVAILABLE_PERCENT: Final = 40.0


@dataclass(frozen=True, slots=True)
class Thresholds:
    #: a file system at least this full (df's use %)
    disk_full_percent: float = 90.0
    #: a file system predicted full within this many hours at its rate of the last six
    #: (and with less than FILLING_AVAILABLE_PERCENT available: node-mixin's rule)
    disk_fill_hours: float = 24.0
    #: memory available below this share of the total
    memory_available_percent: float = 10.0
    #: swap used above this share of the swap total (0: any swap in use)
    swap_used_percent: float = 0.0
    #: the load average per CPU above this
    load_per_cpu: float = 1.0
    #: a CPU (or all of them) at least this busy
    cpu_busy_percent: float = 90.0
    #: a process in uninterruptible sleep (state D) for at least this many seconds
    stuck_process_seconds: float = 60.0

    @classmethod
    def of(cls, settings: Settings) -> Thresholds:
        return cls(
            disk_full_percent=settings.disk_full_percent,
            disk_fill_hours=settings.disk_fill_hours,
            memory_available_percent=settings.memory_available_percent,
            swap_used_percent=settings.swap_used_percent,
            load_per_cpu=settings.load_per_cpu,
            cpu_busy_percent=settings.cpu_busy_percent,
            stuck_process_seconds=settings.stuck_process_seconds,
        )

    def disk(self, percent: float | None, full_in_hours: float | None = None) -> Cell:
        if percent is None:
            return None
        if percent >= self.disk_full_percent:
            return Mark(percent, f"at least {self.disk_full_percent:g} % full")
        if (
            full_in_hours is not None
            and full_in_hours < self.disk_fill_hours
            and 100 - percent < FILLING_AVAILABLE_PERCENT
        ):
            return Mark(
                percent,
                f"filling up: full in about {full_in_hours:.0f} h at the rate of the last hours",
            )
        return percent

    def not_responding(self) -> Mark:
        return Mark(
            NOT_RESPONDING, "statvfs did not answer in time; not asked again until it does"
        )

    def memory_available(self, available: int, total: int) -> Cell:
        if total and available * 100 / total < self.memory_available_percent:
            return Mark(
                available, f"less than {self.memory_available_percent:g} % of memory available"
            )
        return available

    def swap_used(self, used: int, total: int) -> Cell:
        if used > 0 and total and used * 100 / total > self.swap_used_percent:
            if self.swap_used_percent == 0:
                return Mark(used, "swap in use: memory has been short")
            return Mark(used, f"more than {self.swap_used_percent:g} % of swap in use")
        return used

    def load(self, per_cpu: float | None) -> Cell:
        if per_cpu is not None and per_cpu > self.load_per_cpu:
            return Mark(
                per_cpu,
                f"load over {self.load_per_cpu:g} per CPU: more runnable tasks than CPUs, "
                "some wait their turn",
            )
        return per_cpu

    def cpu_busy(self, busy: float | None) -> Cell:
        if busy is not None and busy >= self.cpu_busy_percent:
            return Mark(busy, f"at least {self.cpu_busy_percent:g} % busy")
        return busy

    def process_state(self, state: str, d_seconds: float | None) -> Cell:
        """A process's state, marked once it has been in D (proc(5)) for long."""
        if state == "D" and d_seconds is not None and d_seconds >= self.stuck_process_seconds:
            return Mark(
                state,
                f"uninterruptible sleep for {d_seconds:.0f} s: usually waiting on disk "
                "or network I/O that does not come",
            )
        return state

    def table(self) -> Table:
        """The limits in force, for the landing page and its JSON."""
        return Table(
            "Thresholds",
            (Column("Setting"), Column("Limit", "float"), Column("Marks")),
            (
                ("DiskFullPercent", self.disk_full_percent, "a file system at least this % full"),
                (
                    "DiskFillHours",
                    self.disk_fill_hours,
                    "a file system predicted full within this many hours "
                    f"(under {FILLING_AVAILABLE_PERCENT:g} % available)",
                ),
                (
                    "MemoryAvailablePercent",
                    self.memory_available_percent,
                    "memory available below this % of the total",
                ),
                ("SwapUsedPercent", self.swap_used_percent, "swap used above this % (0: any)"),
                ("LoadPerCPU", self.load_per_cpu, "load average per CPU above this"),
                ("CPUBusyPercent", self.cpu_busy_percent, "a CPU at least this % busy"),
                (
                    "StuckProcessSeconds",
                    self.stuck_process_seconds,
                    "a process in state D (uninterruptible) this many seconds",
                ),
                ("(always)", None, "a mount that does not answer statvfs in time"),
            ),
        )


DEFAULT: Final = Thresholds()
