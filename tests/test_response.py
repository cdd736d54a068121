# -*- test-case-name: tests.test_response -*-
"""The response writer's exact bytes: every header docs/architecture.md
promises, in a fixed order."""

from __future__ import annotations

import gzip

from twisted.trial.unittest import TestCase

from twistedspy.http.response import (
    CONTENT_SECURITY_POLICY,
    SERVER,
    DateCache,
    Response,
    serialize,
    with_gzip,
)

NOW = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110 §5.6.7's example)
DATE = b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"


class SerializeTests(TestCase):
    def test_plain_text(self) -> None:
        response = Response(200, b"ok\n", "text/plain; charset=utf-8")
        self.assertEqual(
            serialize(response, now=NOW, date=DateCache()),
            b"HTTP/1.1 200 OK\r\n" + DATE + b"Server: " + SERVER + b"\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n"
            b"Cache-Control: no-store\r\n"
            b"X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n\r\nok\n",
        )

    def test_html_error_with_extras_closing(self) -> None:
        response = Response(405, b"<p>no</p>", "text/html; charset=utf-8", (("Allow", "GET"),))
        wire = serialize(response, now=NOW, date=DateCache(), keep_alive=False, head=True)
        self.assertEqual(
            wire,
            b"HTTP/1.1 405 Method Not Allowed\r\n" + DATE + b"Server: " + SERVER + b"\r\n"
            b"Content-Type: text/html; charset=utf-8\r\nContent-Length: 9\r\n"
            b"Cache-Control: no-store\r\n"
            b"X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"
            b"Allow: GET\r\n"
            b"Content-Security-Policy: " + CONTENT_SECURITY_POLICY.encode() + b"\r\n"
            b"Connection: close\r\n\r\n",
        )

    def test_gzip_and_keep_alive_announced(self) -> None:
        body = b"x" * 2000
        for response in (Response(200, body, "text/plain"), with_gzip(Response(200, body, "a/b"))):
            wire = serialize(
                response,
                now=NOW,
                date=DateCache(),
                accept_encoding="gzip",
                announce_keep_alive=True,
            )
            head, _, sent = wire.partition(b"\r\n\r\n")
            self.assertEqual(gzip.decompress(sent), body)
            self.assertIn(b"\r\nContent-Length: %d\r\n" % len(sent), head)
            self.assertTrue(
                head.endswith(
                    b"Vary: Accept, Accept-Encoding\r\nContent-Encoding: gzip\r\n"
                    b"Connection: keep-alive"
                ),
                head,
            )
            plain = serialize(response, now=NOW, date=DateCache())
            self.assertTrue(plain.endswith(b"Vary: Accept, Accept-Encoding\r\n\r\n" + body))

    def test_unknown_status(self) -> None:
        wire = serialize(Response(299, b"", "text/plain"), now=NOW, date=DateCache())
        self.assertTrue(wire.startswith(b"HTTP/1.1 299 Unknown\r\n"))
