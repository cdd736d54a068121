"""The page of one process, `/processes?pid=N`, against ground truth: a child this test
starts with a secret in its environment, a listening socket and an open file, served by
a real server on 127.0.0.1:0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from twisted.trial.unittest import TestCase

from tests.servers import Reply, start_server
from tests.test_security import SECRET, basic, secure_server
from twistedspy.procfs.process import classify_descriptors

#: the value the child holds in SECRET_TOKEN; no response may ever carry it
HIDDEN = "hunter2"

#: the child: listens on a free port, holds a file open, says both, and sleeps
CHILD = """
import socket, sys, time
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
kept = open(sys.argv[1], "w")
print(listener.getsockname()[1], flush=True)
time.sleep(120)
"""


def start_witness(case: TestCase) -> tuple[subprocess.Popen[str], int]:
    """The child, and the port it listens on once it does."""
    held = Path(case.mktemp())
    env = {"PATH": os.environ.get("PATH", ""), "SECRET_TOKEN": HIDDEN}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(held)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    case.addCleanup(child.stdout.close)
    case.addCleanup(child.wait)
    case.addCleanup(child.kill)
    port = int(child.stdout.readline())
    return child, port


def descriptor_truth(pid: int) -> dict[str, int]:
    """The child's descriptors by kind, read here with readlink(2) as ls -l /proc/PID/fd does."""
    found = classify_descriptors([str(fd.readlink()) for fd in Path(f"/proc/{pid}/fd").iterdir()])
    return {"Files": found.files, "Sockets": found.sockets, "Pipes": found.pipes}


def table(document: Any, title: str) -> Any:
    """One table of a page's JSON document, by its title."""
    [found] = [t for t in document["tables"] if t["title"] == title]
    return found


class ProcessPageTests(TestCase):
    def assert_no_secret(self, *replies: Reply) -> None:
        for reply in replies:
            self.assertNotIn(HIDDEN.encode(), reply.body)

    async def test_page_against_ground_truth(self) -> None:
        child, port = start_witness(self)
        server = start_server(self)
        html = await server.request("GET", f"/processes?pid={child.pid}")
        as_json = await server.request("GET", f"/processes?pid={child.pid}&format=json")
        self.assertEqual((html.status, as_json.status), (200, 200))
        document = json.loads(as_json.body)

        # The variable's name, never its value.
        names = [row[0] for row in table(document, "Environment variable names")["rows"]]
        self.assertIn("SECRET_TOKEN", names)
        self.assertIn(b"SECRET_TOKEN", html.body)

        # The listening socket and its port.
        sockets = table(document, "Sockets (TCP and UDP)")
        self.assertIn(["tcp", "LISTEN", "127.0.0.1", port, "0.0.0.0", 0], sockets["rows"])
        self.assertIn(f">{port}</td>".encode(), html.body)

        # The descriptor counts as readlink sees them, and the limit as prlimit(1) would.
        descriptors = table(document, "File descriptors")
        [row] = descriptors["rows"]
        counted = dict(zip(descriptors["columns"], row, strict=True))
        truth = descriptor_truth(child.pid)
        self.assertGreaterEqual(truth["Files"], 1)  # the file the child holds open
        for kind, number in truth.items():
            self.assertEqual(counted[kind], number, kind)
        limits = Path(f"/proc/{child.pid}/limits").read_text()
        soft = next(line.split()[3] for line in limits.splitlines() if "open files" in line)
        self.assertEqual(counted["Limit (soft)"], int(soft))

        # Its parent is this test's process, linked to its own page.
        relatives = table(document, "Parents and children")["rows"]
        self.assertEqual(relatives[0][:2], ["parent", os.getpid()])
        self.assertIn(f'href="/processes?pid={os.getpid()}"'.encode(), html.body)

        # Every other page that shows processes keeps the value out too.
        listing = await server.request("GET", "/processes")
        listing_json = await server.request("GET", "/processes?format=json")
        landing = await server.request("GET", "/")
        landing_json = await server.request("GET", "/?format=json")
        self.assertIn(f'href="/processes?pid={child.pid}"'.encode(), listing.body)
        self.assert_no_secret(html, as_json, listing, listing_json, landing, landing_json)

    async def test_vanished_pid_is_404(self) -> None:
        child = subprocess.Popen(["true"])
        child.wait()  # reaped: the PID names no process now (unless reused within ms)
        server = start_server(self)
        reply = await server.request("GET", f"/processes?pid={child.pid}")
        if Path(f"/proc/{child.pid}").exists():
            self.skipTest("the PID was reused at once")
        self.assertEqual(reply.status, 404)
        self.assertIn(f"There is no process {child.pid}".encode(), reply.body)
        as_json = await server.request("GET", f"/processes?pid={child.pid}&format=json")
        self.assertEqual(json.loads(as_json.body)["error"]["status"], 404)

    async def test_pid_not_a_number_is_400(self) -> None:
        server = start_server(self)
        for bad in ("abc", "-1", "0", "1.5", "%C2%B2", "99999999999"):
            reply = await server.request("GET", f"/processes?pid={bad}")
            self.assertEqual(reply.status, 400, bad)
            self.assertIn(b"pid must be a process ID", reply.body)

    async def test_security_on_needs_a_login(self) -> None:
        server, _accounts = secure_server(self)
        path = f"/processes?pid={os.getpid()}"
        refused = await server.request("GET", path)
        self.assertEqual(refused.status, 401)
        self.assertNotIn(b"Environment", refused.body)
        allowed = await server.request("GET", path, basic("alice", SECRET))
        self.assertEqual(allowed.status, 200)
        self.assertIn(b"Environment variable names", allowed.body)


class StartTimeTests(TestCase):
    async def test_started_and_cpu_time_of_this_process(self) -> None:
        server = start_server(self)
        reply = await server.request("GET", f"/processes?pid={os.getpid()}&format=json")
        [row] = table(json.loads(reply.body), "Time, memory and I/O")["rows"]
        started, user_cpu = row[0], row[1]
        self.assertLess(started, time.time())
        self.assertGreater(user_cpu + row[2], 0)
        times = os.times()
        self.assertLessEqual(user_cpu, times.user + 0.05)
