"""/pressure: the PSI reader on the fixture tree (irq has only a `full` line), a kernel
without PSI, an unreadable file, the golden page, node_exporter's pressure families,
and the live figures against the kernel's own files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from tests.contexts import collect_report, module_context
from tests.support import PROC
from tests.test_golden import check_page
from twistedspy.context import ModuleContext
from twistedspy.modules.metrics import MetricsModule, exposition
from twistedspy.modules.pressure import (
    NO_PSI,
    PressureModule,
    PressureSample,
    pressure_families,
    read_pressure_sample,
)
from twistedspy.procfs.pressure import Pressure, Stall, parse_pressure, read_pressure
from twistedspy.query import Query
from twistedspy.report import Mark, RawBody, cell_value
from twistedspy.settings import Settings


def fixture_copy(case: TestCase, *without: str) -> str:
    """The fixture tree's stat, loadavg and pressure files, less `without`."""
    root = Path(case.mktemp())
    root.mkdir(parents=True)
    for name in ("stat", "loadavg"):
        shutil.copy(Path(PROC) / name, root / name)
    shutil.copytree(Path(PROC) / "pressure", root / "pressure")
    for name in without:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return str(root)


def source(proc: str) -> PressureSample:
    return read_pressure_sample(proc)


class ReaderTests(TestCase):
    def test_fixture_tree(self) -> None:
        found = {p.resource: p for p in read_pressure(PROC)}
        self.assertEqual(list(found), ["cpu", "memory", "io", "irq"])
        self.assertEqual(found["cpu"].some, Stall(98.38, 96.43, 86.64, 1211600147))
        self.assertEqual(found["io"].full, Stall(0.0, 0.0, 0.0, 4090343))
        self.assertIsNone(found["irq"].some)
        self.assertEqual(found["irq"].full, Stall(0.0, 0.0, 0.0, 0))

    def test_fields_a_newer_kernel_adds_are_ignored(self) -> None:
        text = "some avg10=1.50 avg60=0.20 avg300=0.00 total=42 future=7\n"
        self.assertEqual(
            parse_pressure("cpu", text), Pressure("cpu", Stall(1.5, 0.2, 0.0, 42), None)
        )

    def test_no_pressure_folder_is_no_psi(self) -> None:
        self.assertEqual(read_pressure(fixture_copy(self, "pressure")), ())

    def test_an_older_kernel_without_irq(self) -> None:
        found = read_pressure(fixture_copy(self, "pressure/irq"))
        self.assertEqual([p.resource for p in found], ["cpu", "memory", "io"])


def clocked_module(proc: str) -> PressureModule:
    base = module_context()
    context = ModuleContext(base.settings, Clock(), base.run_blocking, base.served, Logger())
    return PressureModule(context, lambda: read_pressure_sample(proc))


class PageTests(TestCase):
    async def test_golden_page(self) -> None:
        module = clocked_module(PROC)
        module.startService()  # one history sample, at once
        module.stopService()
        html, document = check_page(self, "pressure", "pressure", await collect_report(module))
        self.assertIn('title="some task waited for cpu at least 10 % of the last 10 s"', html)
        tables = json.loads(document)["tables"]
        self.assertEqual(tables[0]["rows"][0], ["cpu", "some", 98.38, 96.43, 86.64, 1211.600147])
        self.assertEqual(tables[1]["rows"][0][1], 2)  # procs_running of the fixture's stat

    async def test_a_kernel_without_psi_gets_a_page_that_says_so(self) -> None:
        report = await collect_report(clocked_module(fixture_copy(self, "pressure")))
        self.assertIn(NO_PSI, report.notes)
        self.assertEqual([t.title for t in report.tables], ["What waits"])

    async def test_an_unreadable_file_is_said_not_raised(self) -> None:
        proc = fixture_copy(self, "pressure/io")
        (Path(proc) / "pressure" / "io").mkdir()  # read(2) fails EISDIR
        report = await collect_report(clocked_module(proc))
        self.assertTrue(any("could not be read" in note for note in report.notes), report.notes)

    def test_marks_only_past_the_threshold(self) -> None:
        module = clocked_module(PROC)
        report = module.collect(Query())
        assert not isinstance(report, RawBody)
        marked = [row[:2] for row in report.tables[0].rows if isinstance(row[2], Mark)]
        self.assertEqual(marked, [("cpu", "some")])


