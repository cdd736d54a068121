"""Thresholds in one place: each judgement, its reason, the settings that move it, and
the pages that show it (a module's own page and the landing page's list)."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from tests.contexts import collect_report, module_context
from twistedspy.modules.meminfo import MeminfoModule
from twistedspy.procfs.meminfo import parse_meminfo
from twistedspy.report import Mark, cell_value
from twistedspy.settings import Settings
from twistedspy.thresholds import DEFAULT, Thresholds


class JudgementTests(TestCase):
    def test_defaults(self) -> None:
        # Glances' and the node-mixin alerts' common practice.
        self.assertEqual(
            (DEFAULT.disk_full_percent, DEFAULT.memory_available_percent),
            (90.0, 10.0),
        )
        self.assertEqual((DEFAULT.swap_used_percent, DEFAULT.load_per_cpu), (0.0, 1.0))
        self.assertEqual((DEFAULT.cpu_busy_percent, DEFAULT.stuck_process_seconds), (90.0, 60.0))

    def test_each_limit_marks_from_its_edge(self) -> None:
        t = DEFAULT
        self.assertIsInstance(t.disk(90.0), Mark)
        self.assertEqual(t.disk(89.9), 89.9)
        self.assertEqual(t.disk(None), None)
        # Filling up: within the horizon, and under 40 % available (node-mixin's rule).
        self.assertIsInstance(t.disk(61.0, 23.0), Mark)
        self.assertEqual(t.disk(59.0, 23.0), 59.0)
        self.assertEqual(t.disk(61.0, 25.0), 61.0)
        self.assertIsInstance(t.memory_available(9, 100), Mark)
        self.assertEqual(t.memory_available(10, 100), 10)
        self.assertIsInstance(t.swap_used(1, 100), Mark)
        self.assertEqual(t.swap_used(0, 100), 0)
        self.assertEqual(t.swap_used(0, 0), 0)
        self.assertIsInstance(t.load(1.01), Mark)
        self.assertEqual(t.load(1.0), 1.0)
        self.assertIsInstance(t.cpu_busy(90.0), Mark)
        self.assertEqual(t.cpu_busy(None), None)
        self.assertIsInstance(t.process_state("D", 60.0), Mark)
        self.assertEqual(t.process_state("D", 59.0), "D")
        self.assertEqual(t.process_state("R", 600.0), "R")

    def test_settings_move_the_limits(self) -> None:
        t = Thresholds.of(Settings(disk_full_percent=50, swap_used_percent=25))
        self.assertIsInstance(t.disk(50.0), Mark)
        self.assertEqual(t.swap_used(25, 100), 25)
        mark = t.swap_used(26, 100)
        assert isinstance(mark, Mark)
        self.assertIn("25 %", mark.why)

    def test_listed_with_every_setting_name(self) -> None:
        listed = [cell_value(row[0]) for row in DEFAULT.table().rows]
        for name in (
            "DiskFullPercent",
            "DiskFillHours",
            "MemoryAvailablePercent",
            "SwapUsedPercent",
            "LoadPerCPU",
            "CPUBusyPercent",
            "StuckProcessSeconds",
        ):
            self.assertIn(name, listed)


class ModulePageTests(TestCase):
    async def test_meminfo_marks_low_available_memory_as_configured(self) -> None:
        # 8 % of memory available.
        text = (
            "MemTotal: 1000 kB\nMemFree: 10 kB\nMemAvailable: 80 kB\n"
            "SwapTotal: 0 kB\nSwapFree: 0 kB\n"
        )
        meminfo = parse_meminfo(text)
        for percent, marked in ((10.0, True), (5.0, False)):
            settings = Settings(memory_available_percent=percent)
            module = MeminfoModule(module_context(settings), lambda: meminfo)
            report = await collect_report(module)
            [available] = [r[1] for r in report.tables[0].rows if r[0] == "available"]
            self.assertEqual(isinstance(available, Mark), marked, percent)
            [glance] = module.glance()
            self.assertEqual(isinstance(glance.rows[0][1], Mark), marked, percent)
