# -*- test-case-name: tests.test_journal_events -*-
"""The journal events of docs/operations.md, written by a running server, in short and
verbose mode."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
from pathlib import Path

from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.daemons import CLI, TWISTD, run_to_exit, start_cli
from tests.servers import start_server
from twistedspy.interfaces import IInfoModule
from twistedspy.query import Query
from twistedspy.report import Page

SECRET_HEADERS = {
    "Proxy-Authorization": "Basic YWxpY2U6czNjcmV0LXdvcmQ=",
    "Cookie": "session=cookie-secret",
    "User-Agent": "journal-test/1.0",
    # A field named like record()'s own parameters must not break the event.
    "Event": "x",
    "Level": "y",
}


@implementer(IInfoModule)
class FailingModule:
    name = "failing"
    title = "Failing"
    description = "Raises."

    def collect(self, query: Query) -> Page:
        raise ZeroDivisionError("the module's own bug")


def events(journal: str, name: str) -> list[str]:
    return re.findall(rf"^\S+ \w+ {name}\b.*$", journal, re.MULTILINE)


class JournalEventTests(TestCase):
    async def test_short_mode(self) -> None:
        server = start_server(self)
        reply = await server.request("GET", "/version?password=hunter2", SECRET_HEADERS)
        journal = server.journal_text()
        [start] = events(journal, "start")
        self.assertRegex(
            start,
            rf" info start address=127\.0\.0\.1 port={server.port} "
            r"modules=index,\S*version\S* security=off$",
        )
        [request] = events(journal, "request")
        self.assertRegex(
            request,
            r" info request client=127\.0\.0\.1 user=- method=GET "
            rf'path="/version\?password=\*\*\*" status={reply.status} bytes=(\d+) ms=[\d.]+$',
        )
        # bytes counts the whole response as sent: status line, header fields and body.
        sent = int(re.search(r" bytes=(\d+)", request).group(1))  # type: ignore[union-attr]
        self.assertGreater(sent, len(reply.body) + len("HTTP/1.1 401 Unauthorized\r\n"))
        self.assertEqual(events(journal, "connection"), [])
        self.assertEqual(events(journal, "headers"), [])
        # Security off: each anonymous login through the Portal is verbose-only detail.
        self.assertEqual(events(journal, "authorization"), [])
        for secret in ("hunter2", "YWxpY2U6czNjcmV0LXdvcmQ=", "cookie-secret"):
            self.assertNotIn(secret, journal)

    async def test_verbose_mode_adds_connections_and_headers(self) -> None:
        server = start_server(self, log_mode="verbose")
        reply = await server.request("GET", "/version", SECRET_HEADERS)
        self.assertEqual(reply.status, 200)
        journal = server.journal_text()
        [connection] = events(journal, "connection")
        self.assertRegex(connection, r" info connection client=127\.0\.0\.1$")
        [login] = events(journal, "authorization")
        self.assertRegex(login, r" debug authorization user=- client=127\.0\.0\.1 outcome=ok$")
        [headers] = events(journal, "headers")
        self.assertIn(" client=127.0.0.1 path=/version ", headers)
        self.assertIn(f" host=127.0.0.1:{server.port} ", headers)
        self.assertIn(" user-agent=journal-test/1.0", headers)
        self.assertIn(" proxy-authorization=*** ", headers)
        self.assertIn(" cookie=*** ", headers)
        self.assertIn(" event=x level=y", headers)
        self.assertNotIn("YWxpY2U6czNjcmV0LXdvcmQ=", journal)
        self.assertNotIn("cookie-secret", journal)
        # Credentials the server checks (and here refuses) are masked too.
        await server.request("GET", "/", {"Authorization": "Basic bWFsbG9yeTpzZWNyZXQ="})
        journal = server.journal_text()
        self.assertRegex(events(journal, "headers")[1], r" authorization=\*\*\*( |$)")
        self.assertNotIn("bWFsbG9yeTpzZWNyZXQ=", journal)
        # The connection comes first, then its request's headers, then the request.
        order = [line.split()[2] for line in journal.splitlines() if not line.startswith(" ")]
        self.assertLess(order.index("connection"), order.index("headers"))
        self.assertLess(order.index("headers"), order.index("request"))

    async def test_module_failure_with_traceback(self) -> None:
        server = start_server(self)
        server.service.modules["failing"] = FailingModule()
        reply = await server.request("GET", "/failing")
        self.flushLoggedErrors(ZeroDivisionError)
        self.assertEqual(reply.status, 500)
        self.assertNotIn(b"ZeroDivisionError", reply.body)
        journal = server.journal_text()
        [error] = events(journal, "module-error")
        self.assertIn(" module=failing client=127.0.0.1", error)
        self.assertIn("  Traceback (most recent call last):", journal)
        self.assertIn("  builtins.ZeroDivisionError: the module's own bug", journal)
        [request] = events(journal, "request")
        self.assertIn(" status=500 ", request)

    async def test_everything_on_disk_after_a_clean_stop(self) -> None:
        server = start_server(self)
        for _ in range(20):
            await server.request("GET", "/-/healthy")
        await server.service.stopService()
        journal = server.journal_text()
        self.assertEqual(len(events(journal, "request")), 20)
        self.assertRegex(journal.splitlines()[-1], r"^\S+ info stop connections=0$")


class BatchedJournalTests(TestCase):
    """A real process writes its journal in batches and loses none of it at a clean stop."""

    def test_every_answer_is_journalled_after_sigint(self) -> None:
        server = start_cli(Path(self.mktemp()))
        self.addCleanup(server.kill)
        before = len(events(server.journal(), "request"))
        request = f"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n"
        received = b""
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
            client.sendall(request.encode() * 2000)
            # Stopped while it answers: the requests answered are the ones it journals.
            while b"\r\n\r\n" not in received:
                received += client.recv(65536)
            server.signal(signal.SIGINT)
            # Closed with requests unread, the server's side resets: the answers in flight
            # then are lost on the way, never from the journal.
            with contextlib.suppress(ConnectionResetError):
                while chunk := client.recv(65536):
                    received += chunk
        self.assertIn(server.wait(), (0, -signal.SIGINT))
        answers = received.count(b"HTTP/1.1 200 ")
        self.assertGreater(answers, 0)
        journal = server.journal()
        self.assertGreaterEqual(len(events(journal, "request")), before + answers)
        self.assertLessEqual(len(events(journal, "request")), before + 2000)
        self.assertRegex(journal.splitlines()[-1], r"^\S+ info stop connections=\d+$")


class UnwritableLogDirTests(TestCase):
    def setUp(self) -> None:
        self.folder = Path(self.mktemp()).resolve()
        self.folder.mkdir(parents=True)
        blocker = self.folder / "not-a-folder"
        blocker.write_text("")
        self.log_dir = blocker / "logs"

    def run_server(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return run_to_exit(argv, cwd=self.folder)

    def test_script(self) -> None:
        done = self.run_server([*CLI, "-p", "0", "--log-dir", str(self.log_dir)])
        self.assertNotEqual(done.returncode, 0)
        self.assertEqual(
            done.stderr,
            f"twistedspy: cannot write the journal in {self.log_dir}: Not a directory\n",
        )

    def test_twistd_spy(self) -> None:
        done = self.run_server(
            [*TWISTD, "-n", "--pidfile=", "spy", "-p", "0", "--log-dir", str(self.log_dir)]
        )
        self.assertNotEqual(done.returncode, 0)
        self.assertIn(f"twistedspy: cannot write the journal in {self.log_dir}", done.stderr)
        self.assertNotIn("Traceback", done.stderr + done.stdout)
