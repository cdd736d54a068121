# -*- test-case-name: tests.test_exporter_readers -*-
"""/proc/net/arp (proc(5)): the kernel's ARP table, counted per interface."""

from __future__ import annotations

from collections import Counter

from twistedspy.procfs import PROC, read_text


def parse_arp(text: str) -> dict[str, int]:
    """Entries per device: a heading, then `IP type flags MAC mask device` a line."""
    counts: Counter[str] = Counter()
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 6:
            counts[fields[5]] += 1
    return dict(counts)


def read_arp(proc: str = PROC) -> dict[str, int]:
    return parse_arp(read_text(f"{proc}/net/arp"))
