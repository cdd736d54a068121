"""Tests for the processes module: /proc parsers, masking, queries, ground truth."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from dataclasses import replace

from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase

from tests.contexts import collect_report, module_context
from tests.support import require_tool
from twistedspy.history import SAMPLE_INTERVAL
from twistedspy.modules.processes import (
    COLUMNS,
    RESTING_INTERVAL,
    WATCHED_FOR,
    ProcessesModule,
)
from twistedspy.modules.processes import process_link as link
from twistedspy.procfs.processes import (
    ProcessSample,
    ProcessSnapshot,
    ProcfsProcessSource,
    parse_stat,
)
from twistedspy.query import Query
from twistedspy.report import InvalidQuery, Mark, Report, Table, cell_value

HOSTILE = "<img src=x onerror=alert(1)>"


def sample(pid: int, cpu: float, **fields: object) -> ProcessSample:
    values: dict[str, object] = {
        "pid": pid,
        "name": f"p{pid}",
        "state": "S",
        "user": "root",
        "group": "root",
        "rss": pid * 4096,
        "cpu_seconds": cpu,
        "threads": 1,
        "start_time": 1000.0 + pid,
        "cmdline": (f"/bin/p{pid}",),
    }
    values.update(fields)
    return ProcessSample(**values)  # type: ignore[arg-type]


class FixedSource:
    """Hands out prepared snapshots in turn, the last one forever."""

    def __init__(self, *snapshots: ProcessSnapshot) -> None:
        self.snapshots = list(snapshots)

    def __call__(self) -> ProcessSnapshot:
        return self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0]


class FixedDataTests(TestCase):
    """The exact report for fixed samples, and the query parameters."""

    def module(self) -> ProcessesModule:
        first = ProcessSnapshot(10.0, (sample(1, 5.0), sample(2, 1.0), sample(3, 0.0)))
        second = ProcessSnapshot(
            12.0,
            (
                sample(1, 5.5),
                sample(2, 2.0, user="alice", state="D", cmdline=("db", "--password", "pw")),
                # pid 3 was replaced by a new process with the same pid
                sample(3, 0.1, start_time=5000.0, cmdline=()),
                sample(4, 0.0, name="web<1>", rss=None, user=None),
            ),
        )
        return ProcessesModule(module_context(), FixedSource(first, second))

    async def primed(self) -> ProcessesModule:
        module = self.module()
        await module.primed
        return module

    async def test_exact_report(self) -> None:
        module = await self.primed()
        report = await collect_report(module)
        expected = Report(
            title="Processes",
            tables=(
                Table(
                    "Processes",
                    COLUMNS,
                    [
                        (link(1), "p1", "S", "root", "root", 4096, 25.0, 1, 1001.0, "/bin/p1"),
                        (
                            link(2),
                            "p2",
                            # In D for two seconds: not yet past StuckProcessSeconds.
                            "D",
                            "alice",
                            "root",
                            8192,
                            50.0,
                            1,
                            1002.0,
                            "db --password ***",
                        ),
                        (link(3), "p3", "S", "root", "root", 12288, None, 1, 5000.0, "[p3]"),
                        (link(4), "web<1>", "S", None, "root", None, None, 1, 1004.0, "/bin/p4"),
                    ],
                ),
            ),
            notes=(
                "4 of 4 processes, sorted by pid (ascending). CPU % is measured since the "
                "previous sample (100 % = one CPU); secrets in command lines are masked. "
                "A PID leads to that process's page.",
            ),
        )
        self.assertEqual(report, expected)

    async def test_long_uninterruptible_sleep_is_marked(self) -> None:
        stuck = sample(7, 0.0, state="D")
        source = FixedSource(ProcessSnapshot(0.0, (stuck,)), ProcessSnapshot(61.0, (stuck,)))
        module = ProcessesModule(module_context(), source)
        await module.primed
        report = await collect_report(module)
        state = report.tables[0].rows[0][2]
        assert isinstance(state, Mark), state
        self.assertEqual(state.value, "D")
        self.assertIn("61 s", state.why)
        # The landing page lists it too.
        [stuck_table] = [t for t in module.glance() if "state D" in t.title]
        self.assertEqual(cell_value(stuck_table.rows[0][0]), 7)

    async def pids(self, **params: str) -> list[object]:
        module = await self.primed()
        report = await collect_report(module, Query(tuple(params.items())))
        return [cell_value(row[0]) for row in report.tables[0].rows]

    async def test_sort_and_order(self) -> None:
        self.assertEqual(await self.pids(sort="cpu"), [2, 1, 3, 4])  # desc by default, None last
        self.assertEqual(await self.pids(sort="cpu", order="asc"), [1, 2, 3, 4])
        self.assertEqual(await self.pids(sort="rss"), [3, 2, 1, 4])
        self.assertEqual(await self.pids(sort="name", order="desc"), [4, 3, 2, 1])
        self.assertEqual(await self.pids(sort="start", order="desc"), [3, 4, 2, 1])
        self.assertEqual(await self.pids(sort="user"), [2, 1, 3, 4])

    async def test_filters_and_limit(self) -> None:
        self.assertEqual(await self.pids(user="alice"), [2])
        self.assertEqual(await self.pids(name="WEB"), [4])
        self.assertEqual(await self.pids(sort="pid", order="desc", limit="2"), [4, 3])
        self.assertEqual(await self.pids(user="nobody-at-all"), [])

    def test_bad_queries(self) -> None:
        module = self.module()
        for params, allowed in [
            ({"sort": "colour"}, "pid, name, state, user, group, rss, cpu, threads, start"),
            ({"order": "up"}, "asc or desc"),
            ({"limit": "0"}, "whole number of at least 1"),
            ({"limit": "-3"}, "whole number of at least 1"),
            ({"limit": "ten"}, "whole number of at least 1"),
            ({"limit": "\u0663"}, "whole number of at least 1"),  # Arabic-Indic three
        ]:
            with self.subTest(params=params):
                error = self.assertRaises(
                    InvalidQuery, module.collect, Query(tuple(params.items()))
                )
                self.assertIn(allowed, str(error))

    async def test_sort_keys_are_the_columns(self) -> None:
        report = await collect_report(await self.primed())
        keys = [c.sort_key for c in report.tables[0].column_list if c.sort_key]
        self.assertEqual(
            keys, ["pid", "name", "state", "user", "group", "rss", "cpu", "threads", "start"]
        )


class SharedScanTests(TestCase):
    async def test_concurrent_requests_share_one_scan(self) -> None:
        calls = []
        gate: Deferred[None] = Deferred()

        def run_blocking(f, *args, **kwargs):
            calls.append(f)
            if gate.called:
                return maybeDeferred(f, *args, **kwargs)
            waiting: Deferred[None] = Deferred()
            gate.addCallback(waiting.callback)
            return waiting.addCallback(lambda _: f(*args, **kwargs))

        context = replace(module_context(), run_blocking=run_blocking)  # type: ignore[arg-type]
        module = ProcessesModule(context, FixedSource(ProcessSnapshot(1.0, (sample(1, 0.0),))))
        first = module.collect(Query())
        second = module.collect(Query())
        first.cancel()  # one caller giving up does not stop the other's answer
        self.failureResultOf(first)
        self.assertEqual(len(calls), 1)  # the build's first sample; both requests joined it
        gate.callback(None)
        report = self.successResultOf(second)
        assert isinstance(report, Report)
        self.assertEqual(report.tables[0].rows[0][0], link(1))


class SamplerRestTests(TestCase):
    """The sampler behind the landing page scans every 5 s while pages are looked at."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.scans: list[float] = []

        def source() -> ProcessSnapshot:
            self.scans.append(self.clock.seconds())
            return ProcessSnapshot(self.clock.seconds(), (sample(1, self.clock.seconds()),))

        context = replace(
            module_context(),
            reactor=self.clock,
            run_blocking=maybeDeferred,  # type: ignore[arg-type]
        )
        self.module = ProcessesModule(context, source)
        self.module.startService()
        self.addCleanup(self.module.stopService)

    def scans_over(self, seconds: float) -> int:
        before = len(self.scans)
        for _ in range(round(seconds / SAMPLE_INTERVAL)):
            self.clock.advance(SAMPLE_INTERVAL)
        return len(self.scans) - before

    def test_unwatched_it_rests(self) -> None:
        self.assertEqual(self.scans, [0.0])  # the first sample, at the start
        self.assertEqual(self.scans_over(SAMPLE_INTERVAL), 1)  # CPU % from the start on
        self.assertEqual(self.scans_over(10 * RESTING_INTERVAL), 10)

    def test_the_landing_page_wakes_it_until_no_one_looks(self) -> None:
        self.scans_over(3 * RESTING_INTERVAL)
        self.module.glance()
        self.assertEqual(self.scans_over(WATCHED_FOR), WATCHED_FOR / SAMPLE_INTERVAL)
        self.assertEqual(self.scans_over(10 * RESTING_INTERVAL), 10)

    def test_a_process_page_wakes_it_too(self) -> None:
        self.scans_over(3 * RESTING_INTERVAL)
        self.successResultOf(self.module.collect(Query()))
        self.assertEqual(self.scans, [0.0, 5.0, 65.0, 125.0, 180.0])  # the last the page's
        self.assertEqual(self.scans_over(6 * SAMPLE_INTERVAL), 6)


