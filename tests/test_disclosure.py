# -*- test-case-name: tests.test_disclosure -*-
"""What any answer tells a stranger: headers on every response, and the anonymous 401."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.servers import split_responses, start_server
from tests.test_modulesdir import HELLO
from tests.test_security import SECRET, accounts_file, basic, raw_request
from twistedspy import __version__


class CommonHeaderTests(TestCase):
    async def test_every_kind_of_response_has_nosniff_and_no_referrer(self) -> None:
        server = start_server(self)
        paths = [
            "/processes?format=json",  # JSON
            "/metrics",  # Prometheus text
            "/-/static/favicon.svg",  # SVG
            "/-/static/spy.css",
            "/-/healthy",
            "/nonesuch",  # 404 page
            "/meminfo?format=nonesuch",  # 400 page
        ]
        for path in paths:
            reply = await server.request("GET", path)
            with self.subTest(path=path, status=reply.status):
                self.assertEqual(reply.header("X-Content-Type-Options"), "nosniff")
                self.assertEqual(reply.header("Referrer-Policy"), "no-referrer")
                self.assertEqual(reply.header("Server"), "twistedspy")
        # A request the parser refuses: answered before any page is looked up.
        (status, head, _), *_ = split_responses(await server.exchange(b"GET / HTTP/9.9\r\n\r\n"))
        self.assertEqual(status, 505)
        self.assertIn(b"\r\nX-Content-Type-Options: nosniff\r\n", head)
        self.assertIn(b"\r\nReferrer-Policy: no-referrer\r\n", head)


class AnonymousPageTests(TestCase):
    async def test_401_names_no_host_no_module_no_version(self) -> None:
        moddir = Path(self.mktemp())
        moddir.mkdir()
        (moddir / "hello.py").write_text(HELLO)
        accounts = accounts_file(self, alice=SECRET)
        server = start_server(self, security=True, account_file=accounts, modules_dir=moddir)
        names = set(server.service.modules)
        self.assertIn("hello", names)
        host = socket.gethostname()
        for path in ("/", "/processes", "/hello", "/nonesuch"):
            for as_json in (False, True):
                request = raw_request(path, *(["Accept: application/json"] if as_json else []))
                ((status, head, body),) = split_responses(await server.exchange(request))
                with self.subTest(path=path, as_json=as_json):
                    self.assertEqual(status, 401)
                    self.assertNotIn(host, (head + body).decode())
                    self.assertNotIn(__version__, (head + body).decode())
                    # JSON's own keys ("error", "message") are the format, not the machine.
                    text = json.loads(body)["error"]["message"] if as_json else body.decode()
                    for name in names:
                        self.assertNotIn(name, text.lower())
        # Logged in, the same server's pages name the host and the modules again.
        reply = await server.request("GET", "/nonesuch", basic("alice", SECRET))
        self.assertEqual(reply.status, 404)
        self.assertIn(host, reply.body.decode())
        self.assertIn('href="/hello"', reply.body.decode())
