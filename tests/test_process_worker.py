"""The processes page's child process (twistedspy/worker.py): a real child over real pipes,
behind a real server on 127.0.0.1:0 (docs/architecture.md, "The process worker")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.daemons import start_cli
from tests.servers import RunningServer, start_server
from twistedspy.modules.processes import (
    MakePage,
    ProcessesModule,
    ProcessRow,
    glance_rows,
    rows_from_json,
    rows_to_json,
)
from twistedspy.procfs.processes import ProcessSample
from twistedspy.query import Query
from twistedspy.worker import Worker

#: a safety net for waiting on a child process; not a measured time
PATIENCE = 30.0
#: in the command line of a process the tests start; no page may ever carry it
HIDDEN = "hunter2"


def parent_of(pid: int) -> int | None:
    """The parent PID of a live process; None once it has gone (or is a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    return None if fields[0] == b"Z" else int(fields[1])


async def until(condition: Any, what: str) -> None:
    """Wait, without blocking the reactor, until `condition()` holds."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {PATIENCE} s for {what}")
        await deferLater(reactor, 0.02)


class LargeBytesTests(SynchronousTestCase):
    def test_a_page_over_one_amp_value_arrives_whole(self) -> None:
        body = bytes(range(256)) * 1000  # 256,000 bytes: four AMP values and a piece
        box = MakePage.makeResponse({"body": body, "content_type": "text/html"}, None)
        self.assertTrue(all(len(v) <= 0xFFFF for v in box.values()))
        self.assertEqual(MakePage.parseResponse(box, None)["body"], body)

    def test_no_bytes(self) -> None:
        box = MakePage.makeResponse({"body": b"", "content_type": "text/html"}, None)
        self.assertEqual(MakePage.parseResponse(box, None)["body"], b"")


class RowsTests(SynchronousTestCase):
    def test_the_landing_pages_rows_cross_whole(self) -> None:
        samples = [
            ProcessSample(1, "init", "S", "root", "root", 4096, 1.5, 1, 10.0, ("/sbin/init",)),
            ProcessSample(2, "kworker/0:1", "I", "root", "root", None, 0.0, 1, 11.0, ()),
            ProcessSample(3, "a\udcff) (b", "D", None, None, None, None, None, None, None),
        ]
        rows = [ProcessRow(samples[0], 12.5), ProcessRow(samples[1], None),
                ProcessRow(samples[2], 0.0, 61.0)]  # fmt: skip
        self.assertEqual(rows_from_json(rows_to_json(rows)), rows)

    def test_the_landing_page_gets_its_top_and_the_stuck(self) -> None:
        rows = [
            ProcessRow(ProcessSample(n, f"p{n}", "S", "u", "g", n, 0.0, 1, 0.0, ()), float(n))
            for n in range(1, 30)
        ]
        stuck = ProcessRow(ProcessSample(99, "d", "D", "u", "g", 0, 0.0, 1, 0.0, ()), 0.0, 5.0)
        kept = glance_rows([*rows, stuck])
        self.assertEqual([r.sample.pid for r in kept], [25, 26, 27, 28, 29, 99])


class ServedTests(TestCase):
    """The page of every process made in the child, and what happens when it dies."""

    def serve(self, **settings: Any) -> tuple[RunningServer, ProcessesModule, Worker]:
        server = start_server(self, modules=("processes", "version"), **settings)
        module = server.service.modules["processes"]
        assert isinstance(module, ProcessesModule)
        assert module.worker is not None
        made_here: list[Query] = []
        collect = module.collect

        def counted(query: Query) -> Any:
            made_here.append(query)
            return collect(query)

        module.collect = counted  # type: ignore[method-assign]
        self.made_here = made_here
        return server, module, module.worker

    async def running_child(self, worker: Worker) -> int:
        await until(worker.is_ready, "the child to start")
        assert worker.pid is not None
        return worker.pid

    def start_witness(self) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-c", "import time; time.sleep(60)", "--password", HIDDEN]
        child = subprocess.Popen(argv)
        self.addCleanup(child.wait)
        self.addCleanup(child.kill)
        return child

    async def test_the_page_comes_from_the_child_masked(self) -> None:
        server, _module, worker = self.serve()
        child = await self.running_child(worker)
        self.assertEqual(parent_of(child), os.getpid())
        witness = self.start_witness()
        reply = await server.request("GET", "/processes?format=json")
        self.assertEqual(reply.status, 200)
        self.assertEqual(self.made_here, [])
        rows = json.loads(reply.body)["tables"][0]["rows"]
        [command] = [r[9] for r in rows if r[0] == witness.pid]
        self.assertTrue(command.endswith("--password ***"), command)
        self.assertNotIn(HIDDEN.encode(), reply.body)
        html = await server.request("GET", "/processes?sort=rss")
        self.assertEqual(html.status, 200)
        self.assertIn(f'<a href="/processes?pid={witness.pid}">'.encode(), html.body)
        self.assertNotIn(HIDDEN.encode(), html.body)
        self.assertEqual(self.made_here, [])

    async def test_one_process_bad_queries_and_the_landing_page(self) -> None:
        server, module, worker = self.serve()
        await self.running_child(worker)
        one = await server.request("GET", f"/processes?pid={os.getpid()}&format=json")
        self.assertEqual(one.status, 200)
        self.assertIn(b'"Process', one.body)
        bad = await server.request("GET", "/processes?sort=colour")
        self.assertEqual(bad.status, 400)
        await module.poll()  # what the sampler does every five seconds, from the child
        [by_cpu, by_memory, *_] = module.glance()
        self.assertEqual(len(by_memory.rows), 5)
        self.assertLessEqual(len(by_cpu.rows), 5)
        self.assertEqual(worker.starts, 1)

    async def test_a_child_killed_mid_request(self) -> None:
        server, _module, worker = self.serve()
        first = await self.running_child(worker)
        os.kill(first, signal.SIGSTOP)  # holds the request in the child
        asked = server.request("GET", "/processes")
        await until(lambda: worker.pending > 0, "the request to reach the child")
        os.kill(first, signal.SIGKILL)
        reply = await asked
        self.assertEqual(reply.status, 200)
        self.assertIn(b"<table", reply.body)
        self.assertEqual(len(self.made_here), 1)  # made in the server's threads meanwhile
        await until(lambda: worker.is_ready() and worker.pid != first, "another child")
        again = await server.request("GET", "/processes")
        self.assertEqual(again.status, 200)
        self.assertEqual(len(self.made_here), 1)  # the new child made this one
        self.assertEqual(worker.starts, 2)

    async def test_a_stuck_child_is_504_then_replaced(self) -> None:
        server, _module, worker = self.serve(module_timeout=1.0)
        first = await self.running_child(worker)
        os.kill(first, signal.SIGSTOP)
        reply = await server.request("GET", "/processes")
        self.assertEqual(reply.status, 504)
        await until(lambda: worker.is_ready() and worker.pid != first, "another child")
        self.assertIsNone(parent_of(first))
        again = await server.request("GET", "/processes")
        self.assertEqual(again.status, 200)

    async def test_the_child_loads_no_tls(self) -> None:
        """Twisted's TLS packages are a quarter of the child's memory, and it needs none."""
        server, _module, worker = self.serve()
        child = await self.running_child(worker)
        reply = await server.request("GET", "/processes?format=json")
        self.assertEqual(reply.status, 200)
        self.assertEqual(self.made_here, [])
        # cryptography's compiled core: mapped here (this process serves), not there
        self.assertIn("/cryptography/", Path("/proc/self/maps").read_text())
        self.assertNotIn("/cryptography/", Path(f"/proc/{child}/maps").read_text())

    async def test_stop_leaves_no_child(self) -> None:
        server, _module, worker = self.serve()
        child = await self.running_child(worker)
        await server.service.stopService()
        self.assertIsNone(parent_of(child))
        self.assertIsNone(worker.pid)


class OrphanTests(TestCase):
    def test_the_child_leaves_with_a_killed_server(self) -> None:
        server = start_cli(Path(self.mktemp()), "--modules=processes,version")
        self.addCleanup(server.kill)
        deadline = time.monotonic() + PATIENCE
        children: list[int] = []
        while not children and time.monotonic() < deadline:
            children = [
                int(p.name)
                for p in Path("/proc").iterdir()
                if p.name.isdigit() and parent_of(int(p.name)) == server.pid
            ]
            time.sleep(0.05)
        [child] = children
        server.kill()  # SIGKILL: no stopService, only the end of the child's stdin
        while parent_of(child) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIsNone(parent_of(child))
