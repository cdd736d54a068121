"""Tests for the diskfree module: mount parsing, df's rules, a hung mount, and statvfs('/')."""

from __future__ import annotations

import os
import threading
from dataclasses import replace

from twisted.internet import reactor
from twisted.internet.defer import maybeDeferred
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase

from tests.contexts import collect_report, module_context
from twistedspy.modules.diskfree import COLUMNS, FILL_SAMPLE, DiskfreeModule, hours_to_full
from twistedspy.procfs.mounts import Mount
from twistedspy.query import Query
from twistedspy.report import InvalidQuery, Mark, Table
from twistedspy.settings import Settings
from twistedspy.thresholds import NOT_RESPONDING, Thresholds


def statvfs_result(
    blocks: int, bfree: int, bavail: int, files: int, ffree: int
) -> os.statvfs_result:
    # bsize, frsize, blocks, bfree, bavail, files, ffree, favail, flag, namemax
    return os.statvfs_result((4096, 1024, blocks, bfree, bavail, files, ffree, ffree, 0, 255))


MOUNTS = [
    Mount("/dev/sda1", "/", "ext4"),
    Mount("proc", "/proc", "proc"),
    Mount("tmpfs", "/run", "tmpfs"),
    Mount("/dev/sda1", "/var/lib/docker/bind", "ext4"),
    Mount("/dev/sdb1", "/data", "xfs"),
    Mount("empty", "/empty", "fuse.zero"),
]
STATS = {
    "/": statvfs_result(1000, 400, 350, 100, 60),
    "/proc": statvfs_result(0, 0, 0, 0, 0),
    "/run": statvfs_result(100, 100, 100, 50, 49),
    "/var/lib/docker/bind": statvfs_result(1000, 400, 350, 100, 60),
    "/data": statvfs_result(1000, 50, 50, 0, 0),
    "/empty": statvfs_result(0, 0, 0, 0, 0),
}


class FixedDataTests(TestCase):
    def module(self) -> DiskfreeModule:
        return DiskfreeModule(module_context(), lambda: MOUNTS, STATS.__getitem__)

    async def test_exact_report(self) -> None:
        report = await collect_report(self.module())
        k = 1024
        expected = Table(
            "File systems",
            COLUMNS,
            [
                ("/dev/sda1", "/", "ext4", 1000 * k, 600 * k, 350 * k, 63.2, 40, 60),
                ("tmpfs", "/run", "tmpfs", 100 * k, 0, 100 * k, 0.0, 1, 49),
                ("/dev/sdb1", "/data", "xfs", 1000 * k, 950 * k, 50 * k,
                 Mark(95.0, "at least 90 % full"), None, None),
            ],
        )  # fmt: skip
        self.assertEqual(report.tables, (expected,))

    async def test_all_shows_everything(self) -> None:
        report = await collect_report(self.module(), Query((("all", "1"),)))
        self.assertEqual(
            [row[1] for row in report.tables[0].rows],
            ["/", "/proc", "/run", "/var/lib/docker/bind", "/data", "/empty"],
        )

    def test_bad_all(self) -> None:
        error = self.assertRaises(InvalidQuery, self.module().collect, Query((("all", "yes"),)))
        self.assertIn("0 or 1", str(error))


class FillingUpTests(TestCase):
    """A file system losing space at a steady rate is marked before it is full."""

    def test_hours_to_full(self) -> None:
        # 1000 bytes lost an hour, 5000 left: five hours.
        points = [(t * 600.0, 10_000 - t * 1000 // 6) for t in range(31)]
        hours = hours_to_full(points)
        assert hours is not None
        self.assertLess(abs(hours - 5.0), 0.01)
        self.assertIsNone(hours_to_full([(0.0, 5), (60.0, 4), (120.0, 3)]))  # too short
        self.assertIsNone(hours_to_full([(t * 600.0, 100 + t) for t in range(10)]))

    async def test_marked_once_the_rate_says_full_within_a_day(self) -> None:
        clock = Clock()
        context = replace(
            module_context(),
            reactor=clock,
            run_blocking=maybeDeferred,  # type: ignore[arg-type]
        )
        free = [400]  # blocks available of 1000: 60 % used

        def statvfs(path: str) -> os.statvfs_result:
            return statvfs_result(1000, free[0], free[0], 100, 60)

        module = DiskfreeModule(context, lambda: [Mount("/dev/sda1", "/", "ext4")], statvfs)
        module.startService()
        self.addCleanup(module.stopService)
        # A block a minute for 45 minutes: the 355 left (35.5 % available) last 6 hours.
        for _ in range(45):
            free[0] -= 1
            clock.advance(FILL_SAMPLE)
        self.assertEqual(len(module.available["/"]), 45)  # one a minute
        report = await collect_report(module)
        use = report.tables[0].rows[0][6]
        assert isinstance(use, Mark), use
        self.assertIn("filling up: full in about 6 h", use.why)
        hours = hours_to_full(module.available["/"])
        # A configured horizon shorter than that leaves it unmarked.
        self.assertEqual(Thresholds.of(Settings(disk_fill_hours=2)).disk(64.5, hours), 64.5)


class HungMountTests(TestCase):
    async def test_hung_mount_is_not_asked_again(self) -> None:
        release = threading.Event()
        self.addCleanup(release.set)  # never leave a worker thread blocked
        calls: list[str] = []

        def statvfs(path: str) -> os.statvfs_result:
            calls.append(path)
            if path == "/data":
                release.wait()
            return STATS[path]

        module = DiskfreeModule(module_context(), lambda: MOUNTS, statvfs, deadline=0.2)
        first = await collect_report(module)
        rows = {row[1]: row for row in first.tables[0].rows}
        size = rows["/data"][3]
        assert isinstance(size, Mark)
        self.assertEqual(size.value, NOT_RESPONDING)
        self.assertEqual(rows["/"][3], 1024 * 1000)  # the others are unaffected
        self.assertEqual(calls.count("/data"), 1)

        second = await collect_report(module)
        self.assertEqual(calls.count("/data"), 1)  # not asked again while stuck
        self.assertIn("Not responding: /data.", second.notes)

        # The stuck call returns; the mount is asked again and answers.
        release.set()
        while module.stuck:
            await deferLater(reactor, 0.01, lambda: None)
        third = await collect_report(module)
        rows = {row[1]: row for row in third.tables[0].rows}
        self.assertEqual(rows["/data"][3], 1024 * 1000)
        self.assertEqual(calls.count("/data"), 2)


class LiveTests(TestCase):
    async def test_root_matches_statvfs(self) -> None:
        report = await collect_report(DiskfreeModule(module_context()), Query((("all", "1"),)))
        # the last mount on "/" is the one statvfs sees (earlier ones are mounted over)
        [root] = [row for row in report.tables[0].rows if row[1] == "/"][-1:]
        st = os.statvfs("/")
        self.assertEqual(root[3], st.f_blocks * st.f_frsize)
        # available moves with every write on the machine; size does not
        available = root[5]
        assert isinstance(available, int)
        self.assertLess(abs(available - st.f_bavail * st.f_frsize), 64 * 1024 * 1024)
