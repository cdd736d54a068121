"""Golden pages: each module fed fixed data renders exactly the stored HTML and JSON.

The modules get their data through their seams (a source callable), the renderer a
fixed host name and clock, and the process a fixed time zone, so nothing of the live
machine reaches the output. `UPDATE_GOLDEN=1` rewrites the files on purpose; review the
diff before committing it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from twisted.logger import Logger
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.contexts import collect_report, module_context, run_in_thread
from tests.support import check_golden
from twistedspy.context import ModuleContext
from twistedspy.interfaces import IInfoModule
from twistedspy.modules.diskfree import DiskfreeModule
from twistedspy.modules.index import IndexModule
from twistedspy.modules.meminfo import MeminfoModule
from twistedspy.modules.network import NetworkModule, NetworkSample
from twistedspy.modules.processes import ProcessesModule
from twistedspy.modules.version import SystemFacts, VersionModule, expand_issue
from twistedspy.procfs.meminfo import parse_meminfo
from twistedspy.procfs.mounts import parse_mounts
from twistedspy.procfs.netdev import parse_net_dev
from twistedspy.procfs.processes import ProcessSample, ProcessSnapshot
from twistedspy.query import Query
from twistedspy.render import Renderer
from twistedspy.report import NavItem, Page, PageContext, Report
from twistedspy.settings import Settings

GOLDEN = Path(__file__).parent / "golden"
HOST = "golden.example"
#: 2023-11-14 22:13:20 UTC
NOW = 1_700_000_000.0
HOSTILE = "<img src=x onerror=alert(1)>"
#: a valid Linux interface name (no '/', ':' or white space, at most 15 bytes)
HOSTILE_INTERFACE = "<script>\"'&"

MODULES = (IndexModule, ProcessesModule, MeminfoModule, DiskfreeModule, NetworkModule)
NAV = (
    NavItem("index", "Index"),
    NavItem("version", "Version"),
    NavItem("processes", "Processes"),
    NavItem("meminfo", "Memory"),
    NavItem("diskfree", "Disk space"),
    NavItem("network", "Network"),
)


def process(pid: int, name: str, cpu: float, **fields: object) -> ProcessSample:
    values: dict[str, object] = {
        "pid": pid,
        "name": name,
        "state": "S",
        "user": "root",
        "group": "root",
        "rss": pid * 1024 * 1024,
        "cpu_seconds": cpu,
        "threads": 1,
        "start_time": NOW - 86_400 + pid,
        "cmdline": (f"/usr/bin/{name}",),
    }
    values.update(fields)
    return ProcessSample(**values)  # type: ignore[arg-type]


def process_snapshots() -> list[ProcessSnapshot]:
    common = [
        process(1, "systemd", 5.0, cmdline=("/sbin/init", "splash")),
        process(2, "kthreadd", 0.0, rss=0, cmdline=()),
        process(
            812,
            "postgres",
            40.0,
            state="D",
            user="postgres",
            group="postgres",
            threads=3,
            cmdline=("postgres: checkpointer",),
        ),
        process(1234, HOSTILE, 0.0, user="mallory", group="users", cmdline=(HOSTILE, "30")),
        process(4004, "secretive", 1.0, cmdline=None, user=None, group=None, rss=None),
        process(3003, "defunct", 0.1, state="Z", user="alice", group="alice", cmdline=()),
    ]
    busy_before = process(2001, "python3", 1.0, user="alice", group="alice", threads=4)
    busy_after = process(
        2001,
        "python3",
        2.5,
        state="R",
        user="alice",
        group="alice",
        threads=4,
        cmdline=("python3", "app.py", "--password=hunter2", "--db", "postgres://app:s3cret@db/x"),
    )
    gone = process(5005, "short-lived", 0.0)
    newcomer = process(6006, "newcomer", 0.3, start_time=NOW - 1)
    earlier_init = process(1, "systemd", 4.98, cmdline=("/sbin/init", "splash"))
    return [
        ProcessSnapshot(100.0, (earlier_init, *common[1:], busy_before, gone)),
        ProcessSnapshot(102.0, (*common, busy_after, newcomer)),
    ]


MEMINFO = """\
MemTotal:        8048576 kB
MemFree:          512000 kB
MemAvailable:    4024288 kB
Buffers:          204800 kB
Cached:          2048000 kB
SwapCached:        10240 kB
Shmem:            102400 kB
SReclaimable:     128000 kB
SwapTotal:       2097148 kB
SwapFree:        1572860 kB
HugePages_Total:       0
"""

MOUNTS = """\
/dev/sda1 / ext4 rw,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /run tmpfs rw,nosuid,nodev,size=812344k,mode=755 0 0
/dev/sdb1 /srv/full xfs rw,relatime 0 0
/dev/sdc1 /mnt/<b>x\\040y ext4 rw,relatime 0 0
/dev/sda1 /var/lib/docker ext4 rw,relatime 0 0
"""

STATVFS = {
    # bsize, frsize, blocks, bfree, bavail, files, ffree, favail, flag, namemax
    "/": (4096, 4096, 25_000_000, 10_000_000, 8_700_000, 6_400_000, 5_000_000, 5_000_000, 0, 255),
    "/proc": (4096, 4096, 0, 0, 0, 0, 0, 0, 0, 255),
    "/run": (4096, 4096, 203_086, 202_000, 202_000, 1_015_430, 1_014_000, 1_014_000, 0, 255),
    "/srv/full": (4096, 4096, 1_000_000, 60_000, 50_000, 0, 0, 0, 0, 255),
    "/mnt/<b>x y": (1024, 1024, 500_000, 400_000, 375_000, 128_000, 127_000, 127_000, 0, 255),
    "/var/lib/docker": (4096, 4096, 25_000_000, 10_000_000, 8_700_000, 6_400_000, 5_000_000,
                        5_000_000, 0, 255),
}  # fmt: skip


def net_dev(rx_scale: int) -> str:
    heading = (
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|"
        "bytes    packets errs drop fifo colls carrier compressed\n"
    )
    lines = [
        f"    lo: {3193 * rx_scale} 29 0 0 0 0 0 0 {3193 * rx_scale} 29 0 0 0 0 0 0",
        f"  eth0: {220416488 + 51200 * rx_scale} 4320 0 0 0 0 0 0 226064 2561 0 0 0 0 0 0",
        f"{HOSTILE_INTERFACE}: 1234567890123 10 1 2 0 0 0 0 500 5 3 4 0 7 0 0",
    ]
    return heading + "\n".join(lines) + "\n"


@implementer(IInfoModule)
class Listed:
    """A module as the index lists it: name, title and description only."""

    def __init__(self, name: str, title: str, description: str) -> None:
        self.name, self.title, self.description = name, title, description

    def collect(self, query: Query) -> Page:
        raise NotImplementedError


def listed() -> Sequence[IInfoModule]:
    real = [Listed(m.name, m.title, m.description) for m in MODULES]
    return [*real[:1], Listed("version", "Version", "The operating system and more."), *real[1:]]


def use_utc(case: TestCase) -> None:
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()

    def restore() -> None:
        if previous is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = previous
        time.tzset()

    case.addCleanup(restore)


def check_page(
    case: TestCase, name: str, module: str, report: Report, query: Query | None = None
) -> tuple[str, str]:
    """Render `report` as HTML and JSON, check both against their golden files (in UTC),
    and give them back for further looks."""
    use_utc(case)
    renderer = Renderer(HOST)
    context = PageContext(HOST, NAV, NOW)
    html = renderer.html(module, report, query or Query(), context).body
    document = renderer.json(module, report, context).body
    for path, body in ((GOLDEN / f"{name}.html", html), (GOLDEN / f"{name}.json", document)):
        check_golden(case, path, body)
    return html.decode(), document.decode()


class GoldenTests(TestCase):
    def check(self, name: str, module: str, report: Report, query: Query | None = None) -> None:
        check_page(self, name, module, report, query)

    async def processes_report(self, query: Query) -> Report:
        snapshots = process_snapshots()
        # StuckProcessSeconds = 2: the postgres in D for the two seconds between the
        # snapshots is past it, so the page shows a configured threshold's mark.
        settings = Settings(stuck_process_seconds=2)
        module = ProcessesModule(module_context(settings), lambda: snapshots.pop(0))
        await module.primed
        return await collect_report(module, query)

    async def test_processes(self) -> None:
        report = await self.processes_report(Query())
        self.check("processes", "processes", report)
        html = (GOLDEN / "processes.html").read_text()
        # Hostile names are text: escaped in HTML, verbatim in JSON; secrets are masked.
        self.assertIn("&lt;img src=x onerror=alert(1)&gt;", html)
        self.assertNotIn("<img", html)
        self.assertNotIn("hunter2", html)
        self.assertNotIn("s3cret", html)
        self.assertIn('<td class="text mark" title="uninterruptible sleep', html)
        rows = json.loads((GOLDEN / "processes.json").read_text())["tables"][0]["rows"]
        self.assertIn(HOSTILE, [row[1] for row in rows])

    async def test_processes_sorted_and_limited(self) -> None:
        query = Query((("sort", "cpu"), ("order", "desc"), ("limit", "3")))
        report = await self.processes_report(query)
        self.check("processes-by-cpu", "processes", report, query)
        html = (GOLDEN / "processes-by-cpu.html").read_text()
        # The heading of the current sort links to the other order.
        self.assertIn('href="?limit=3&amp;sort=cpu&amp;order=asc">CPU ▼</a>', html)

    async def test_meminfo(self) -> None:
        module = MeminfoModule(module_context(), lambda: parse_meminfo(MEMINFO))
        report = await collect_report(module)
        self.check("meminfo", "meminfo", report)
        self.assertIn('title="swap in use', (GOLDEN / "meminfo.html").read_text())

    async def test_diskfree(self) -> None:
        module = DiskfreeModule(
            module_context(),
            mounts=lambda: parse_mounts(MOUNTS),
            statvfs=lambda path: os.statvfs_result(STATVFS[path]),
        )
        report = await collect_report(module)
        self.check("diskfree", "diskfree", report)
        html = (GOLDEN / "diskfree.html").read_text()
        self.assertIn("/mnt/&lt;b&gt;x y", html)
        self.assertIn('title="at least 90 % full"', html)

    async def test_diskfree_all(self) -> None:
        module = DiskfreeModule(
            module_context(),
            mounts=lambda: parse_mounts(MOUNTS),
            statvfs=lambda path: os.statvfs_result(STATVFS[path]),
        )
        query = Query((("all", "1"),))
        self.check("diskfree-all", "diskfree", await collect_report(module, query), query)

    async def test_network(self) -> None:
        samples = [
            NetworkSample(100.0, tuple(parse_net_dev(net_dev(1)))),
            NetworkSample(102.5, tuple(parse_net_dev(net_dev(2)))),
        ]
        module = NetworkModule(module_context(), lambda: samples.pop(0))
        await module.primed
        report = await collect_report(module)
        self.check("network", "network", report)
        html = (GOLDEN / "network.html").read_text()
        self.assertIn("&lt;script&gt;&#34;&#39;&amp;", html)
        self.assertNotIn("<script>\"'", html)
        rows = json.loads((GOLDEN / "network.json").read_text())["tables"][0]["rows"]
        self.assertIn(HOSTILE_INTERFACE, [row[0] for row in rows])

    async def test_version(self) -> None:
        uname = os.uname_result(
            (
                "Linux",
                "golden",
                "6.1.0-13-amd64",
                "#1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1",
                "x86_64",
            )
        )
        facts = SystemFacts(
            issue=expand_issue("Debian GNU/Linux 12 \\n \\l\n\n", uname, NOW),
            os_release={
                "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)",
                "NAME": "Debian GNU/Linux",
                "VERSION_ID": "12",
                "ID": "debian",
            },
            uname=uname,
            boot_time=NOW - 90_061,
            now=NOW,
            software=(
                ("twistedspy", "0.1"),
                ("Twisted", "26.10.0"),
                ("Python", "3.11.2"),
                ("Python implementation", "CPython linux"),
            ),
        )
        module = VersionModule(module_context(), lambda: facts)
        report = await collect_report(module)
        self.check("version", "version", report)
        html = (GOLDEN / "version.html").read_text()
        self.assertIn("Debian GNU/Linux 12 golden<", html)
        self.assertIn("1d 01:01:01", html)

    async def test_index(self) -> None:
        context = ModuleContext(
            settings=Settings(),
            reactor=module_context().reactor,
            run_blocking=run_in_thread,
            served=listed,
            log=Logger(),
        )
        report = await collect_report(IndexModule(context))
        self.check("index", "index", report)
