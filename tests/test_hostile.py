# -*- test-case-name: tests.test_hostile -*-
"""
Hostile clients, small and real: what the server does, not how fast (proof/hostile.py
measures the figures at full size under `make proof`).

- a client that never reads: the server stops reading its requests once the transport's
  write buffer is full (producer/consumer back-pressure), so it buffers at most one
  response for it, and drops it when it takes nothing for RequestTimeout;
- slowloris: connections trickling a byte at a time get 408 at RequestTimeout, even
  when they fill every MaxClients slot, and a fresh client is then served;
- clients that hang up mid-response, floods of pipelined requests, oversized requests.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.attacks import oversized_requests, send_while_reading
from tests.servers import split_responses, start_server
from tests.test_protocol import ChannelCase, RecordingSite
from twistedspy.http.parser import Request
from twistedspy.http.protocol import SEND_CHUNK, HTTPChannel
from twistedspy.http.response import Outcome, Response
from twistedspy.interfaces import IInfoModule
from twistedspy.query import Query
from twistedspy.report import RawBody

BIG = 400_000


class BigSite(RecordingSite):
    """Answers every request with BIG bytes that name the request."""

    def respond(self, request: Request, client: str, kept: object = None) -> Deferred[Outcome]:
        self.requests.append(request)
        body = (request.path.encode() + b".") * (BIG // (len(request.path) + 1))
        return succeed(Outcome(Response(200, body, "text/plain")))


class SlowReader(StringTransport):
    """
    A transport that behaves as Twisted's TCP transport does towards its producer:
    `pauseProducing` once more than 64 KiB wait to be sent, `resumeProducing` when the
    client has read them all. The client reads only when the test calls `drain`.
    """

    buffer_size = 65536

    def __init__(self) -> None:
        super().__init__()
        self.received = b""
        self.most_held = 0

    def write(self, data: bytes) -> None:
        super().write(data)
        self.most_held = max(self.most_held, len(self.value()))
        if self.producer is not None and len(self.value()) > self.buffer_size:
            self.producer.pauseProducing()

    def drain(self) -> None:
        self.received += self.value()
        self.clear()
        if self.producer is not None:
            self.producer.resumeProducing()


class BackPressureTests(ChannelCase):
    def connect_slow(self, **kwargs: float) -> tuple[HTTPChannel, SlowReader, BigSite]:
        self.connect(**kwargs)  # type: ignore[arg-type]
        site = BigSite()
        self.factory.site = site
        transport = SlowReader()
        channel = self.factory.buildProtocol(None)
        channel.makeConnection(transport)
        return channel, transport, site

    def test_full_buffer_stops_reading_requests(self) -> None:
        channel, transport, site = self.connect_slow()
        pipelined = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(20))
        channel.dataReceived(pipelined)
        # One response started; the other nineteen requests wait, unread, while the
        # client does not read.
        self.assertEqual(len(site.requests), 1)
        self.assertLessEqual(transport.most_held, 2 * SEND_CHUNK)
        for _ in range(1000):
            if len(site.requests) == 20 and not transport.value():
                break
            transport.drain()
        self.assertEqual([r.path for r in site.requests], [f"/{i}" for i in range(20)])
        self.assertLessEqual(transport.most_held, 2 * SEND_CHUNK)
        answers = split_responses(transport.received)
        self.assertEqual([status for status, _, _ in answers], [200] * 20)
        self.assertTrue(all(len(body) >= BIG - 10 for _, _, body in answers))
        self.assertTrue(answers[7][2].startswith(b"/7./7."))

    def test_client_that_stops_reading_is_dropped(self) -> None:
        channel, transport, _ = self.connect_slow(request_timeout=10)
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertFalse(transport.disconnecting)
        self.clock.advance(9)
        transport.drain()  # it read something: the clock starts again
        self.clock.advance(9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(transport.disconnecting)
        self.assertTrue(transport.disconnected)  # aborted, not waiting to flush

    def test_connection_close_waits_for_the_whole_response(self) -> None:
        channel, transport, _ = self.connect_slow()
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertFalse(transport.disconnecting)
        while not transport.disconnecting:
            transport.drain()
        transport.drain()
        self.assertIsNone(transport.producer)  # unregistered, or the close would never happen
        ((_, head, body),) = split_responses(transport.received)
        self.assertIn(b"Connection: close", head)
        self.assertEqual(len(body), BIG // 3 * 3)

    def test_request_line_a_byte_at_a_time_gets_408_in_time(self) -> None:
        """Slowloris: each byte must not restart RequestTimeout, in the request line too."""
        channel, transport = self.connect(request_timeout=10, request_line_timeout=10)
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX: aaaaaaaaaaaaaaaaaaaaaaa":
            if transport.disconnecting:
                break
            channel.dataReceived(bytes([byte]))
            self.clock.advance(1)
        self.assertEqual(self.statuses(transport), [b"408"])
        self.assertEqual(self.clock.seconds(), 10)

    def test_empty_lines_a_byte_at_a_time_get_408_in_time(self) -> None:
        channel, transport = self.connect(request_timeout=10)
        for _ in range(20):
            if transport.disconnecting:
                break
            channel.dataReceived(b"\n")
            self.clock.advance(1.5)
        self.assertTrue(transport.disconnecting)
        self.assertLessEqual(self.clock.seconds(), 10.5)

    def test_blocked_close_is_aborted_in_time(self) -> None:
        channel, transport, _ = self.connect_slow(keepalive=5)
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(100):
            transport.drain()
        # Idle after its answer: closed at KeepAliveTimeout, and then it reads nothing.
        self.clock.advance(5)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        self.clock.advance(5)
        self.assertTrue(transport.disconnected)


@implementer(IInfoModule)
class BigModule:
    name = "big"
    title = "Big"
    description = "A large page."

    def __init__(self) -> None:
        self.calls = 0

    def collect(self, query: Query) -> RawBody:
        self.calls += 1
        return RawBody(b"x" * BIG_PAGE, "text/plain; charset=utf-8")


BIG_PAGE = 1_000_000


def kernel_buffer_max(name: str) -> int:
    """The most a TCP socket buffer may grow to (tcp(7): tcp_rmem, tcp_wmem)."""
    return int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])


def connections_of(server: object) -> int:
    return len(server.service.factory.connections)  # type: ignore[attr-defined]


async def settle(condition: object, timeout: float = 30.0) -> None:
    """Wait, without blocking the reactor, until condition() holds (bounded)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        await deferToThread(time.sleep, 0.05)


