"""/diskio: the /proc/diskstats reader on the fixture tree, iostat's arithmetic, the page
(golden HTML and JSON, hostile names), node_exporter's diskstats families, and a write
that the disk's counters must show."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from tests.contexts import collect_report, module_context
from tests.support import FIXTURES, PROC
from tests.test_golden import check_page
from twistedspy.context import ModuleContext
from twistedspy.modules.diskio import (
    DiskioModule,
    DiskSample,
    disk_rates,
    diskstats_families,
    read_disk_sample,
    shown,
)
from twistedspy.modules.metrics import MetricsModule, exposition
from twistedspy.procfs.diskstats import (
    DiskCounters,
    UdevDisk,
    parent_disk,
    read_diskstats,
    read_udev_disk,
)
from twistedspy.query import Query
from twistedspy.report import Mark, RawBody, Report
from twistedspy.settings import Settings

UDEV = str(FIXTURES / "run" / "udev" / "data")
HOSTILE_DISK = "<b>\"evil'&"


def later(disks: tuple[DiskCounters, ...], **grow: int) -> tuple[DiskCounters, ...]:
    """The same devices with `sda`'s counters grown by `grow`."""
    return tuple(
        replace(d, **{k: getattr(d, k) + v for k, v in grow.items()}) if d.name == "sda" else d
        for d in disks
    )


class ReaderTests(TestCase):
    def test_fixture_tree(self) -> None:
        disks = {d.name: d for d in read_diskstats(PROC)}
        sda = disks["sda"]
        self.assertEqual((sda.major, sda.minor), (8, 0))
        self.assertEqual((sda.reads, sda.read_sectors, sda.read_ms), (159646, 6650146, 89910))
        self.assertEqual((sda.writes, sda.written_sectors, sda.in_flight), (97818, 13714728, 2))
        self.assertEqual((sda.discards, sda.flushes, sda.flush_ms), (39962, 19489, 7529))
        # An old kernel's line: 11 counters, no discard or flush fields.
        old = disks[HOSTILE_DISK]
        self.assertEqual(
            (old.reads, old.weighted_io_ms, old.discards, old.flushes), (10, 5, None, None)
        )
        self.assertTrue(disks["zram0"].idle)
        self.assertFalse(disks["loop0"].idle)

    def test_partitions_find_their_disk(self) -> None:
        names = {"sda", "sda1", "sda12", "nvme0n1", "nvme0n1p1", "mmcblk0", "mmcblk0p2", "dm-0"}
        found = {n: parent_disk(n, names) for n in sorted(names)}
        self.assertEqual(
            found,
            {
                "dm-0": None,
                "mmcblk0": None,
                "mmcblk0p2": "mmcblk0",
                "nvme0n1": None,
                "nvme0n1p1": "nvme0n1",
                "sda": None,
                "sda1": "sda",
                "sda12": "sda",
            },
        )

    def test_udev_record(self) -> None:
        self.assertEqual(
            read_udev_disk(8, 0, UDEV),
            UdevDisk(
                path="pci-0000:00:01.1-ata-1",
                wwn="0x5000c500a1b2c3d4",
                model="QEMU_HARDDISK",
                serial="QM00001",
                revision="2.5+",
                ata={
                    "ID_ATA_WRITE_CACHE": 1.0,
                    "ID_ATA_WRITE_CACHE_ENABLED": 0.0,
                    "ID_ATA_ROTATION_RATE_RPM": 7200.0,
                },
            ),
        )
        self.assertEqual(read_udev_disk(8, 16, UDEV), UdevDisk())


