"""`/metrics` against the real tools: promtool's checker, node_exporter's names, and a real
Prometheus server scraping one and then five twistedspy instances with Basic auth."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from bench.dashboard import query
from tests.servers import RunningServer, fetch, start_server
from tests.support import NODE_EXPORTER_LINT, require_tool

HOSTILE = 'a"b\\c\n{x="y"}'
DEADLINE = 60.0
USER, PASSWORD = "prometheus", "scrape-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def promtool_problems(exposition: bytes) -> list[str]:
    """promtool's complaints about an exposition, less the allowed camelCase ones."""
    promtool = require_tool("promtool")
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, check=False
    )
    lines = (checked.stdout + checked.stderr).decode().splitlines()
    problems = [line for line in lines if line.strip() and not NODE_EXPORTER_LINT.fullmatch(line)]
    if checked.returncode not in (0, 3) or (checked.returncode == 3 and problems):
        problems.append(f"promtool exit status {checked.returncode}")
    return problems


def family_labels(text: str) -> dict[str, frozenset[str]]:
    """Each family's sample names with the label names they carry."""
    found: dict[str, frozenset[str]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[s.name] = frozenset(s.labels)
    return found


async def until(check: Callable[[], Any], what: str) -> Any:
    """Poll `check` (run in a thread) until it returns something true, within DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    last: Any = None
    while time.monotonic() < deadline:
        last = await deferToThread(check)
        if last:
            return last
        await deferLater(reactor, 0.5, lambda: None)
    raise AssertionError(f"{what} not seen within {DEADLINE:g} s; last answer: {last!r}")


def secured_server(case: TestCase) -> RunningServer:
    folder = Path(case.mktemp())
    folder.mkdir()
    accounts = folder / "accounts"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    accounts.write_text(f"{USER}:{hashed}\n")
    return start_server(case, security=True, account_file=accounts)


class PromtoolTests(TestCase):
    async def test_exposition_passes_promtool(self) -> None:
        server = start_server(self)
        reply = await server.request("GET", "/metrics")
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        self.assertIn(b"node_memory_MemTotal_bytes", reply.body)
        self.assertEqual(promtool_problems(reply.body), [])

    def test_promtool_catches_a_broken_exposition(self) -> None:
        # the filter lets nothing else through
        broken = b'# TYPE x counter\nx{a="b} 1\n'
        self.assertNotEqual(promtool_problems(broken), [])
        self.assertNotEqual(
            promtool_problems(b"# TYPE bad_name_total gauge\nbad_name_total 1\n"), []
        )

    async def test_hostile_process_names_cannot_break_it(self) -> None:
        shell = subprocess.Popen(["bash", "-c", 'exec -a "$0" sleep 60', HOSTILE])
        self.addCleanup(shell.wait)
        self.addCleanup(shell.kill)
        script = (
            "import sys, time; open('/proc/self/comm', 'w').write(sys.argv[1]); time.sleep(60)"
        )
        python = subprocess.Popen([sys.executable, "-c", script, HOSTILE])
        self.addCleanup(python.wait)
        self.addCleanup(python.kill)
        # both are running with their names before the scrape
        await until(
            lambda: (
                HOSTILE.encode() in Path(f"/proc/{shell.pid}/cmdline").read_bytes()
                and Path(f"/proc/{python.pid}/comm").read_bytes() != b"python3\n"
            ),
            "the hostile names",
        )
        server = start_server(self)
        reply = await server.request("GET", "/metrics")
        self.assertEqual(reply.status, 200)
        self.assertEqual(promtool_problems(reply.body), [])
        families = family_labels(reply.body.decode())
        self.assertIn("twistedspy_processes", families)
        self.assertNotIn(b"{x=", reply.body)

    # node_exporter's names, types, labels and values: tests/test_node_exporter.py


class FleetConfigTests(TestCase):
    def test_contrib_config_is_valid(self) -> None:
        promtool = require_tool("promtool")
        folder = Path(self.mktemp())
        folder.mkdir()
        (folder / "password").write_text("secret\n")
        (folder / "ca.pem").write_text("")
        text = (Path(__file__).parent.parent / "contrib" / "prometheus.yml").read_text()
        self.assertIn("basic_auth:", text)
        self.assertIn("ca_file:", text)
        text = text.replace("/etc/prometheus/twistedspy.password", str(folder / "password"))
        text = text.replace("/etc/prometheus/twistedspy-ca.pem", str(folder / "ca.pem"))
        (folder / "prometheus.yml").write_text(text)
        checked = subprocess.run(
            [promtool, "check", "config", str(folder / "prometheus.yml")],
            capture_output=True,
            check=False,
        )
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)


class PrometheusTests(TestCase):
    def start_prometheus(self, targets: list[int]) -> int:
        prometheus = require_tool("prometheus")
        folder = Path(self.mktemp())
        folder.mkdir()
        listed = ", ".join(f"'127.0.0.1:{p}'" for p in targets)
        (folder / "prometheus.yml").write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "scrape_configs:\n"
            "  - job_name: twistedspy\n"
            "    basic_auth:\n"
            f"      username: {USER}\n"
            f"      password: {PASSWORD}\n"
            "    static_configs:\n"
            f"      - targets: [{listed}]\n"
        )
        port = free_port()
        log = (folder / "prometheus.log").open("wb")
        self.addCleanup(log.close)
        process = subprocess.Popen(
            [
                prometheus,
                f"--web.listen-address=127.0.0.1:{port}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--config.file={folder / 'prometheus.yml'}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.addCleanup(process.wait)
        self.addCleanup(process.terminate)
        return port

    query = staticmethod(query)

    async def test_scrapes_one_server_with_basic_auth(self) -> None:
        server = secured_server(self)
        # the credentials are needed: without them, 401
        unauthorised = await deferToThread(fetch, server.port, "GET", "/metrics", {})
        self.assertEqual(unauthorised.status, 401)
        port = self.start_prometheus([server.port])
        result = await until(lambda: self.query(port, "node_load1"), "node_load1 in Prometheus")
        self.assertEqual(result[0]["metric"]["instance"], f"127.0.0.1:{server.port}")
        (total,) = await until(
            lambda: self.query(port, "node_memory_MemTotal_bytes"), "node_memory_MemTotal_bytes"
        )
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                self.assertEqual(float(total["value"][1]), int(line.split()[1]) * 1024)
        success = await until(
            lambda: self.query(port, "min(twistedspy_scrape_collector_success)"),
            "collector success",
        )
        self.assertEqual(success[0]["value"][1], "1")

    async def test_scrapes_five_servers(self) -> None:
        servers = [secured_server(self) for _ in range(5)]
        port = self.start_prometheus([s.port for s in servers])

        def all_up() -> list[dict[str, Any]]:
            up = self.query(port, "up == 1")
            return up if len(up) == 5 else []

        up = await until(all_up, "five targets up")
        self.assertEqual(
            sorted(r["metric"]["instance"] for r in up),
            sorted(f"127.0.0.1:{s.port}" for s in servers),
        )