class NeverReadingClientTests(TestCase):
    async def test_pipelined_big_pages_are_not_all_buffered(self) -> None:
        server = start_server(self, request_timeout=60.0)
        module = BigModule()
        server.service.modules["big"] = module
        client = socket.create_connection(("127.0.0.1", server.port))
        self.addCleanup(client.close)
        # What the kernel can hold in the two sockets' buffers, in responses, at most.
        in_kernel = (kernel_buffer_max("tcp_rmem") + kernel_buffer_max("tcp_wmem")) // BIG_PAGE
        count = in_kernel + 20
        request = b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n"
        client.sendall(request * count)
        # Wait until the server has stopped making progress on this client.
        last = -1
        while module.calls != last:
            last = module.calls
            await deferToThread(time.sleep, 0.5)
        # The kernel's socket buffers hold a few responses at most, and the server one.
        self.assertLessEqual(module.calls, in_kernel + 2)
        # The client now reads: it gets all 100, in order, nothing lost.
        client.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = await deferToThread(read_all, client)
        answers = split_responses(data)
        self.assertEqual(len(answers), count + 1)
        self.assertTrue(all(len(body) == BIG_PAGE for _, _, body in answers[:count]))
        self.assertEqual(module.calls, count)

    async def test_client_that_never_reads_is_dropped(self) -> None:
        server = start_server(self, request_timeout=1.0)
        server.service.modules["big"] = BigModule()
        client = socket.create_connection(("127.0.0.1", server.port))
        self.addCleanup(client.close)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        client.sendall(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n" * 10)
        await settle(lambda: connections_of(server) == 1)
        await settle(lambda: connections_of(server) == 0)
        self.assertEqual(connections_of(server), 0)
        reply = await server.request("GET", "/-/healthy")
        self.assertEqual(reply.status, 200)

    async def test_client_hanging_up_mid_response(self) -> None:
        server = start_server(self)
        server.service.modules["big"] = BigModule()
        for _ in range(5):
            client = socket.create_connection(("127.0.0.1", server.port))
            client.sendall(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
            await deferToThread(client.recv, 1000)
            client.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            client.close()  # with linger 0: a reset, mid-response
        await settle(lambda: connections_of(server) == 0)
        self.assertEqual(connections_of(server), 0)
        self.assertEqual((await server.request("GET", "/version")).status, 200)


def read_all(client: socket.socket) -> bytes:
    client.settimeout(60)
    chunks = []
    while chunk := client.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def trickle(port: int, stop_after: float) -> bytes:
    """Slowloris: a request a byte at a time, slower than any time-out; what came back."""
    request = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + b"a" * 1000
    with socket.create_connection(("127.0.0.1", port), timeout=stop_after) as conn:
        answer = b""
        try:
            for byte in request:
                conn.sendall(bytes([byte]))
                conn.settimeout(0.2)
                try:
                    answer += conn.recv(65536)
                except TimeoutError:
                    continue
                if answer:
                    break
            conn.settimeout(stop_after)
            while chunk := conn.recv(65536):
                answer += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
        return answer


class SlowlorisTests(TestCase):
    async def test_trickling_connections_get_408_and_free_their_slots(self) -> None:
        server = start_server(self, request_timeout=1.0, max_clients=4)
        attackers = [deferToThread(trickle, server.port, 30.0) for _ in range(4)]
        await settle(lambda: connections_of(server) == 4)
        # Every slot is held by a trickler: a fresh client waits in the backlog until
        # RequestTimeout ends them, and is then served.
        fresh = server.request("GET", "/-/healthy")
        answers = [await attacker for attacker in attackers]
        reply = await fresh
        self.assertEqual(reply.status, 200)
        for answer in answers:
            self.assertTrue(answer.startswith(b"HTTP/1.1 408 "), answer[:40])
        self.assertIn("status=408", server.journal_text())


class FloodTests(TestCase):
    async def test_thousands_of_pipelined_requests_answered_in_order(self) -> None:
        server = start_server(self)
        count = 3000
        requests = b"".join(
            b"GET /-/healthy?n=%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % i for i in range(count)
        )
        data = await server.exchange(requests)
        answers = split_responses(data)
        self.assertEqual(len(answers), count)
        self.assertEqual({status for status, _, _ in answers}, {200})

    async def test_oversized_everything_is_refused_and_costs_only_that_connection(self) -> None:
        server = start_server(self)
        for _, request, status in oversized_requests(100_000):
            data = await deferToThread(send_while_reading, server.port, request)
            self.assertTrue(data.startswith(b"HTTP/1.1 " + status + b" "), (status, data[:60]))
        self.assertEqual((await server.request("GET", "/version")).status, 200)
