# -*- test-case-name: tests.test_integration -*-
"""The whole server over a real socket: what a client on the network sees."""

from __future__ import annotations

import gzip
import json
import os

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.servers import split_responses, start_server
from twistedspy.interfaces import IInfoModule, IReactorSafe
from twistedspy.query import Query
from twistedspy.report import Page, Report


class PagesTests(TestCase):
    async def test_index_html_has_every_header(self) -> None:
        server = start_server(self)
        reply = await server.request("GET", "/")
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.header("Content-Type"), "text/html; charset=utf-8")
        self.assertEqual(reply.header("Cache-Control"), "no-store")
        self.assertEqual(reply.header("Server"), "twistedspy")
        self.assertIsNotNone(reply.header("Date"))
        self.assertEqual(int(reply.header("Content-Length")), len(reply.body))
        self.assertIn("script-src 'self'", reply.header("Content-Security-Policy"))
        self.assertEqual(reply.header("X-Content-Type-Options"), "nosniff")
        self.assertEqual(reply.header("Referrer-Policy"), "no-referrer")
        self.assertIn(b"/version", reply.body)

    async def test_version_json_names_this_kernel(self) -> None:
        server = start_server(self)
        reply = await server.request("GET", "/version?format=json")
        self.assertEqual(reply.status, 200)
        document = json.loads(reply.body)
        self.assertEqual(document["module"], "version")
        cells = [cell for table in document["tables"] for row in table["rows"] for cell in row]
        self.assertIn(f"Linux {os.uname().release}", cells)

    async def test_accept_header_chooses_json(self) -> None:
        server = start_server(self)
        reply = await server.request("GET", "/version", {"Accept": "application/json"})
        self.assertEqual(reply.header("Content-Type"), "application/json; charset=utf-8")

    async def test_gzip_when_asked(self) -> None:
        server = start_server(self)
        reply = await server.request("GET", "/", {"Accept-Encoding": "gzip"})
        self.assertEqual(reply.header("Content-Encoding"), "gzip")
        self.assertIn(b"/version", gzip.decompress(reply.body))

    async def test_unknown_module_is_404(self) -> None:
        server = start_server(self)
        reply = await server.request("GET", "/nonesuch", {"Accept": "application/json"})
        self.assertEqual(reply.status, 404)
        self.assertEqual(json.loads(reply.body)["error"]["status"], 404)

    async def test_healthy(self) -> None:
        server = start_server(self)
        reply = await server.request("GET", "/-/healthy")
        self.assertEqual((reply.status, reply.body), (200, b"twistedspy is healthy.\n"))

    async def test_pipelined_requests_answered_in_order(self) -> None:
        server = start_server(self)
        requests = b"".join(
            b"GET /%s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n" % name
            for name in (b"version", b"index", b"version")
        )
        data = await server.exchange(
            requests + b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        modules = [
            json.loads(part.split(b"\r\n\r\n", 1)[1].split(b"\nHTTP/1.1")[0])["module"]
            for part in data.split(b"HTTP/1.1 200 OK")[1:4]
        ]
        self.assertEqual(modules, ["version", "index", "version"])
        self.assertEqual(data.count(b"HTTP/1.1 200 OK"), 4)

    async def test_request_event_journalled(self) -> None:
        server = start_server(self)
        await server.request("GET", "/version?login=alice&password=s3cret-word")
        journal = server.journal_text()
        self.assertIn('path="/version?login=alice&password=***"', journal)
        self.assertNotIn("s3cret-word", journal)


@implementer(IInfoModule)
class FailingModule:
    name = "failing"
    title = "Failing"
    description = "Raises."

    def collect(self, query: Query) -> Report:
        raise RuntimeError("disk on fire")


@implementer(IInfoModule, IReactorSafe)
class HangingModule:
    name = "hanging"
    title = "Hanging"
    description = "Never answers."

    def collect(self, query: Query) -> Deferred[Page]:
        return Deferred()


class FailureIsolationTests(TestCase):
    async def test_module_that_raises_gives_500_and_a_traceback(self) -> None:
        server = start_server(self)
        server.service.modules["failing"] = FailingModule()
        reply = await server.request("GET", "/failing")
        self.assertEqual(reply.status, 500)
        self.assertNotIn(b"Traceback", reply.body)
        self.assertNotIn(b"disk on fire", reply.body)
        journal = server.journal_text()
        self.assertIn("module-error", journal)
        self.assertIn("RuntimeError: disk on fire", journal)
        self.assertIn("  Traceback", journal)
        self.assertEqual((await server.request("GET", "/version")).status, 200)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    async def test_module_that_hangs_gives_504_and_others_are_served(self) -> None:
        server = start_server(self, module_timeout=1.0)
        server.service.modules["hanging"] = HangingModule()
        hanging = server.request("GET", "/hanging")
        # While it hangs, another client is served at once.
        other = await server.request("GET", "/version")
        self.assertEqual(other.status, 200)
        self.assertNoResult(hanging)
        reply = await hanging
        self.assertEqual(reply.status, 504)

    async def test_client_sending_junk_costs_only_its_connection(self) -> None:
        server = start_server(self)
        junk = await server.exchange(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03junk\r\n\r\n")
        self.assertTrue(junk.startswith(b"HTTP/1.1 400 "))
        self.assertEqual((await server.request("GET", "/version")).status, 200)


class StatusTableTests(TestCase):
    """The HTTP rows (docs/architecture.md) about the request itself, over a real socket."""

    rows = (
        (b"GET / HTTP/1.1\r\n\r\n", b"400"),  # HTTP/1.1 without Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", b"400"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", b"400"),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            b"400",
        ),
        (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  folded\r\n\r\n", b"400"),
        (b"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n", b"421"),
        (b"POST /version HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n", b"405"),
        (b"DELETE /version HTTP/1.1\r\nHost: localhost\r\n\r\n", b"405"),
        (b"GET /nonesuch HTTP/1.1\r\nHost: localhost\r\n\r\n", b"404"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 70000\r\n\r\n", b"413"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", b"414"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 9000 + b"\r\n\r\n", b"431"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"501"),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", b"505"),
        (b"GET / HTTP/0.9\r\n\r\n", b"505"),
        (b"GET http://localhost/version HTTP/1.1\r\nHost: localhost\r\n\r\n", b"200"),
        (b"GET /index HTTP/1.0\r\n\r\n", b"200"),
        (b"GET /ver%73ion HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"200"),
        (b"GET / HTTP/1.9\r\nHost: [::1]:8080\r\n\r\n", b"200"),
    )

    async def test_every_row(self) -> None:
        server = start_server(self)
        for request, status in self.rows:
            data = await server.exchange(request + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            with self.subTest(request=request[:60]):
                self.assertTrue(
                    data.startswith(b"HTTP/1.1 " + status + b" "), (request[:60], data[:80])
                )
            if status == b"405":
                self.assertIn(b"\r\nAllow: GET, HEAD\r\n", data)
            answers = split_responses(data)
            if status in (b"200", b"404", b"405", b"421") and b"HTTP/1.0" not in request:
                self.assertEqual(len(answers), 2, request[:60])
            else:
                # Errors about the request itself close the connection: nothing follows.
                self.assertEqual(len(answers), 1, request[:60])

    async def test_head_gives_get_headers_without_body(self) -> None:
        server = start_server(self)
        get = await server.exchange(
            b"GET /index HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        head = await server.exchange(
            b"HEAD /index HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        get_head, _, get_body = get.partition(b"\r\n\r\n")
        head_head, _, head_body = head.partition(b"\r\n\r\n")
        self.assertEqual(head_body, b"")
        self.assertIn(b"Content-Length: %d" % len(get_body), head_head)
        self.assertEqual(
            [h for h in head_head.split(b"\r\n") if not h.startswith(b"Date:")],
            [h for h in get_head.split(b"\r\n") if not h.startswith(b"Date:")],
        )
