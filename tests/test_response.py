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
    WireCache,
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


class WireCacheTests(TestCase):
    """The bytes of a response sent again within the same second are made once."""

    def test_same_response_same_bytes(self) -> None:
        wire, date = WireCache(), DateCache()
        response = Response(200, b"ok\n", "text/plain; charset=utf-8")
        first = wire(response, now=NOW, date=date)
        self.assertEqual(first, serialize(response, now=NOW, date=DateCache()))
        self.assertIs(wire(response, now=NOW + 0.5, date=date), first)

    def test_each_way_of_sending_apart(self) -> None:
        wire, date = WireCache(), DateCache()
        response = Response(200, b"x" * 2000, "text/html; charset=utf-8")
        for options in (
            {},
            {"head": True},
            {"keep_alive": False},
            {"announce_keep_alive": True},
            {"accept_encoding": "gzip"},
            {"accept_encoding": "br"},
        ):
            self.assertEqual(
                wire(response, now=NOW, date=date, **options),
                serialize(response, now=NOW, date=DateCache(), **options),
            )

    def test_next_second_new_date(self) -> None:
        wire, date = WireCache(), DateCache()
        response = Response(200, b"ok\n", "text/plain; charset=utf-8")
        first = wire(response, now=NOW, date=date)
        later = wire(response, now=NOW + 1, date=date)
        self.assertEqual(later, serialize(response, now=NOW + 1, date=DateCache()))
        self.assertNotEqual(later, first)

    def test_by_identity(self) -> None:
        """An equal response is another object: never given an entry that is not its own."""
        wire, date = WireCache(), DateCache()
        one = Response(200, b"one", "text/plain")
        self.assertEqual(wire(one, now=NOW, date=date), serialize(one, now=NOW, date=date))
        for n in range(100):
            other = Response(200, b"%d" % n, "text/plain")
            self.assertEqual(wire(other, now=NOW, date=date), serialize(other, now=NOW, date=date))

    def test_bounded(self) -> None:
        wire, date = WireCache(), DateCache()
        kept = [Response(200, b"%d" % n, "text/plain") for n in range(100)]
        for response in kept:
            wire(response, now=NOW, date=date)
        self.assertLessEqual(len(wire._entries), 32)
        wire(Response(200, b"y" * 20000, "text/plain"), now=NOW + 1, date=date)
        self.assertEqual(wire._entries, {})
