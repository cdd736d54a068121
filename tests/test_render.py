# -*- test-case-name: tests.test_render -*-
"""Rendering: human units in HTML, raw values in JSON, and every value escaped."""

from __future__ import annotations

import json

from twisted.trial.unittest import TestCase

from twistedspy.query import Query
from twistedspy.render import (
    Renderer,
    _cell_html,
    human_bytes,
    human_seconds,
    remembered_rows_html,
    table_rows_html,
)
from twistedspy.report import Cell, Column, Link, Mark, NavItem, PageContext, Report, Table

HOSTILE = '<img src=x onerror=alert(1)>"&'
CONTEXT = PageContext("host<1>", [NavItem("version", "Version")], 0.0)


class UnitTests(TestCase):
    def test_human_bytes(self) -> None:
        cases = [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (5 * 1024**3, "5.0 GiB"),
        ]
        for value, text in cases:
            self.assertEqual(human_bytes(value), text)

    def test_human_seconds(self) -> None:
        self.assertEqual(human_seconds(59), "00:00:59")
        self.assertEqual(human_seconds(90061), "1d 01:01:01")


class PageTests(TestCase):
    report = Report(
        title="T",
        notes=[HOSTILE],
        tables=[
            Table(
                title=HOSTILE,
                columns=[
                    Column(HOSTILE),
                    Column("size", "bytes", sort_key="size"),
                    Column("use", "percent"),
                ],
                rows=[[HOSTILE, 2048, Mark(95.0, "over 90 %")]],
            )
        ],
    )

    def test_html_escapes_everything(self) -> None:
        page = Renderer().html("m", self.report, Query(), CONTEXT).body.decode()
        self.assertNotIn("<img", page)
        self.assertIn("&lt;img src=x onerror=alert(1)&gt;&#34;&amp;", page)
        self.assertIn("host&lt;1&gt;", page)

    def test_html_units_and_marks(self) -> None:
        page = Renderer().html("m", self.report, Query(), CONTEXT).body.decode()
        self.assertIn(">2.0 KiB</td>", page)
        self.assertIn('class="percent mark"', page)
        self.assertIn('title="over 90 %"', page)
        self.assertIn('data-sort="2048"', page)

    def test_cells_say_each_thing_once(self) -> None:
        """A cell carries a class, a sort key or a meter attribute only where the text
        and the stylesheet's defaults do not already say it: a page of 4000 processes
        has 40,000 cells."""
        columns = [
            Column("pid", "id"),
            Column("name"),
            Column("threads", "int"),
            Column("rss", "bytes"),
            Column("cpu", "percent"),
            Column("state"),
        ]
        row: list[Cell] = [812, "postgres", 1234, 2048, 0.5, Mark("D", "waiting <on> I/O")]
        self.assertEqual(
            table_rows_html([row], columns),
            '<tr><td class="id">812</td><td>postgres</td>'
            '<td class="int" data-sort="1234">1,234</td>'
            '<td class="bytes" data-sort="2048">2.0 KiB</td>'
            '<td class="percent" data-sort="0.5">'
            "<meter max=100 low=75 high=90 optimum=0 value=0.5></meter> 0.5 %</td>"
            '<td class="text mark" title="waiting &lt;on&gt; I/O">D</td></tr>\n',
        )

    def test_the_quick_paths_write_what_the_general_one_does(self) -> None:
        values: list[Cell] = [-1001, -999, 0, 999, 1000, 10**6, 2.5, None, True, "<a&b>", 7]
        values.append(Mark(1234, "why"))
        for unit in ("text", "id", "int"):
            column = Column("c", unit)
            for value in values:
                with self.subTest(unit=unit, value=value):
                    self.assertEqual(
                        table_rows_html([[value]], [column]),
                        f"<tr>{_cell_html(value, column)}</tr>\n",
                    )

    def test_remembered_rows_are_the_rows_written_afresh(self) -> None:
        columns = [Column("n", "int"), Column("name"), Column("use", "percent")]
        first: list[tuple[Cell, ...]] = [(1, "a", 5.0), (2, "<b>", Mark(95.0, "why"))]
        body, kept = remembered_rows_html(first, columns, {})
        self.assertEqual(body, table_rows_html(first, columns))
        second: list[tuple[Cell, ...]] = [(2, "<b>", 1.0), (1, "a", 5.0), (4, "d", None)]
        again, kept = remembered_rows_html(second, columns, {**kept, (1, "a", 5.0): "kept\n"})
        lines = table_rows_html(second, columns).splitlines(keepends=True)
        self.assertEqual(again, "".join([lines[0], "kept\n", lines[2]]))  # found, not written
        self.assertEqual(set(kept), set(second))  # the row gone from the page is forgotten

    def test_json_keeps_raw_values(self) -> None:
        document = json.loads(Renderer().json("m", self.report, CONTEXT).body)
        self.assertEqual(document["module"], "m")
        self.assertEqual(document["host"], "host<1>")
        self.assertEqual(document["tables"][0]["rows"], [[HOSTILE, 2048, 95.0]])
        self.assertEqual(document["tables"][0]["columns"], [HOSTILE, "size", "use"])
        self.assertEqual(set(document), {"module", "title", "host", "generated", "tables"})

    def test_json_says_which_cells_are_marked(self) -> None:
        columns = (Column("Mount"), Column("Use", "percent"))
        rows: list[list[Cell]] = [
            ["/", 12.0],
            [Link(Mark("/srv", "not responding"), "/diskfree"), Mark(95.0, "at least 90 % full")],
        ]
        report = Report(
            title="t",
            tables=(Table("Marked", columns, rows), Table("Plain", columns, [["/", 1.0]])),
        )
        tables = json.loads(Renderer().json("m", report, CONTEXT).body)["tables"]
        self.assertEqual(
            tables[0]["marks"], [[1, 0, "not responding"], [1, 1, "at least 90 % full"]]
        )
        self.assertEqual(tables[0]["rows"], [["/", 12.0], ["/srv", 95.0]])
        self.assertNotIn("marks", tables[1])

    def test_json_error_shape(self) -> None:
        response = Renderer().error(404, "gone", as_json=True)
        self.assertEqual(json.loads(response.body), {"error": {"status": 404, "message": "gone"}})
