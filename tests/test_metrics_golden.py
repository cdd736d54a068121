"""The whole /metrics exposition for the fixture tree (tests/fixtures/proc, taken from a
real machine and anonymised), with a fixed clock and host, byte for byte.

`UPDATE_GOLDEN=1` rewrites tests/golden/metrics.prom on purpose; review the diff before
committing it. When Prometheus' `promtool` is installed, the file must also pass its
`check metrics` lint.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from tests.support import FIXTURES, NODE_EXPORTER_LINT, PROC, SYS, check_golden, require_tool
from twistedspy import collectors
from twistedspy.context import ModuleContext
from twistedspy.http.stats import RequestStats
from twistedspy.interfaces import IInfoModule
from twistedspy.modules.cpu import CpuModule, read_cpu_sample
from twistedspy.modules.diskfree import DiskfreeModule
from twistedspy.modules.diskio import DiskioModule, read_disk_sample
from twistedspy.modules.index import IndexModule
from twistedspy.modules.meminfo import MeminfoModule
from twistedspy.modules.metrics import MetricsModule
from twistedspy.modules.network import NetworkModule, read_network_sample
from twistedspy.modules.pressure import PressureModule, read_pressure_sample
from twistedspy.modules.processes import ProcessesModule
from twistedspy.modules.sockets import SocketsModule
from twistedspy.modules.version import Identity, VersionModule, parse_os_release
from twistedspy.procfs.diskstats import read_udev_disk
from twistedspy.procfs.kernel import read_domainname
from twistedspy.procfs.meminfo import read_meminfo
from twistedspy.procfs.mounts import read_mounts
from twistedspy.procfs.netclass import read_netclass
from twistedspy.procfs.processes import ProcfsProcessSource
from twistedspy.procfs.timex import Timex, discipline
from twistedspy.procfs.vmstat import read_vmstat
from twistedspy.query import Query
from twistedspy.report import RawBody
from twistedspy.settings import Settings
from twistedspy.sources import ClockSource, KernelSource, OwnProcessSource

UDEV = str(FIXTURES / "run" / "udev" / "data")
GOLDEN = Path(__file__).parent / "golden" / "metrics.prom"
#: 2023-11-14 22:13:20 UTC, as in test_golden.py
NOW = 1_700_000_000.0
UNAME = os.uname_result(
    ("Linux", "golden.example", "6.1.0-golden", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.0", "x86_64")
)
#: statvfs(3) of the two disks the fixture's mounts export: bsize, frsize, blocks, bfree,
#: bavail, files, ffree, favail, flag, namemax (the first from the same machine)
STATVFS = {
    "/": os.statvfs_result(
        (4096, 4096, 66053021, 59417618, 19962325, 16777216, 16286898, 16286898, 4096, 255)
    ),
    "/srv/my data": os.statvfs_result(
        (4096, 4096, 262144, 131072, 117964, 65536, 65000, 65000, os.ST_RDONLY, 255)
    ),
}

P = ParamSpec("P")
T = TypeVar("T")


#: adjtimex(2)'s answer on a machine whose clock NTP keeps: synchronised, 1.5 µs off,
#: running 12.5 ppm fast, TAI 37 s ahead
DISCIPLINE = discipline(
    0,
    Timex(offset=1500, freq=12 * 65536 + 32768, maxerror=40000, esterror=1000, status=0x2001,
          constant=7, tick=10000, tai=37),
)  # fmt: skip


def at_once(f: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
    """A run_blocking that runs the work now: the fixture tree cannot block."""
    return succeed(f(*args, **kwargs))


def fixture_identity() -> Identity:
    os_release = parse_os_release((FIXTURES / "etc" / "os-release").read_text())
    return Identity(UNAME, read_domainname(PROC), os_release)


def fixture_server(clock: Clock) -> tuple[MetricsModule, RequestStats]:
    """The metrics module serving every built-in module, each reading the fixture tree."""
    served: list[IInfoModule] = []
    context = ModuleContext(
        settings=Settings(),
        reactor=clock,
        run_blocking=at_once,
        served=lambda: served,
        log=Logger(),
    )
    sources = (
        ClockSource(clock.seconds, lambda: DISCIPLINE, SYS),
        KernelSource(PROC),
        OwnProcessSource(PROC),
    )
    metrics = MetricsModule(context, timer=lambda: 0.0, sources=sources)
    served += [
        IndexModule(context),
        CpuModule(context, lambda: read_cpu_sample(PROC), PROC, SYS),
        DiskfreeModule(context, lambda: read_mounts(PROC), STATVFS.__getitem__),
        DiskioModule(
            context,
            lambda: read_disk_sample(PROC),
            lambda major, minor: read_udev_disk(major, minor, UDEV),
        ),
        PressureModule(context, lambda: read_pressure_sample(PROC)),
        SocketsModule(context, PROC),
        MeminfoModule(context, lambda: read_meminfo(PROC), lambda: read_vmstat(PROC)),
        NetworkModule(
            context,
            lambda: read_network_sample(PROC),
            netclass=lambda: read_netclass(SYS),
            proc=PROC,
        ),
        # owners from status files: the fixture files' own owner is whoever checked them out
        ProcessesModule(context, proc=PROC, totals=ProcfsProcessSource(PROC, cmdline=False)),
        VersionModule(context, lambda: NotImplemented, fixture_identity),
        metrics,
    ]
    requests = RequestStats(lambda: {m.name for m in served})
    metrics.add_source(requests)
    return metrics, requests


class GoldenMetricsTests(TestCase):
    async def exposition(self) -> bytes:
        clock = Clock()
        clock.advance(NOW)
        # prometheus_client stamps each new series' `_created` with time.time()
        self.patch(time, "time", lambda: NOW)
        self.patch(time, "localtime", time.gmtime)  # node_time_zone_offset_seconds: UTC
        self.patch(collectors, "perf_counter", lambda: 0.0)
        metrics, requests = fixture_server(clock)
        for path, status, seconds in (("/processes", 200, 0.02), ("/nope", 404, 0.0004)):
            requests.observe(path, status, seconds)
        page = await metrics.collect(Query())
        assert isinstance(page, RawBody)
        return page.content

    async def test_exposition_is_golden(self) -> None:
        check_golden(self, GOLDEN, await self.exposition())

    def test_promtool_finds_nothing_wrong(self) -> None:
        promtool = require_tool("promtool")  # Debian's prometheus package
        checked = subprocess.run(
            [promtool, "check", "metrics"],
            input=GOLDEN.read_bytes(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        findings = [
            line
            for line in (checked.stdout + checked.stderr).decode().splitlines()
            if not NODE_EXPORTER_LINT.fullmatch(line)
        ]
        self.assertEqual(findings, [])
        self.assertIn(checked.returncode, (0, 3))  # 3: lint findings only, no errors
