"""Tests for the metrics module: node_exporter's names, ground truth, selection, failures."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.contexts import module_context
from tests.servers import start_server
from tests.support import FIXTURES
from twistedspy.context import ModuleContext
from twistedspy.http.stats import LATENCY_BUCKETS, RequestStats
from twistedspy.interfaces import IInfoModule, IMetricsSource
from twistedspy.modules import metrics
from twistedspy.modules.cpu import CpuModule
from twistedspy.modules.diskfree import DiskfreeModule, exported_mounts
from twistedspy.modules.meminfo import MeminfoModule, meminfo_families
from twistedspy.modules.metrics import CONTENT_TYPE, Exposition, MetricsModule, exposition
from twistedspy.modules.network import NetworkModule
from twistedspy.modules.processes import ProcessesModule, process_families
from twistedspy.modules.version import VersionModule, read_identity, read_system
from twistedspy.procfs.meminfo import parse_meminfo
from twistedspy.procfs.mounts import Mount, read_mounts
from twistedspy.procfs.processes import ProcessSample, ProcessSnapshot
from twistedspy.query import Query
from twistedspy.report import InvalidQuery, RawBody, Report

WRITING_MODULES = Path(__file__).parent.parent / "docs" / "writing-modules.md"
HOSTILE = 'a"b\\c\n{x="y"} # HELP'

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, by name and sorted labels."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[s.name, tuple(sorted(s.labels.items()))] = s.value
    return found


def by_name(found: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (n, labels), value in found.items() if n == name}


async def scrape(module: MetricsModule, query: Query | None = None) -> str:
    page = await module.collect(query or Query())
    assert isinstance(page, RawBody)
    assert page.content_type == CONTENT_TYPE
    return page.content.decode("utf-8")


def context_serving(served: Sequence[IInfoModule]) -> ModuleContext:
    return replace(module_context(), served=lambda: served)


def serving_all() -> MetricsModule:
    """A metrics module serving every built-in module that has families, on this machine."""
    served: list[IInfoModule] = []
    context = context_serving(served)
    metrics = MetricsModule(context)
    served += [
        CpuModule(context),
        DiskfreeModule(context),
        MeminfoModule(context),
        NetworkModule(context),
        ProcessesModule(context),
        VersionModule(context, read_system),
        metrics,
    ]
    return metrics


@implementer(IInfoModule, IMetricsSource)
class Failing:
    """A served module whose families cannot be read."""

    title = description = "failing"

    def __init__(self, name: str) -> None:
        self.name = name

    def collect(self, query: Query) -> Report:
        return Report(self.name)

    def metrics(self) -> Deferred[list[Metric]]:
        return fail(OSError(f"no /proc for {self.name}"))


class FamiliesTests(TestCase):
    def test_meminfo_names_as_node_exporter(self) -> None:
        meminfo = parse_meminfo((FIXTURES / "meminfo.txt").read_text())
        text = exposition(meminfo_families(meminfo)).decode()
        found = samples(text)
        self.assertEqual(found["node_memory_MemTotal_bytes", ()], 4005164 * 1024)
        self.assertEqual(found["node_memory_Active_anon_bytes", ()], 1596 * 1024)
        self.assertEqual(found["node_memory_Inactive_file_bytes", ()], 795368 * 1024)
        self.assertEqual(found["node_memory_HugePages_Total", ()], 0)
        self.assertEqual(found["node_memory_Hugepagesize_bytes", ()], 2048 * 1024)
        self.assertEqual(len(found), 8)

    def test_hostile_user_names_are_escaped(self) -> None:
        def process(pid: int, user: str, state: str) -> ProcessSample:
            return ProcessSample(pid, HOSTILE, state, user, None, 4096, 1.5, 1, 0.0, (HOSTILE,))

        snapshot = ProcessSnapshot(
            0.0, (process(1, HOSTILE, "S"), process(2, HOSTILE, "R"), process(3, "root", "S"))
        )
        text = exposition(process_families(snapshot)).decode()
        found = samples(text)
        self.assertEqual(found["twistedspy_user_processes", (("user", HOSTILE),)], 2)
        self.assertEqual(
            found["twistedspy_user_processes_resident_memory_bytes", (("user", HOSTILE),)], 8192
        )
        self.assertEqual(found["twistedspy_processes", (("state", "S"),)], 2)
        self.assertEqual(found["twistedspy_processes_cpu_seconds", (("state", "S"),)], 3.0)
        # no series of any single process: the name appears nowhere but in a user label
        self.assertNotIn("pid", text)
        self.assertEqual(text.count('a\\"b\\\\c\\n{x=\\"y\\"} # HELP'), 3)

    def test_exported_mounts(self) -> None:
        mounts = [
            Mount("/dev/sda1", "/", "ext4"),
            Mount("proc", "/proc", "proc"),
            Mount("tmpfs", "/dev/shm", "tmpfs"),
            Mount("/dev/sdb1", "/data", "ext4"),
            Mount("/dev/sdc1", "/data", "xfs"),  # mounted over: the last one shows
        ]
        self.assertEqual(
            exported_mounts(mounts),
            [Mount("/dev/sda1", "/", "ext4"), Mount("/dev/sdc1", "/data", "xfs")],
        )


def gauges(value: float, help_text: str = "A gauge.") -> list[Metric]:
    labelled = GaugeMetricFamily("labelled", "Labelled.", labels=["who"])
    labelled.add_metric([HOSTILE], value)
    labelled.add_metric(["b"], 2)
    return [
        GaugeMetricFamily("plain", help_text, value),
        labelled,
        CounterMetricFamily("counted", "Counted.", 7),
    ]


class ExpositionTests(TestCase):
    """The kept text of unchanged families is what prometheus_client would write now."""

    def test_each_scrape_is_written_as_new(self) -> None:
        written = Exposition()
        for families in (
            gauges(1.0),
            gauges(1.0),
            gauges(2.0),
            gauges(2.0, "Other help."),
            gauges(-0.0),
            gauges(0.0),
            gauges(float("nan")),
            gauges(float("nan")),
            gauges(1.0)[1:],
            gauges(3),
        ):
            self.assertEqual(written(families), exposition(families))

    def test_each_series_is_written_by_prometheus_client_once(self) -> None:
        written = Exposition()
        calls: list[list[str]] = []

        def counting(families: Sequence[Metric]) -> bytes:
            calls.append([f.name for f in families])
            return exposition(families)

        self.patch(metrics, "exposition", counting)
        first = gauges(1.0)
        self.assertEqual(written(first), exposition(first))
        heads_and_series = len(first) + sum(len(f.samples) for f in first)
        self.assertEqual(len(calls), heads_and_series)
        calls.clear()
        later = gauges(5.0)
        self.assertEqual(written(later), exposition(later))
        self.assertEqual(calls, [])
        hostile = GaugeMetricFamily("labelled", "Labelled.", labels=["name"])
        hostile.add_metric(['a"b\\c\nd'], 1.0)
        self.assertEqual(written([hostile]), exposition([hostile]))
        self.assertIn(b'name="a\\"b\\\\c\\nd"', written([hostile]))

    def test_a_family_with_timestamps_or_created_is_written_whole(self) -> None:
        stamped = GaugeMetricFamily("stamped", "Stamped.", labels=["a"])
        stamped.add_metric(["x"], 1.0, timestamp=1700000000.5)
        created = CounterMetricFamily("made", "Made.", labels=["a"], created=1700000000.0)
        created.add_metric(["x"], 2.0, created=1700000000.0)
        written = Exposition()
        for _ in range(2):
            self.assertEqual(written([stamped, created]), exposition([stamped, created]))

    def test_a_timestamp_is_written_even_for_a_series_seen_without_one(self) -> None:
        def family(timestamp: float | None) -> Metric:
            gauge = GaugeMetricFamily("stamped", "Stamped.", labels=["a"])
            gauge.add_metric(["x"], 1.0, timestamp=timestamp)
            return gauge

        written = Exposition()
        for timestamp in (None, 7.0, None, 8.5, 8.5):
            self.assertEqual(written([family(timestamp)]), exposition([family(timestamp)]))

    def test_a_family_changed_after_it_was_made_is_written_as_it_is(self) -> None:
        """A unit set afterwards, as prometheus_client writes it: not added to the name."""
        gauge = GaugeMetricFamily("later", "Later.", 1.0)
        gauge.unit = "seconds"
        written = Exposition()
        for _ in range(2):
            self.assertEqual(written([gauge]), exposition([gauge]))

    def test_series_gone_are_forgotten(self) -> None:
        written = Exposition()
        for n in range(100):
            family = GaugeMetricFamily("by_user", "By user.", labels=["user"])
            family.add_metric([f"user{n}"], n)
            self.assertEqual(written([family]), exposition([family]))
        self.assertLessEqual(len(written._written["by_user"].series), 2 + 16)

    def test_families_gone_are_forgotten(self) -> None:
        written = Exposition()
        for n in range(10):
            written([GaugeMetricFamily(f"gauge_{n}", "A gauge.", n)])
        self.assertLessEqual(len(written._written), 2)


class GroundTruthTests(TestCase):
    async def test_memory_equals_proc_meminfo(self) -> None:
        found = samples(await scrape(serving_all()))
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
        self.assertEqual(found["node_memory_MemTotal_bytes", ()], total)

    async def test_filesystems_equal_statvfs(self) -> None:
        found = samples(await scrape(serving_all()))
        sizes = by_name(found, "node_filesystem_size_bytes")
        mounts = exported_mounts(read_mounts())
        self.assertTrue(mounts)
        self.assertEqual(len(sizes), len(mounts))
        for m in mounts:
            key = (("device", m.device), ("fstype", m.fs_type), ("mountpoint", m.mount_point))
            st = os.statvfs(m.mount_point)
            frsize = st.f_frsize or st.f_bsize
            self.assertEqual(sizes[key], st.f_blocks * frsize, m)
            self.assertEqual(found["node_filesystem_files", key], st.f_files, m)
            self.assertEqual(found["node_filesystem_device_error", key], 0)

    async def test_network_and_cpu_equal_the_kernel(self) -> None:
        found = samples(await scrape(serving_all()))
        received = by_name(found, "node_network_receive_bytes_total")
        names = [
            line.split(":")[0].strip()
            for line in Path("/proc/net/dev").read_text().splitlines()[2:]
        ]
        self.assertEqual(sorted(dict(k)["device"] for k in received), sorted(names))
        cpus = {dict(k)["cpu"] for k in by_name(found, "node_cpu_seconds_total")}
        stat = Path("/proc/stat").read_text().splitlines()
        self.assertEqual(
            len(cpus), sum(1 for line in stat if line[:3] == "cpu" and line[3] != " ")
        )
        boot = next(int(line.split()[1]) for line in stat if line.startswith("btime"))
        self.assertEqual(found["node_boot_time_seconds", ()], boot)
        uname = os.uname()
        (info,) = by_name(found, "node_uname_info")
        self.assertEqual(dict(info)["release"], uname.release)
        self.assertEqual(dict(info)["nodename"], uname.nodename)


class SelectionTests(TestCase):
    def succeeded(self, text: str) -> list[str]:
        found = by_name(samples(text), "twistedspy_scrape_collector_success")
        return sorted(dict(k)["collector"] for k, v in found.items() if v == 1)

    async def test_every_collector_by_default(self) -> None:
        module = serving_all()
        expected = [
            "cpu", "diskfree", "kernel", "meminfo", "network", "process", "processes",
            "textfile", "time", "version",
        ]  # fmt: skip
        self.assertEqual(list(module.collectors()), expected)
        self.assertEqual(self.succeeded(await scrape(module)), expected)

    def test_every_source_provides_the_interface_whole(self) -> None:
        module = serving_all()
        for name, source in module.collectors().items():
            self.assertTrue(verifyObject(IMetricsSource, source), name)
            self.assertEqual(source.name, name)

    async def test_only_served_modules_contribute(self) -> None:
        """A module left out with `Modules =` leaves its families out of /metrics too."""
        context = module_context()
        module = MetricsModule(replace(context, served=lambda: [MeminfoModule(context)]))
        text = await scrape(module)
        self.assertEqual(
            self.succeeded(text), ["kernel", "meminfo", "process", "textfile", "time"]
        )
        self.assertNotIn("node_cpu_seconds_total", text)

    async def test_collect_and_exclude(self) -> None:
        module = serving_all()
        text = await scrape(module, Query((("collect[]", "meminfo"), ("collect[]", "cpu"))))
        self.assertEqual(self.succeeded(text), ["cpu", "meminfo"])
        self.assertNotIn("node_filesystem", text)
        text = await scrape(module, Query((("exclude[]", "processes"),)))
        self.assertNotIn("twistedspy_processes", text)
        self.assertIn("node_filesystem_size_bytes", text)
        self.assertNotIn("processes", self.succeeded(text))

    def test_unknown_collector_is_a_bad_query(self) -> None:
        module = serving_all()
        for key in ("collect[]", "exclude[]"):
            with self.assertRaises(InvalidQuery) as caught:
                module.collect(Query(((key, "nosuch"),)))
            self.assertIn("nosuch", caught.exception.message)

    async def test_unknown_collector_over_http_is_400(self) -> None:
        server = start_server(self)
        reply = await server.request("GET", "/metrics?collect%5B%5D=nosuch")
        self.assertEqual(reply.status, 400)


class FailureTests(TestCase):
    async def test_a_failing_collector_fails_alone(self) -> None:
        context = module_context()
        served = [Failing("meminfo"), CpuModule(context)]
        found = samples(await scrape(MetricsModule(context_serving(served))))
        self.assertEqual(
            found["twistedspy_scrape_collector_success", (("collector", "meminfo"),)], 0
        )
        self.assertEqual(found["twistedspy_scrape_collector_success", (("collector", "cpu"),)], 1)
        self.assertNotIn(("node_memory_MemTotal_bytes", ()), found)
        self.assertIn(("node_load1", ()), found)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    async def test_a_hung_mount_is_a_device_error_not_a_hung_scrape(self) -> None:
        release = threading.Event()
        self.addCleanup(release.set)
        asked: list[str] = []

        def statvfs(path: str) -> os.statvfs_result:
            asked.append(path)
            if path == "/stuck":
                release.wait(30)
            return os.statvfs("/")

        context = module_context()
        mounts = [Mount("/dev/root", "/", "ext4"), Mount("server:/x", "/stuck", "nfs")]
        disk = DiskfreeModule(context, lambda: mounts, statvfs=statvfs, deadline=0.2)
        module = MetricsModule(context_serving([disk]))
        for _ in range(2):
            found = samples(await scrape(module, Query((("collect[]", "diskfree"),))))
            stuck = (("device", "server:/x"), ("fstype", "nfs"), ("mountpoint", "/stuck"))
            root = (("device", "/dev/root"), ("fstype", "ext4"), ("mountpoint", "/"))
            self.assertEqual(found["node_filesystem_device_error", stuck], 1)
            self.assertEqual(found["node_filesystem_device_error", root], 0)
            self.assertNotIn(("node_filesystem_size_bytes", stuck), found)
            self.assertIn(("node_filesystem_size_bytes", root), found)
            success = found["twistedspy_scrape_collector_success", (("collector", "diskfree"),)]
            self.assertEqual(success, 1)
        # the page and /metrics share one memory of stuck mounts: asked once, not per scrape
        self.assertEqual(asked.count("/stuck"), 1)
        self.assertEqual(disk.stuck, {"/stuck"})
        release.set()


class RequestStatsTests(TestCase):
    def test_module_labels_are_bounded(self) -> None:
        stats = RequestStats(lambda: {"index", "meminfo"})
        self.assertEqual(stats.module_label("/meminfo"), "meminfo")
        self.assertEqual(stats.module_label("/"), "index")
        self.assertEqual(stats.module_label("/random-1234"), "unknown")
        self.assertEqual(stats.module_label("/-/healthy"), "-")
        self.assertEqual(stats.module_label(None), "-")

    def test_each_observation_counts_once_in_its_series(self) -> None:
        stats = RequestStats(lambda: {"index", "meminfo"})
        for seconds in (0.0005, 0.003, 20.0):
            stats.observe("/meminfo", 200, seconds)
        stats.observe("/meminfo", 404, 0.0005)
        stats.observe("/nope", 200, 0.0005)
        found = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for metric in stats.metrics()
            for sample in metric.samples
        }
        requests = "twistedspy_http_requests_total"
        self.assertEqual(found[requests, (("module", "meminfo"), ("status", "200"))], 3)
        self.assertEqual(found[requests, (("module", "meminfo"), ("status", "404"))], 1)
        self.assertEqual(found[requests, (("module", "unknown"), ("status", "200"))], 1)
        bucket = "twistedspy_http_request_duration_seconds_bucket"
        expected = {"0.001": 2, "0.005": 3, "10.0": 3, "+Inf": 4}
        for le, count in expected.items():
            self.assertEqual(found[bucket, (("le", le), ("module", "meminfo"))], count, le)
        latency = "twistedspy_http_request_duration_seconds_sum"
        self.assertAlmostEqual(found[latency, (("module", "meminfo"),)], 20.004)

    def test_families_are_prometheus_clients_own(self) -> None:
        # The counts are kept without prometheus_client's locks; what a scrape sees must
        # be exactly what its Counter and Histogram give for the same observations.
        observations = [
            ("/meminfo", 200, 0.0004),
            ("/meminfo", 200, 0.001),
            ("/nope", 404, 0.0025),
            ("/-/healthy", 200, 7.0),
            ("/meminfo", 304, 11.0),
            (None, 400, 0.0),
            ("/", 200, 0.3),
        ]
        self.patch(time, "time", lambda: 1_700_000_000.0)
        stats = RequestStats(lambda: {"index", "meminfo"})
        registry = CollectorRegistry(auto_describe=True)
        counter = Counter(
            "twistedspy_http_requests",
            "Requests answered by twistedspy, by module and status code.",
            ["module", "status"],
            registry=registry,
        )
        histogram = Histogram(
            "twistedspy_http_request_duration_seconds",
            "Seconds from a whole request received to its response written, by module.",
            ["module"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        stalls = Counter(
            "twistedspy_reactor_stalls",
            "Times the reactor was blocked for over 250 ms (journal event reactor-stall).",
            registry=registry,
        )
        for path, status, seconds in observations:
            stats.observe(path, status, seconds)
            module = stats.module_label(path)
            counter.labels(module, str(status)).inc()
            histogram.labels(module).observe(seconds)
        stats.count_stall()
        stalls.inc()
        self.assertEqual(stats.metrics(), list(registry.collect()))
        self.assertEqual(exposition(stats.metrics()), generate_latest(registry))

    async def test_the_server_counts_its_requests(self) -> None:
        server = start_server(self)
        for path in ("/meminfo", "/meminfo", "/nope", "/-/healthy"):
            await server.request("GET", path)
        await server.exchange(b"BROKEN\r\n\r\n")
        reply = await server.request("GET", "/metrics?collect%5B%5D=server")
        found = samples(reply.body.decode())
        counts = by_name(found, "twistedspy_http_requests_total")
        self.assertEqual(counts[("module", "meminfo"), ("status", "200")], 2)
        self.assertEqual(counts[("module", "unknown"), ("status", "404")], 1)
        self.assertEqual(counts[("module", "-"), ("status", "200")], 1)
        self.assertEqual(counts[("module", "-"), ("status", "400")], 1)
        self.assertEqual(
            found["twistedspy_http_request_duration_seconds_count", (("module", "meminfo"),)], 2
        )
        self.assertEqual(
            found[
                "twistedspy_http_request_duration_seconds_bucket",
                (("le", "+Inf"), ("module", "meminfo")),
            ],
            2,
        )


def documented_drop_in() -> str:
    """The drop-in example of docs/writing-modules.md, as the reader copies it."""
    text = WRITING_MODULES.read_text()
    section = text[text.index("## Contributing Prometheus families") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```", start)]


class DropInTests(TestCase):
    async def test_the_documented_module_contributes_its_families(self) -> None:
        moddir = Path(self.mktemp()).resolve()
        moddir.mkdir(parents=True)
        (moddir / "greetings.py").write_text(documented_drop_in())
        server = start_server(self, modules_dir=moddir)
        for who in ("Ada", "Grace"):
            self.assertEqual((await server.request("GET", f"/greetings?who={who}")).status, 200)
        reply = await server.request("GET", "/metrics?collect[]=greetings")
        found = samples(reply.body.decode())
        self.assertEqual(found["greetings_total", ()], 2)
        success = by_name(found, "twistedspy_scrape_collector_success")
        self.assertEqual(success, {(("collector", "greetings"),): 1})
        # and it is one collector among the others in a whole scrape
        whole = samples((await server.request("GET", "/metrics")).body.decode())
        self.assertEqual(whole["greetings_total", ()], 2)
        self.assertIn(("node_load1", ()), whole)


class TypedBracketsTests(TestCase):
    async def test_collect_with_raw_brackets(self) -> None:
        """`collect[]=` as people type it (curl -g), not only percent-encoded."""
        server = start_server(self)
        reply = await server.request("GET", "/metrics?collect[]=server")
        self.assertEqual(reply.status, 200)
        self.assertIn(b'twistedspy_scrape_collector_success{collector="server"} 1.0', reply.body)
        self.assertNotIn(b"node_memory_MemTotal_bytes", reply.body)


class InternedNamesTests(TestCase):
    def test_repeated_reads_intern_no_strings(self) -> None:
        """
        The version facts are read again at every scrape and page: through pathlib, each
        read interned the parts of the file names ("os-release"), which died with the
        Path and were interned anew the next time. That churn made CPython's table of
        interned strings double (about 1 MiB more RSS) some minutes into the soak.
        """
        read_identity()
        read_system()  # the first call imports the idna codec (socket.getfqdn)
        interned: list[str] = []
        real = sys.intern

        def counting(text: str) -> str:
            interned.append(text)
            return real(text)

        self.patch(sys, "intern", counting)
        read_identity()
        read_system()
        self.assertEqual(interned, [])