class MetricsTests(TestCase):
    def test_node_exporter_names(self) -> None:
        text = exposition(pressure_families(read_pressure(PROC))).decode()
        self.assertEqual(
            [line for line in text.splitlines() if not line.startswith("#")],
            [
                "node_pressure_cpu_waiting_seconds_total 1211.600147",
                "node_pressure_io_waiting_seconds_total 17.762171",
                "node_pressure_io_stalled_seconds_total 4.090343",
                "node_pressure_memory_waiting_seconds_total 0.0",
                "node_pressure_memory_stalled_seconds_total 0.0",
            ],
        )

    async def test_no_psi_is_a_failed_collector_not_a_failed_scrape(self) -> None:
        proc = fixture_copy(self, "pressure")
        base = module_context()
        served = [clocked_module(proc)]
        context = ModuleContext(Settings(), Clock(), base.run_blocking, lambda: served, Logger())
        metrics = MetricsModule(context)
        page = await metrics.collect(Query())
        assert isinstance(page, RawBody)
        text = page.content.decode()
        self.assertIn('node_scrape_collector_success{collector="pressure"} 0.0', text)
        self.assertIn('twistedspy_scrape_collector_success{collector="pressure"} 1.0', text)
        self.assertNotIn("node_pressure_", text)


class LiveTests(TestCase):
    def test_figures_equal_the_files_at_that_moment(self) -> None:
        """The averages change every 2 s (psi.rst): read the files, the module's figures,
        the files again, until both readings of the files agree; the module's averages
        are then theirs, and its totals lie between theirs."""
        if not read_pressure():
            self.skipTest("this kernel reports no pressure stall information")
        module = clocked_module("/proc")
        for _ in range(50):
            before = {p.resource: p for p in read_pressure()}
            report = module.collect(Query())
            after = {p.resource: p for p in read_pressure()}
            averages = {
                (r, kind): (s.avg10, s.avg60, s.avg300)
                for r, p in after.items()
                for kind, s in (("some", p.some), ("full", p.full))
                if s is not None
            }
            if averages == {
                (r, kind): (s.avg10, s.avg60, s.avg300)
                for r, p in before.items()
                for kind, s in (("some", p.some), ("full", p.full))
                if s is not None
            }:
                break
        else:
            self.fail("the averages changed on every try")
        assert not isinstance(report, RawBody)
        for row in report.tables[0].rows:
            resource, kind, avg10, avg60, avg300, total = (cell_value(c) for c in row)
            assert isinstance(resource, str) and isinstance(kind, str)
            assert isinstance(total, float)
            self.assertEqual((avg10, avg60, avg300), averages[resource, kind])
            stall_before = getattr(before[resource], kind)
            stall_after = getattr(after[resource], kind)
            self.assertLessEqual(stall_before.total_us / 1e6, total)
            self.assertLessEqual(total, stall_after.total_us / 1e6)


class GlanceTests(TestCase):
    def test_the_latest_averages_marked_as_on_the_page(self) -> None:
        module = clocked_module(PROC)
        self.assertEqual(module.glance(), [])  # nothing sampled yet
        module.startService()  # one sample, at once
        module.stopService()
        [table] = module.glance()
        page = module.collect(Query())
        assert not isinstance(page, RawBody)
        some = {r[0]: r[2] for r in page.tables[0].rows if r[1] == "some"}
        full = {r[0]: r[2] for r in page.tables[0].rows if r[1] == "full"}
        self.assertEqual(
            [list(row) for row in table.rows],
            [
                [p.resource, some.get(p.resource), full.get(p.resource)]
                for p in read_pressure(PROC)
            ],
        )
        self.assertIsInstance(table.rows[0][1], Mark)  # cpu some 98.38
