# -*- test-case-name: tests.test_pressure -*-
"""/proc/pressure/{cpu,memory,io,irq} (the kernel's Documentation/accounting/psi.rst):
the share of time tasks stalled waiting for each resource.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Final

from twistedspy.procfs import PROC, read_text

#: the resources, in the order the page lists them; `irq` since Linux 6.1
RESOURCES: Final = ("cpu", "memory", "io", "irq")


@dataclass(frozen=True, slots=True)
class Stall:
    """One line: % of wall time stalled over the last 10, 60, 300 s; total in µs."""

    avg10: float
    avg60: float
    avg300: float
    total_us: int


@dataclass(frozen=True, slots=True)
class Pressure:
    resource: str
    #: some task stalled; None for irq, which has only `full` (Linux 6.1)
    some: Stall | None
    #: every non-idle task stalled at once; None where the kernel has no `full` line
    #: (cpu before Linux 5.13)
    full: Stall | None


def parse_pressure(resource: str, text: str) -> Pressure:
    """
    Parse `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` and the `full` line (psi.rst);
    fields a newer kernel may add are ignored.
    """
    lines: dict[str, Stall] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        values = dict(field.partition("=")[::2] for field in rest.split())
        lines[kind] = Stall(
            float(values["avg10"]),
            float(values["avg60"]),
            float(values["avg300"]),
            int(values["total"]),
        )
    if not lines:
        raise ValueError(f"no some or full line in /proc/pressure/{resource}")
    return Pressure(resource, lines.get("some"), lines.get("full"))


#: a kernel built without PSI has no /proc/pressure; one booted with `psi=0` has none
#: either, or (Linux 5.x with CONFIG_PSI_DEFAULT_DISABLED) answers reads EOPNOTSUPP
_NO_PSI: Final = (errno.ENOENT, errno.EOPNOTSUPP)


def read_pressure(proc: str = PROC) -> tuple[Pressure, ...]:
    """
    Every resource the kernel reports on: empty when it reports pressure for none.
    Any other failure (a file it cannot read) is raised.
    """
    found = []
    for resource in RESOURCES:
        try:
            text = read_text(f"{proc}/pressure/{resource}")
        except OSError as e:
            if e.errno in _NO_PSI:
                continue  # irq before 6.1, or no PSI at all
            raise
        found.append(parse_pressure(resource, text))
    return tuple(found)
