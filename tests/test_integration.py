# -*- test-case-name: tests.test_integration -*-
"""The whole server over a real socket: what a client on the network sees."""

from __future__ import annotations

import gzip
import json
import os

from twisted.trial.unittest import TestCase

from tests.servers import start_server


class PagesTests(TestCase):
    async def test_index_html_has_every_header(self) -> None:
        server = start_server(self)
        reply = await server.request("GET", "/")
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.header("Content-Type"), "text/html; charset=utf-8")
        self.assertEqual(reply.header("Cache-Control"), "no-store")
        self.assertTrue(reply.header("Server").startswith("twistedspy/"))
        self.assertIsNotNone(reply.header("Date"))
        self.assertEqual(int(reply.header("Content-Length")), len(reply.body))
        self.assertIn("script-src 'self'", reply.header("Content-Security-Policy"))
        self.assertEqual(reply.header("X-Content-Type-Options"), "nosniff")
        self.assertEqual(reply.header("Referrer-Policy"), "same-origin")
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
