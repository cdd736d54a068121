"""Tests for the meminfo module: the parser, a fixed report, and /proc/meminfo itself."""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.contexts import collect_report, module_context
from twistedspy.modules.meminfo import COLUMNS, MeminfoModule
from twistedspy.procfs.meminfo import parse_meminfo
from twistedspy.report import Mark, Report, Table

FIXTURE = """\
MemTotal:        1000 kB
MemFree:          200 kB
MemAvailable:     600 kB
Buffers:           50 kB
Cached:           250 kB
SwapCached:         0 kB
Shmem:             10 kB
SReclaimable:      20 kB
SwapTotal:        400 kB
SwapFree:         300 kB
HugePages_Total:    0
"""


class MeminfoTests(TestCase):
    def test_parse(self) -> None:
        values = parse_meminfo(FIXTURE).values()
        self.assertEqual(values["MemTotal"], 1000 * 1024)
        self.assertEqual(values["HugePages_Total"], 0)

    async def test_exact_report(self) -> None:
        report = await collect_report(
            MeminfoModule(module_context(), lambda: parse_meminfo(FIXTURE))
        )
        k = 1024
        expected_tables = (
            Table(
                "Memory",
                COLUMNS,
                [
                    ("total", 1000 * k, 100.0),
                    ("used", 400 * k, 40.0),
                    ("free", 200 * k, 20.0),
                    ("available", 600 * k, 60.0),
                    ("shared", 10 * k, 1.0),
                    ("buffers", 50 * k, 5.0),
                    ("cached", 270 * k, 27.0),
                ],
            ),
            Table(
                "Swap",
                COLUMNS,
                [
                    ("total", 400 * k, 100.0),
                    ("used", Mark(100 * k, "swap in use: memory has been short"), 25.0),
                    ("free", 300 * k, 75.0),
                ],
            ),
        )
        self.assertEqual(report.tables, expected_tables)
        self.assertIsInstance(report, Report)

    async def test_no_swap(self) -> None:
        text = (
            "MemTotal: 10 kB\nMemFree: 5 kB\nMemAvailable: 5 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n"
        )
        report = await collect_report(MeminfoModule(module_context(), lambda: parse_meminfo(text)))
        self.assertEqual(
            report.tables[1].rows, (("total", 0, None), ("used", 0, None), ("free", 0, None))
        )

    async def test_totals_match_the_kernel(self) -> None:
        kernel = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            kernel[key] = value.split()
        report = await collect_report(MeminfoModule(module_context()))
        memory = {row[0]: row[1] for row in report.tables[0].rows}
        swap = {row[0]: row[1] for row in report.tables[1].rows}
        self.assertEqual(kernel["MemTotal"][1], "kB")
        self.assertEqual(memory["total"], int(kernel["MemTotal"][0]) * 1024)
        self.assertEqual(swap["total"], int(kernel["SwapTotal"][0]) * 1024)