class ArithmeticTests(TestCase):
    def test_iostat_figures(self) -> None:
        """Two seconds in which sda did 100 reads of 4 KiB taking 300 ms, 50 writes
        taking 1 s, was busy 1.5 s and had 2.5 s of weighted time: iostat -x's sums."""
        before = {d.name: d for d in read_diskstats(PROC)}["sda"]
        (after,) = later(
            (before,),
            reads=100,
            read_sectors=800,
            read_ms=300,
            writes=50,
            written_sectors=4000,
            write_ms=1000,
            io_ms=1500,
            weighted_io_ms=2500,
        )
        rates = disk_rates(before, after, 2.0, None)
        self.assertEqual(
            (rates.reads_per_second, rates.writes_per_second),
            (50.0, 25.0),
        )
        self.assertEqual(rates.read_bytes_per_second, 800 * 512 / 2)
        self.assertEqual(rates.written_bytes_per_second, 4000 * 512 / 2)
        self.assertEqual((rates.read_await, rates.write_await), (3.0, 20.0))
        self.assertEqual((rates.utilisation, rates.queue_size, rates.in_flight), (75.0, 1.25, 2))
        # No request in the interval: no await to speak of; a counter reset counts as 0.
        idle = disk_rates(after, before, 2.0, None)
        self.assertEqual(
            (idle.read_await, idle.reads_per_second, idle.utilisation), (None, 0.0, 0.0)
        )

    def test_shown_hides_loop_ram_and_idle_and_groups_partitions(self) -> None:
        disks = read_diskstats(PROC)
        self.assertEqual(
            [(d.name, disk) for d, disk in shown(disks, show_all=False)],
            [
                ("sda", None),
                ("sda1", "sda"),
                ("sda2", "sda"),
                ("nvme0n1", None),
                ("nvme0n1p1", "nvme0n1"),
                (HOSTILE_DISK, None),
            ],
        )
        self.assertEqual(len(shown(disks, show_all=True)), len(disks))


def diskio_module(samples: list[DiskSample], settings: Settings | None = None) -> DiskioModule:
    module = DiskioModule(module_context(settings), samples.pop, lambda major, minor: UdevDisk())
    module.readings()  # the sampler's first reading, the page's base
    return module


class PageTests(TestCase):
    def samples(self) -> list[DiskSample]:
        disks = read_diskstats(PROC)
        busy = later(disks, reads=500, read_ms=100_000, io_ms=1900, writes=10, write_ms=30)
        return [DiskSample(102.0, busy), DiskSample(100.0, disks)]  # popped from the end

    async def test_golden_page_with_marks(self) -> None:
        report = await collect_report(diskio_module(self.samples()))
        html, document = check_page(self, "diskio", "diskio", report)
        self.assertIn("&lt;b&gt;&#34;evil&#39;&amp;", html)
        self.assertNotIn('<b>"evil', html)
        self.assertIn('title="busy at least 90 % of the time"', html)
        self.assertIn('title="requests waited more than 100 ms on average"', html)
        rows = json.loads(document)["tables"][0]["rows"]
        self.assertIn(HOSTILE_DISK, [row[0] for row in rows])
        sda = next(r for r in rows if r[0] == "sda")
        self.assertEqual(sda[2:9], [250.0, 5.0, 0.0, 0.0, 200.0, 3.0, 95.0])

    async def test_await_limit_is_configurable(self) -> None:
        module = diskio_module(self.samples(), Settings(disk_await_limit=500.0))
        report = await collect_report(module)
        sda = next(r for r in report.tables[0].rows if r[0] == "sda")
        self.assertEqual(sda[6], 200.0)  # under 500 ms: not marked
        self.assertIsInstance(sda[8], Mark)

    async def test_all_shows_every_device(self) -> None:
        module = diskio_module(self.samples())
        report = await collect_report(module, Query((("all", "1"),)))
        self.assertIn("loop1", [r[0] for r in report.tables[0].rows])
        self.assertNotIn(
            "loop1",
            [r[0] for r in (await collect_report(diskio_module(self.samples()))).tables[0].rows],
        )

    async def test_history_from_the_sampler(self) -> None:
        clock = Clock()
        samples = self.samples()
        context = module_context()
        context = type(context)(
            context.settings, clock, context.run_blocking, context.served, Logger()
        )
        module = DiskioModule(context, lambda: samples[-1] if len(samples) == 1 else samples.pop())
        module.startService()
        clock.advance(5)
        module.stopService()
        report = await collect_report(module)
        self.assertIsInstance(report, Report)
        titles = {s.title: list(s.values) for s in report.series}
        self.assertEqual(titles["Busiest disk's utilisation (%)"], [95.0])


