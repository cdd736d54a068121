"""The landing page: every served module's figures through IGlance, what is past a
threshold listed first with a link to its page, and the thresholds in force."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.contexts import collect_report, module_context
from twistedspy.interfaces import IGlance, IInfoModule
from twistedspy.modules.index import IndexModule
from twistedspy.query import Query
from twistedspy.report import Column, Link, Mark, Report, Table, cell_value


@implementer(IInfoModule, IGlance)
class Figures:
    def __init__(self, name: str, answer: object) -> None:
        self.name = name
        self.title = name.title()
        self.description = "figures"
        self._answer = answer

    def collect(self, query: Query) -> Report:
        return Report(self.title)

    def glance(self) -> Sequence[Table] | Deferred[Sequence[Table]]:
        if isinstance(self._answer, Exception):
            raise self._answer
        return self._answer  # type: ignore[return-value]


@implementer(IInfoModule)
class Plain:
    name = "plain"
    title = "Plain"
    description = "no figures"

    def collect(self, query: Query) -> Report:
        return Report(self.title)


DISKS = Table(
    "Fullest file systems",
    (Column("Mounted on"), Column("Use", "percent")),
    (("/", 42.0), ("/srv", Mark(95.0, "at least 90 % full"))),
)
LOAD = Table("Load", (Column("Per CPU", "float"),), ((Mark(1.5, "load over 1 per CPU"),),))


class LandingPageTests(TestCase):
    async def landing(self, *served: IInfoModule) -> Report:
        context = replace(module_context(), served=lambda: served)
        return await collect_report(IndexModule(context))

    async def test_figures_and_what_is_past_a_threshold(self) -> None:
        disks = Figures("diskfree", [DISKS])
        later: Deferred[Sequence[Table]] = succeed([LOAD])
        cpu = Figures("cpu", later)
        verifyObject(IGlance, disks)
        report = await self.landing(disks, Plain(), cpu)
        titles = [t.title for t in report.tables]
        self.assertEqual(
            titles[:4], ["Past a threshold", "Fullest file systems", "Load", "Thresholds"]
        )
        alerts = report.tables[0]
        self.assertEqual(
            [tuple(cell_value(c) for c in row) for row in alerts.rows],
            [
                ("Fullest file systems: /srv", "Use", "95.0", "at least 90 % full"),
                ("Load", "Per CPU", "1.5", "load over 1 per CPU"),
            ],
        )
        self.assertEqual([row[0].href for row in alerts.rows], ["/diskfree", "/cpu"])  # type: ignore[union-attr]
        # Each figure's row leads to its module's page; the marks stay on the values.
        disk_rows = report.tables[1].rows
        self.assertEqual(disk_rows[0][0], Link("/", "/diskfree"))
        self.assertIsInstance(disk_rows[1][1], Mark)
        self.assertIn("2 past a threshold: see the first table.", report.notes)

    async def test_a_failing_module_costs_only_its_figures(self) -> None:
        report = await self.landing(
            Figures("broken", RuntimeError("no")), Figures("diskfree", [DISKS])
        )
        self.assertIn("No figures from: Broken.", report.notes)
        self.assertIn("Fullest file systems", [t.title for t in report.tables])

    async def test_nothing_past_a_threshold(self) -> None:
        report = await self.landing(Plain())
        self.assertEqual(report.tables[0].rows, ())
        self.assertIn("Nothing is past a threshold.", report.notes)
