# -*- test-case-name: tests.test_exporter_readers -*-
"""/proc/interrupts and /proc/schedstat (proc(5)): interrupts by source and CPU, and the
scheduler's time per CPU."""

from __future__ import annotations

from dataclasses import dataclass

from twistedspy.procfs import PROC, read_text


@dataclass(frozen=True, slots=True)
class Interrupt:
    #: the IRQ number, or the kernel's short name for the others (`NMI`, `LOC`, `RES`)
    type: str
    #: the controller for a numbered IRQ (`IO-APIC`), the description for the others
    info: str
    #: the devices on a numbered IRQ (`4-edge ttyS0`); empty for the others
    devices: str
    #: one count per CPU, in the heading's order
    counts: tuple[int, ...]


def parse_interrupts(text: str) -> tuple[Interrupt, ...]:
    """
    A heading of `CPUn` names, then `name: count per CPU, details`. Lines with fewer
    columns than that (`ERR:` and `MIS:` carry one total) are left out, as node_exporter
    leaves them out.
    """
    lines = text.splitlines()
    cpus = len(lines[0].split())
    found = []
    for line in lines[1:]:
        parts = line.split()
        if len(parts) < cpus + 2:
            continue
        name = parts[0].removesuffix(":")
        counts = tuple(int(v) for v in parts[1 : cpus + 1])
        if name.isdigit():
            info, devices = parts[cpus + 1], " ".join(parts[cpus + 2 :])
        else:
            info, devices = " ".join(parts[cpus + 1 :]), ""
        found.append(Interrupt(name, info, devices, counts))
    return tuple(found)


def read_interrupts(proc: str = PROC) -> tuple[Interrupt, ...]:
    return parse_interrupts(read_text(f"{proc}/interrupts"))


@dataclass(frozen=True, slots=True)
class CpuSchedule:
    #: the CPU's number, as /proc/stat's `cpuN` lines give it
    cpu: str
    running_ns: int
    waiting_ns: int
    timeslices: int


def parse_schedstat(text: str) -> tuple[CpuSchedule, ...]:
    """
    /proc/schedstat (Documentation/scheduler/sched-stats.rst): of each `cpuN` line, the
    last three fields are time running and waiting on that CPU (ns) and timeslices run.
    """
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 10 and fields[0].startswith("cpu"):
            found.append(
                CpuSchedule(
                    fields[0].removeprefix("cpu"), int(fields[7]), int(fields[8]), int(fields[9])
                )
            )
    return tuple(found)


def read_schedstat(proc: str = PROC) -> tuple[CpuSchedule, ...]:
    """Raises FileNotFoundError on a kernel built without CONFIG_SCHEDSTATS."""
    return parse_schedstat(read_text(f"{proc}/schedstat"))
