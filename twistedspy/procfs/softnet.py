# -*- test-case-name: tests.test_exporter_readers -*-
"""/proc/net/softnet_stat (net/core/net-procfs.c): each CPU's packet-processing counters."""

from __future__ import annotations

from dataclasses import dataclass

from twistedspy.procfs import PROC, read_text


@dataclass(frozen=True, slots=True)
class Softnet:
    #: the line's index, which node_exporter 1.5 reports as the CPU
    cpu: str
    processed: int
    dropped: int
    #: times the CPU ran out of its budget (net.core.netdev_budget) with work left
    time_squeezed: int


def parse_softnet(text: str) -> tuple[Softnet, ...]:
    """One line a CPU of hexadecimal columns; the first three are these counters."""
    found = []
    for index, line in enumerate(text.splitlines()):
        columns = line.split()
        if len(columns) >= 3:
            found.append(
                Softnet(str(index), int(columns[0], 16), int(columns[1], 16), int(columns[2], 16))
            )
    return tuple(found)


def read_softnet(proc: str = PROC) -> tuple[Softnet, ...]:
    return parse_softnet(read_text(f"{proc}/net/softnet_stat"))
