"""Tests for TextfileDir (twistedspy/textfile.py): `*.prom` files added to /metrics as
node_exporter's textfile collector adds them, a bad file an error for that file alone;
over a real server on 127.0.0.1:0, and checked by `promtool check metrics`."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.contexts import module_context
from tests.servers import start_server
from tests.test_metrics import by_name, samples, scrape
from tests.test_prometheus import promtool_problems
from twistedspy.modules.cpu import CpuModule
from twistedspy.modules.metrics import MetricsModule
from twistedspy.query import Query
from twistedspy.settings import Settings

GOOD = """\
# HELP apt_upgrades_pending Apt packages pending updates by origin.
# TYPE apt_upgrades_pending gauge
apt_upgrades_pending{arch="amd64",origin="Debian:bookworm/stable"} 3
# TYPE smart_reallocated_total counter
smart_reallocated_total{disk="sda"} 7
# TYPE node_reboot_required untyped
node_reboot_required 0
# TYPE old_style counter
old_style 12
# TYPE declared_only gauge
"""
HOSTILE = '# TYPE hostile gauge\nhostile{name="a\\"b\\\\c\\nd"} 1\n'


def write(folder: Path, name: str, text: str, mtime: float = 1_700_000_000) -> str:
    path = folder / name
    path.write_text(text)
    os.utime(path, (mtime, mtime))
    return str(path)


class TextfileTests(TestCase):
    def folder(self) -> Path:
        folder = Path(self.mktemp())
        folder.mkdir(parents=True)
        return folder

    def metrics(self, folder: Path | None) -> MetricsModule:
        context = module_context(Settings(textfile_dir=folder))
        cpu = CpuModule(context)
        return MetricsModule(replace(context, served=lambda: [cpu]))

    async def test_files_are_added_with_their_mtimes(self) -> None:
        folder = self.folder()
        good = write(folder, "apt.prom", GOOD, mtime=1_700_000_123)
        write(folder, "notes.txt", "not a prom file")
        found = samples(await scrape(self.metrics(folder)))
        key = (("arch", "amd64"), ("origin", "Debian:bookworm/stable"))
        self.assertEqual(found["apt_upgrades_pending", key], 3)
        self.assertEqual(found["smart_reallocated_total", (("disk", "sda"),)], 7)
        self.assertEqual(found["node_reboot_required", ()], 0)
        # a counter written without _total keeps the file's name, as node_exporter keeps it
        self.assertEqual(found["old_style", ()], 12)
        self.assertEqual(
            by_name(found, "node_textfile_mtime_seconds"), {(("file", good),): 1_700_000_123}
        )
        self.assertEqual(found["node_textfile_scrape_error", ()], 0)
        self.assertEqual(found["node_scrape_collector_success", (("collector", "textfile"),)], 1)

    async def test_each_bad_file_is_left_out_alone(self) -> None:
        folder = self.folder()
        good = write(folder, "a-good.prom", GOOD)
        write(folder, "broken.prom", "bad metric here\n")
        write(folder, "clash.prom", "# TYPE node_load1 gauge\nnode_load1 1e9\n")
        write(folder, "stamped.prom", "# TYPE stamped gauge\nstamped 1 1700000000000\n")
        write(folder, "twice.prom", "# TYPE apt_upgrades_pending gauge\napt_upgrades_pending 9\n")
        write(folder, "binary.prom", "")
        (folder / "binary.prom").write_bytes(b"\xff\xfe garbage\n")
        text = await scrape(self.metrics(folder))
        found = samples(text)
        self.assertEqual(
            by_name(found, "node_textfile_mtime_seconds"), {(("file", good),): 1_700_000_000}
        )
        self.assertEqual(found["node_textfile_scrape_error", ()], 1)
        # node_load1 is the kernel's, not the clashing file's
        self.assertLess(found["node_load1", ()], 1e9)
        self.assertNotIn("stamped", text)
        self.assertEqual(len(by_name(found, "apt_upgrades_pending")), 1)
        # the collector itself worked: the error is the files'
        self.assertEqual(found["node_scrape_collector_success", (("collector", "textfile"),)], 1)

    async def test_a_missing_folder_is_an_error_not_a_failed_scrape(self) -> None:
        found = samples(await scrape(self.metrics(Path(self.mktemp()))))
        self.assertEqual(found["node_textfile_scrape_error", ()], 1)
        self.assertIn(("node_load1", ()), found)

    async def test_without_a_folder_no_error(self) -> None:
        found = samples(await scrape(self.metrics(None)))
        self.assertEqual(found["node_textfile_scrape_error", ()], 0)
        self.assertEqual(by_name(found, "node_textfile_mtime_seconds"), {})

    async def test_excluded_like_any_collector(self) -> None:
        folder = self.folder()
        write(folder, "apt.prom", GOOD)
        text = await scrape(self.metrics(folder), Query((("exclude[]", "textfile"),)))
        self.assertNotIn("apt_upgrades_pending", text)

    async def test_over_http_hostile_labels_and_promtool_clean(self) -> None:
        folder = self.folder()
        write(folder, "apt.prom", GOOD)
        write(folder, "hostile.prom", HOSTILE)
        write(folder, "broken.prom", "{{{\n")
        server = start_server(self, textfile_dir=folder)
        reply = await server.request("GET", "/metrics")
        self.assertEqual(reply.status, 200)
        found = samples(reply.body.decode())
        self.assertEqual(found["hostile", (("name", 'a"b\\c\nd'),)], 1)
        self.assertEqual(found["node_textfile_scrape_error", ()], 1)
        problems = [
            line
            for line in promtool_problems(reply.body)
            # the files' own lint (help texts they left out) is theirs to mend, and is
            # what promtool's exit status 3 is about
            if not line.endswith("no help text") and line != "promtool exit status 3"
        ]
        self.assertEqual(problems, [])
