# -*- test-case-name: tests.test_exporter_readers -*-
"""/proc/vmstat (proc(5)): the virtual memory counters, one `name value` a line."""

from __future__ import annotations

from twistedspy.procfs import PROC, read_text


def parse_vmstat(text: str) -> dict[str, int]:
    """Every counter by name, in the kernel's order; a line that is not `name value` is skipped."""
    counters: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            counters[name] = int(value)
    return counters


def read_vmstat(proc: str = PROC) -> dict[str, int]:
    return parse_vmstat(read_text(f"{proc}/vmstat"))