class LiveTests(TestCase):
    """Ground truth: processes this test starts, and ps."""

    def start(self, argv: list[str]) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(argv)
        self.addCleanup(child.wait)
        self.addCleanup(child.kill)
        return child

    async def rows_for(self, pid: int, module: ProcessesModule) -> list[tuple[object, ...]]:
        report = await collect_report(module)
        return [tuple(r) for r in report.tables[0].rows if cell_value(r[0]) == pid]

    async def wait_until_sleeping(self, pid: int) -> None:
        # A just-started child is briefly R (or still the shell before exec); wait for S.
        for _ in range(200):
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = parse_stat(f.read())
            if stat.state == "S" and stat.name == "sleep":
                return
            time.sleep(0.01)

    async def test_child_appears(self) -> None:
        child = self.start(["sleep", "60"])
        await self.wait_until_sleeping(child.pid)
        module = ProcessesModule(module_context())
        [row] = await self.rows_for(child.pid, module)
        pid, name, state, user, _group, rss, _cpu, threads, started, command = row
        self.assertEqual((pid, name, state), (link(child.pid), "sleep", "S"))
        self.assertEqual(user, pwd.getpwuid(os.geteuid()).pw_name)
        self.assertEqual(threads, 1)
        self.assertEqual(command, "sleep 60")
        self.assertIsInstance(rss, int)
        assert isinstance(started, float)
        self.assertLess(abs(started - time.time()), 60)

    async def test_hostile_name_is_data(self) -> None:
        bash = require_tool("bash")
        child = self.start([bash, "-c", f'exec -a "{HOSTILE}" sleep 30'])
        await self.wait_until_sleeping(child.pid)
        module = ProcessesModule(module_context())
        [row] = await self.rows_for(child.pid, module)
        self.assertEqual(row[9], f"{HOSTILE} 30")

    async def test_same_as_ps(self) -> None:
        ps = require_tool("ps")
        child = self.start(["sleep", "60"])
        await self.wait_until_sleeping(child.pid)
        out = subprocess.run(
            [ps, "-o", "pid=,user=,group=,rss=,nlwp=", "-p", str(os.getpid()), str(child.pid)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        snapshot = ProcfsProcessSource()()
        by_pid = {s.pid: s for s in snapshot.processes}
        for line in out.splitlines():
            pid, user, group, rss_kib, threads = line.split()
            s = by_pid[int(pid)]
            self.assertEqual((s.user, s.group), (user, group))
            if int(pid) == child.pid:  # our own RSS and threads move between two looks
                self.assertEqual(s.rss, int(rss_kib) * 1024)
                self.assertEqual(s.threads, int(threads))

    async def test_busy_child_has_cpu(self) -> None:
        python = shutil.which("python3") or require_tool("python3")
        child = self.start([python, "-c", "while True: pass"])
        module = ProcessesModule(module_context())
        await module.primed
        # Let the child run for a measurable while, without competing with it for a CPU.
        await deferLater(reactor, 1.0)
        [row] = await self.rows_for(child.pid, module)
        cpu = row[6]
        assert isinstance(cpu, float)
        # A spinning process gets far more than 1 % of a CPU over a second, even on a
        # shared, loaded machine; an idle one (or a life-long average mistaken for a
        # sample) of a fresh process would not be the point: the sample must be non-zero.
        self.assertGreater(cpu, 1.0)