class MissingFileTests(TestCase):
    async def test_no_diskstats_is_said_on_the_page_and_fails_only_its_collector(self) -> None:
        proc = Path(self.mktemp())
        proc.mkdir(parents=True)
        module = DiskioModule(module_context(), lambda: read_disk_sample(str(proc)))
        report = await collect_report(module)
        self.assertEqual(
            report.notes, (f"Could not read {proc}/diskstats: No such file or directory.",)
        )
        base = module_context()
        context = ModuleContext(Settings(), Clock(), base.run_blocking, lambda: [module], Logger())
        page = await MetricsModule(context).collect(Query())
        assert isinstance(page, RawBody)
        self.assertIn(b'node_scrape_collector_success{collector="diskstats"} 0.0', page.content)


class MetricsTests(TestCase):
    def test_node_exporter_names_and_exclusions(self) -> None:
        families = diskstats_families(
            read_diskstats(PROC), lambda a, b: read_udev_disk(a, b, UDEV)
        )
        text = exposition(families).decode()
        # node_exporter 1.5's default exclusion: partitions, loop and ram devices
        self.assertNotIn('device="sda1"', text)
        self.assertNotIn('device="nvme0n1p1"', text)
        self.assertNotIn('device="loop0"', text)
        self.assertIn('node_disk_written_bytes_total{device="sda"} 7.021940736e+09', text)
        self.assertIn('node_disk_read_time_seconds_total{device="sda"} 89.91', text)
        self.assertIn(
            'node_disk_info{device="sda",major="8",minor="0",model="QEMU_HARDDISK",'
            'path="pci-0000:00:01.1-ata-1",revision="2.5+",serial="QM00001",'
            'wwn="0x5000c500a1b2c3d4"} 1.0',
            text,
        )
        # label values escaped as the text format wants (a quote and a backslash)
        self.assertIn('node_disk_reads_completed_total{device="<b>\\"evil\'&"} 10.0', text)
        # udev's ATA properties, for the ATA disk only
        self.assertIn('node_disk_ata_rotation_rate_rpm{device="sda"} 7200.0', text)
        self.assertIn('node_disk_ata_write_cache_enabled{device="sda"} 0.0', text)
        self.assertNotIn('node_disk_ata_write_cache{device="nvme0n1"}', text)
        # no discard counter for a kernel that has none
        self.assertNotIn('node_disk_discards_completed_total{device="<b>', text)


class GroundTruthTests(TestCase):
    def test_a_synced_write_shows_on_its_disk(self) -> None:
        """Write 8 MiB with fsync to a file: its disk's written bytes rise at least as much."""
        folder = Path(self.mktemp())
        folder.mkdir(parents=True)
        device = folder.stat().st_dev
        disks = {(d.major, d.minor): d.name for d in read_diskstats()}
        name = disks.get((os.major(device), os.minor(device)))
        if name is None:
            self.skipTest("the test folder is on no block device (tmpfs, overlay)")
        names = set(disks.values())
        disk = parent_disk(name, names) or name

        def written() -> float:
            module = DiskioModule(module_context(), read_disk_sample)
            text = exposition(module.metrics()).decode()
            line = next(
                line
                for line in text.splitlines()
                if line.startswith(f'node_disk_written_bytes_total{{device="{disk}"}}')
            )
            return float(line.rpartition(" ")[2])

        amount = 8 * 1024 * 1024
        before = written()
        fd = os.open(folder / "data", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.write(fd, os.urandom(amount))
            os.fsync(fd)
        finally:
            os.close(fd)
        self.assertGreaterEqual(written() - before, amount)


class GlanceTests(TestCase):
    def test_the_landing_page_gets_the_latest_interval_busiest_marked(self) -> None:
        clock = Clock()
        samples = PageTests().samples()
        context = module_context()
        context = type(context)(
            context.settings, clock, context.run_blocking, context.served, Logger()
        )
        module = DiskioModule(context, lambda: samples[-1] if len(samples) == 1 else samples.pop())
        self.assertEqual(module.glance(), [])  # no interval yet
        module.startService()
        clock.advance(5)
        module.stopService()
        [table] = module.glance()
        [(read, written, operations, busiest)] = table.rows
        point = module.sampler.samples[-1]
        self.assertEqual((read, written, operations), (point[0], point[1], point[2]))
        self.assertEqual(busiest, Mark(95.0, "a disk busy at least 90 % of the time"))
