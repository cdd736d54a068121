# -*- test-case-name: tests.test_procfs -*-
"""/proc/stat and /proc/loadavg (proc(5)): CPU times, system counters, load averages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from twistedspy.procfs import PROC, read_bytes, read_text

#: the modes of /proc/stat's cpu lines, in the kernel's order (proc(5)); `guest` and
#: `guest_nice` follow but are already counted in user and nice
MODES: Final = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """One `cpu` or `cpuN` line: clock ticks (USER_HZ) spent in each mode since boot."""

    #: "cpu" for the total, "cpu0", "cpu1" ... for each CPU
    name: str
    user: int
    nice: int
    system: int
    idle: int
    iowait: int
    irq: int
    softirq: int
    steal: int
    guest: int
    guest_nice: int

    def mode(self, mode: str) -> int:
        value: int = getattr(self, mode)
        return value

    @property
    def total(self) -> int:
        # guest time is already inside user (and guest_nice inside nice): not added again
        return sum(self.mode(m) for m in MODES)


@dataclass(frozen=True, slots=True)
class ProcStat:
    """What /proc/stat says: CPU times, and the system-wide counters node_exporter reads."""

    total: CpuTimes
    cpus: tuple[CpuTimes, ...]
    #: seconds since the epoch (`btime`)
    boot_time: int
    context_switches: int
    forks: int
    interrupts: int
    procs_running: int
    procs_blocked: int


def parse_proc_stat(text: str) -> ProcStat:
    """
    Parse /proc/stat (proc(5)). Older kernels lack the last cpu fields (read as 0);
    fields newer kernels may append to a cpu line are ignored.
    """
    total: CpuTimes | None = None
    cpus: list[CpuTimes] = []
    counters: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        key = fields[0]
        if key.startswith("cpu"):
            ticks = [int(v) for v in fields[1:11]]
            ticks += [0] * (10 - len(ticks))
            times = CpuTimes(key, *ticks)
            if key == "cpu":
                total = times
            else:
                cpus.append(times)
        elif len(fields) >= 2 and fields[1].isdigit():
            counters[key] = int(fields[1])
    if total is None:
        raise ValueError("no cpu line in /proc/stat")
    return ProcStat(
        total=total,
        cpus=tuple(cpus),
        boot_time=counters.get("btime", 0),
        context_switches=counters.get("ctxt", 0),
        forks=counters.get("processes", 0),
        interrupts=counters.get("intr", 0),
        procs_running=counters.get("procs_running", 0),
        procs_blocked=counters.get("procs_blocked", 0),
    )


def read_stat(proc: str = PROC) -> ProcStat:
    return parse_proc_stat(read_text(f"{proc}/stat"))


def parse_boot_time(data: bytes) -> int:
    """
    Only the `btime` line of /proc/stat (boot time, seconds since the epoch): for the
    process scan and the version page, which need nothing else of the file and so skip
    parsing a line per CPU and the long `intr` line.
    """
    start = data.find(b"\nbtime ")
    if start < 0:
        raise ValueError("no btime line in /proc/stat")
    return int(data[start + 7 :].split(b"\n", 1)[0])


def read_boot_time(proc: str = PROC) -> int:
    return parse_boot_time(read_bytes(f"{proc}/stat"))


@dataclass(frozen=True, slots=True)
class LoadAverage:
    one: float
    five: float
    fifteen: float
    #: runnable scheduling entities now, and all of them (the `2/110` of /proc/loadavg)
    runnable: int
    entities: int


def parse_loadavg(text: str) -> LoadAverage:
    """Parse /proc/loadavg: `0.34 0.37 0.23 2/110 19169` (proc(5))."""
    fields = text.split()
    runnable, _, entities = fields[3].partition("/")
    return LoadAverage(
        float(fields[0]), float(fields[1]), float(fields[2]), int(runnable), int(entities)
    )


def read_loadavg(proc: str = PROC) -> LoadAverage:
    return parse_loadavg(read_text(f"{proc}/loadavg"))
