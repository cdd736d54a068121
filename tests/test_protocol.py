# -*- test-case-name: tests.test_protocol -*-
"""The connection on its own: framing, persistence, pipelining and time-outs.

A `StringTransport` stands in for the socket and a `Clock` for time, so time-outs are
tested by advancing the clock, never by sleeping.
"""

from __future__ import annotations

import gc
import re

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from twistedspy.http.parser import HTTPError, Request, RequestAssembler, RequestParser
from twistedspy.http.protocol import (
    SWEEP_INTERVAL,
    ConnectionState,
    HTTPChannel,
    HTTPFactory,
    SpareParsers,
    address_share,
)
from twistedspy.http.response import Outcome, Response
from twistedspy.settings import Settings

DEFAULTS = Settings()


class RecordingSite:
    """Answers each request with its path, now or when the test says."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.held: list[Deferred[None]] = []
        self.hold = False

    def connection_login(self) -> object:
        return None

    def respond(self, request: Request, client: str, kept: object = None) -> Deferred[Outcome]:
        self.requests.append(request)
        outcome = Outcome(Response(200, request.path.encode() + b"|" + request.body, "text/plain"))
        if self.hold:
            gate: Deferred[None] = Deferred()
            self.held.append(gate)
            return gate.addCallback(lambda _: outcome)
        return succeed(outcome)

    def error_response(self, error: HTTPError) -> Response:
        return Response(error.status, error.message.encode(), "text/plain", close=True)

    def journal_path(self, request: Request) -> str:
        return request.path


class ChannelCase(TestCase):
    def connect(
        self,
        *,
        max_clients: int = 10,
        request_timeout: float = 10,
        keepalive: float = 5,
        request_line_timeout: float = DEFAULTS.request_line_timeout,
        max_clients_per_address: int | None = None,
    ) -> tuple[HTTPChannel, StringTransport]:
        self.clock = Clock()
        self.site = RecordingSite()
        self.factory = HTTPFactory(
            self.site,
            self.clock,
            max_clients=max_clients,
            max_clients_per_address=max_clients_per_address,
            request_timeout=request_timeout,
            request_line_timeout=request_line_timeout,
            keepalive_timeout=keepalive,
            log=Logger(),
        )
        return self.another()

    def another(self, host: str = "127.0.0.1") -> tuple[HTTPChannel, StringTransport]:
        """One more connection to the same factory, from `host`."""
        channel = self.factory.buildProtocol(IPv4Address("TCP", host, 5000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, 5000))
        channel.makeConnection(transport)
        return channel, transport

    def statuses(self, transport: StringTransport) -> list[bytes]:
        # Bodies here never contain a status line, so every match is a response.
        return re.findall(rb"HTTP/1\.1 (\d{3}) ", transport.value())


class ProtocolTests(ChannelCase):
    def test_keep_alive_http11(self) -> None:
        channel, transport = self.connect()
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(self.statuses(transport), [b"200"])
        self.assertFalse(transport.disconnecting)
        self.assertNotIn(b"Connection: close", transport.value())

    def test_http11_connection_close(self) -> None:
        channel, transport = self.connect()
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertIn(b"Connection: close", transport.value())
        self.assertTrue(transport.disconnecting)

    def test_http10_closes_by_default(self) -> None:
        channel, transport = self.connect()
        channel.dataReceived(b"GET /a HTTP/1.0\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertTrue(transport.disconnecting)

    def test_http10_keep_alive_is_announced(self) -> None:
        channel, transport = self.connect()
        channel.dataReceived(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        self.assertIn(b"Connection: keep-alive\r\n", transport.value())
        self.assertFalse(transport.disconnecting)

    def test_bare_lf_line_ends(self) -> None:
        channel, transport = self.connect()
        channel.dataReceived(b"GET /a HTTP/1.1\nHost: x\n\n")
        self.assertEqual(self.statuses(transport), [b"200"])

    def test_head_has_length_but_no_body(self) -> None:
        channel, transport = self.connect()
        channel.dataReceived(b"HEAD /abc HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = transport.value().partition(b"\r\n\r\n")
        self.assertIn(b"Content-Length: 5\r\n", head)
        self.assertEqual(body, b"")

    def test_body_in_raw_mode_split_anywhere(self) -> None:
        channel, transport = self.connect()
        data = (
            b"POST /m HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
            b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        for i in range(len(data)):
            channel.dataReceived(data[i : i + 1])
        self.assertEqual(
            [(r.path, r.body) for r in self.site.requests],
            [("/m", b"hello world"), ("/next", b"")],
        )
        self.assertEqual(self.statuses(transport), [b"200", b"200"])

    def test_pipelined_answered_in_order_while_pending(self) -> None:
        channel, transport = self.connect()
        self.site.hold = True
        channel.dataReceived(
            b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(3))
        )
        # Only the first is being answered; the rest wait, unread.
        self.assertEqual(len(self.site.requests), 1)
        self.assertEqual(transport.producerState, "paused")
        self.site.held[0].callback(None)
        self.assertEqual(len(self.site.requests), 2)
        self.site.held[1].callback(None)
        self.site.held[2].callback(None)
        bodies = [
            part.split(b"\r\n\r\n", 1)[1][:2] for part in transport.value().split(b"HTTP/1.1 ")[1:]
        ]
        self.assertEqual(bodies, [b"/0", b"/1", b"/2"])
        self.assertEqual(transport.producerState, "producing")

    def test_request_timeout_gives_408_and_closes(self) -> None:
        channel, transport = self.connect(request_timeout=10, keepalive=5)
        channel.dataReceived(b"GET /slow HTTP/1.1\r\n")
        self.clock.advance(9)
        channel.dataReceived(b"Host: x\r\n")  # trickling bytes do not reset the clock
        self.assertEqual(transport.value(), b"")
        self.clock.advance(1)
        self.assertEqual(self.statuses(transport), [b"408"])
        self.assertTrue(transport.disconnecting)

    def test_slow_partial_line_also_times_out(self) -> None:
        channel, transport = self.connect(request_timeout=10)
        channel.dataReceived(b"GE")
        self.clock.advance(10)
        self.assertEqual(self.statuses(transport), [b"408"])

    def test_idle_keep_alive_closes_silently(self) -> None:
        channel, transport = self.connect(keepalive=5)
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        answered = transport.value()
        self.clock.advance(4.9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.2)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), answered)

    def test_fresh_connection_that_sends_nothing_is_closed(self) -> None:
        _, transport = self.connect(keepalive=5)
        self.clock.advance(5)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")

    def test_slow_module_is_not_cut_by_request_timeout(self) -> None:
        channel, transport = self.connect(request_timeout=2)
        self.site.hold = True
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        self.clock.advance(30)
        self.assertFalse(transport.disconnecting)
        self.site.held[0].callback(None)
        self.assertEqual(self.statuses(transport), [b"200"])

    def assert_error_and_close(self, data: bytes, status: bytes) -> None:
        channel, transport = self.connect()
        channel.dataReceived(data)
        self.assertEqual(self.statuses(transport), [status])
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.site.requests, [])

    def test_request_line_too_long_414(self) -> None:
        self.assert_error_and_close(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n", b"414")

    def test_request_line_too_long_without_line_end_414(self) -> None:
        self.assert_error_and_close(b"GET /" + b"a" * 9000, b"414")

    def test_header_line_too_long_431(self) -> None:
        self.assert_error_and_close(
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", b"431"
        )

    def test_too_many_fields_431(self) -> None:
        fields = b"".join(b"X-%d: y\r\n" % i for i in range(101))
        self.assert_error_and_close(b"GET / HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n", b"431")

    def test_body_too_large_413_before_reading_it(self) -> None:
        self.assert_error_and_close(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n", b"413"
        )

    def test_transfer_encoding_501(self) -> None:
        self.assert_error_and_close(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"501"
        )

    def test_http2_505(self) -> None:
        self.assert_error_and_close(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", b"505")

    def test_junk_400_and_nothing_after_it_is_read(self) -> None:
        channel, transport = self.connect()
        channel.dataReceived(
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        self.assertEqual(self.statuses(transport), [b"400"])
        self.assertEqual(self.site.requests, [])

    def test_error_after_good_request_keeps_order(self) -> None:
        channel, transport = self.connect()
        channel.dataReceived(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nBAD\r\n\r\n")
        self.assertEqual(self.statuses(transport), [b"200", b"400"])

    def test_disconnect_while_pending_writes_nothing(self) -> None:
        channel, transport = self.connect()
        self.site.hold = True
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        channel.connectionLost(None)
        self.site.held[0].callback(None)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.factory.connections, set())


class FactoryTests(TestCase):
    def test_close_all_waits_for_pending_response(self) -> None:
        clock = Clock()
        site = RecordingSite()
        site.hold = True
        factory = HTTPFactory(
            site,
            clock,
            max_clients=5,
            request_timeout=10,
            request_line_timeout=3,
            keepalive_timeout=5,
            log=Logger(),
        )
        busy = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        busy_transport = StringTransport()
        busy.makeConnection(busy_transport)
        idle = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 2))
        idle_transport = StringTransport()
        idle.makeConnection(idle_transport)
        busy.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")

        closed = factory.close_all(grace=5)
        self.assertTrue(idle_transport.disconnecting)
        self.assertFalse(busy_transport.disconnecting)
        idle.connectionLost(None)
        site.held[0].callback(None)
        self.assertIn(b"Connection: close", busy_transport.value())
        self.assertTrue(busy_transport.disconnecting)
        self.assertNoResult(closed)
        busy.connectionLost(None)
        self.successResultOf(closed)

    def test_max_clients_pauses_and_clamps_the_port(self) -> None:
        clock = Clock()
        factory = HTTPFactory(
            RecordingSite(),
            clock,
            max_clients=2,
            request_timeout=10,
            request_line_timeout=3,
            keepalive_timeout=5,
            log=Logger(),
        )

        class Port:
            numberAccepts = 100  # noqa: N815 - tcp.Port's attribute
            reading = True
            connected = True

            def stopReading(self) -> None:
                self.reading = False

            def startReading(self) -> None:
                self.reading = True

        port = Port()
        factory.ports.append(port)
        channels = []
        for n in range(2):
            channel = factory.buildProtocol(IPv4Address("TCP", f"127.0.0.{n + 1}", n))
            channel.makeConnection(StringTransport())
            channels.append(channel)
        self.assertFalse(port.reading)
        clock.advance(0)
        self.assertFalse(port.reading)
        channels[0].connectionLost(None)
        clock.advance(0)
        self.assertTrue(port.reading)
        self.assertEqual(port.numberAccepts, 1)


class HalfCloseTests(ChannelCase):
    def test_answers_survive_the_client_closing_its_side(self) -> None:
        channel, transport = self.connect()
        self.site.hold = True
        channel.dataReceived(
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        channel.readConnectionLost()
        self.assertFalse(transport.disconnecting)
        self.site.held[0].callback(None)
        self.assertFalse(transport.disconnecting)
        self.site.held[1].callback(None)
        self.assertEqual(self.statuses(transport), [b"200", b"200"])
        self.assertTrue(transport.disconnecting)

    def test_half_close_when_idle_closes(self) -> None:
        channel, transport = self.connect()
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        channel.readConnectionLost()
        self.assertEqual(self.statuses(transport), [b"200"])
        self.assertTrue(transport.disconnecting)


class StateTests(ChannelCase):
    def test_states_through_requests(self) -> None:
        channel, _ = self.connect()
        self.assertIs(channel.state, ConnectionState.IDLE)
        channel.dataReceived(b"POST /m HTTP/1.1\r\nHost: x\r\n")
        self.assertIs(channel.state, ConnectionState.READING_HEAD)
        channel.dataReceived(b"Content-Length: 2\r\n\r\na")
        self.assertIs(channel.state, ConnectionState.READING_BODY)
        self.site.hold = True
        channel.dataReceived(b"b")
        self.assertIs(channel.state, ConnectionState.DISPATCHED)
        self.site.held[0].callback(None)
        self.assertIs(channel.state, ConnectionState.IDLE)
        channel.dataReceived(b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.site.held[1].callback(None)
        self.assertIs(channel.state, ConnectionState.CLOSING)
        channel.connectionLost(None)
        self.assertIs(channel.state, ConnectionState.CLOSED)

    def test_bytes_read_while_answering_wait_their_turn(self) -> None:
        """What arrives while a response is prepared (TLS may hand it on) is kept, in order."""
        channel, transport = self.connect()
        self.site.hold = True
        channel.dataReceived(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\n")
        channel.dataReceived(b"Host: x\r\n\r\n")
        self.assertEqual(len(self.site.requests), 1)
        self.site.held[0].callback(None)
        self.site.held[1].callback(None)
        self.assertEqual([r.path for r in self.site.requests], ["/1", "/2"])
        self.assertEqual(self.statuses(transport), [b"200", b"200"])

    def test_repeated_authorization_400(self) -> None:
        channel, transport = self.connect()
        channel.dataReceived(
            b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YTpi\r\n"
            b"Authorization: Basic Yzpk\r\n\r\n"
        )
        self.assertEqual(self.statuses(transport), [b"400"])
        self.assertIn(b"more than one Authorization", transport.value())
        self.assertEqual(self.site.requests, [])


class RequestLineDeadlineTests(ChannelCase):
    """A new connection has RequestLineTimeout to send its request line, then 408."""

    def test_part_of_a_request_line_gets_408_at_the_deadline(self) -> None:
        channel, transport = self.connect(request_line_timeout=3, request_timeout=10)
        channel.dataReceived(b"G")
        self.clock.advance(2.9)
        self.assertEqual(transport.value(), b"")
        self.clock.advance(0.1)
        self.assertEqual(self.statuses(transport), [b"408"])
        self.assertIn(b"request line did not arrive within 3 s", transport.value())
        self.assertTrue(transport.disconnecting)

    def test_a_request_line_a_byte_at_a_time_gets_408_at_the_deadline(self) -> None:
        channel, transport = self.connect(request_line_timeout=3, request_timeout=10)
        for byte in b"GET / HTTP/1.1\r\n":
            if transport.disconnecting:
                break
            channel.dataReceived(bytes([byte]))
            self.clock.advance(0.5)
        self.assertEqual(self.statuses(transport), [b"408"])
        self.assertEqual(self.clock.seconds(), 3)

    def test_nothing_sent_is_closed_silently_at_the_deadline(self) -> None:
        _, transport = self.connect(request_line_timeout=3, keepalive=5)
        self.clock.advance(2.9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")

    def test_request_line_in_time_leaves_request_timeout(self) -> None:
        channel, transport = self.connect(request_line_timeout=3, request_timeout=10)
        self.clock.advance(1)
        channel.dataReceived(b"GET / HTTP/1.1\r\nHo")
        self.clock.advance(9.9)
        self.assertEqual(transport.value(), b"")
        self.clock.advance(0.1)  # RequestTimeout, counted from the first byte
        self.assertEqual(self.statuses(transport), [b"408"])
        self.assertIn(b"not completed in time", transport.value())

    def test_line_whole_in_later_pieces_leaves_request_timeout(self) -> None:
        channel, transport = self.connect(request_line_timeout=3, request_timeout=10)
        channel.dataReceived(b"GET / HTT")
        self.clock.advance(2)
        channel.dataReceived(b"P/1.1\r\n")
        self.clock.advance(7.9)
        self.assertEqual(transport.value(), b"")
        channel.dataReceived(b"Host: x\r\n\r\n")
        self.assertEqual(self.statuses(transport), [b"200"])

    def test_shorter_request_timeout_still_applies(self) -> None:
        channel, transport = self.connect(request_line_timeout=5, request_timeout=2)
        self.clock.advance(1)
        channel.dataReceived(b"G")
        self.clock.advance(2)
        self.assertEqual(self.statuses(transport), [b"408"])
        self.assertIn(b"not completed in time", transport.value())

    def test_only_the_first_request_line_has_the_deadline(self) -> None:
        channel, transport = self.connect(request_line_timeout=3, request_timeout=10)
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nG")
        self.clock.advance(9.9)
        self.assertEqual(self.statuses(transport), [b"200"])
        self.clock.advance(0.1)
        self.assertEqual(self.statuses(transport), [b"200", b"408"])

    def test_deadline_runs_from_when_a_waiting_connection_is_served(self) -> None:
        first, _ = self.connect(request_line_timeout=3, max_clients_per_address=1)
        _, transport = self.another()
        self.clock.advance(60)
        self.assertFalse(transport.disconnecting)
        first.connectionLost(None)
        self.clock.advance(2.9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)


class SweepTests(ChannelCase):
    """Time-outs are deadlines that one sweep on the factory checks (docs/architecture.md)."""

    def test_connections_share_one_timer(self) -> None:
        self.connect(max_clients=100)
        for n in range(50):
            channel, _ = self.another(f"127.0.0.{n % 4 + 1}")
            channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        self.clock.advance(0)  # the accept clamp's call
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_no_timer_without_connections(self) -> None:
        channel, _ = self.connect()
        self.assertNotEqual(self.clock.getDelayedCalls(), [])
        channel.connectionLost(None)
        self.clock.advance(0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        # And it starts again with the next connection.
        _, transport = self.another()
        self.clock.advance(DEFAULTS.request_line_timeout + SWEEP_INTERVAL)
        self.assertTrue(transport.disconnecting)

    def test_a_deadline_between_sweeps_is_kept_at_the_next(self) -> None:
        self.connect(keepalive=5)
        self.clock.advance(SWEEP_INTERVAL / 2)
        channel, transport = self.another()
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        # In steps: a Clock runs every call due within one advance at its end time.
        self.clock.pump([SWEEP_INTERVAL / 2] * round(5 / (SWEEP_INTERVAL / 2)))
        self.assertFalse(transport.disconnecting)
        self.clock.advance(SWEEP_INTERVAL / 2)
        self.assertTrue(transport.disconnecting)

    def test_a_connection_closed_by_the_sweep_leaves_it_consistent(self) -> None:
        transports = [self.connect(max_clients=40, request_line_timeout=3)[1]]
        transports += [self.another()[1] for _ in range(5)]
        self.clock.advance(3)
        self.assertTrue(all(t.disconnecting for t in transports))
        for channel in list(self.factory.connections):
            channel.connectionLost(None)
        self.clock.advance(0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_failing_time_out_does_not_stop_the_sweep(self) -> None:
        _, first = self.connect(request_line_timeout=3)
        real = HTTPChannel.time_out

        def fail_once(channel: HTTPChannel) -> None:
            self.patch(HTTPChannel, "time_out", real)
            raise RuntimeError("broken")

        self.patch(HTTPChannel, "time_out", fail_once)
        self.clock.advance(3)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertTrue(first.disconnecting)
        self.clock.advance(1)
        _, second = self.another()
        self.clock.advance(3)
        self.assertTrue(second.disconnecting)


class IdleFootprintTests(ChannelCase):
    """What an idle connection holds, thousands of them at once (docs/performance.md)."""

    def test_every_attribute_in_a_slot(self) -> None:
        channel, _ = self.connect()
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(vars(channel), {})

    def test_an_idle_connection_holds_no_parser(self) -> None:
        channel, transport = self.connect()
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(channel.state, ConnectionState.IDLE)
        held = gc.get_referents(channel)
        self.assertFalse([o for o in held if isinstance(o, (RequestParser, RequestAssembler))])
        # The next request gets a new one.
        channel.dataReceived(b"GET /b HTTP/1.1\r\n")
        channel.dataReceived(b"Host: x\r\n\r\n")
        self.assertEqual(self.statuses(transport), [b"200", b"200"])

    def test_spare_parsers_hold_no_bytes_and_are_few(self) -> None:
        channel, transport = self.connect()
        # Pipelined: the parser keeps the second request's bytes while the first is answered.
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        self.assertEqual(self.statuses(transport), [b"200", b"200"])
        spares = self.factory.parsers._spares
        self.assertEqual(len(spares), 1)
        self.assertTrue(spares[0].between_requests)
        self.assertEqual(spares[0]._data, b"")
        # Taken by the next request on any connection, and parsing as a new one would.
        other, other_transport = self.another()
        other.dataReceived(b"POST /m HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nab")
        self.assertEqual(spares, [])
        other.dataReceived(b"c")
        self.assertEqual(self.site.requests[-1].body, b"abc")
        self.assertEqual(self.statuses(other_transport), [b"200"])
        self.assertEqual(len(spares), 1)
        # However many connections finish at once, a bounded number is kept.
        parsers = [self.factory.parsers.take() for _ in range(2 * SpareParsers.KEPT)]
        for parser in parsers:
            self.factory.parsers.give_back(parser)
        self.assertEqual(len(spares), SpareParsers.KEPT)

    def test_a_request_cut_between_reads_keeps_its_parser(self) -> None:
        channel, transport = self.connect()
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HT")
        self.assertEqual(channel.state, ConnectionState.READING_HEAD)
        channel.dataReceived(b"TP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual([r.path for r in self.site.requests], ["/a", "/b"])
        self.assertEqual(self.statuses(transport), [b"200", b"200"])


class PerAddressTests(ChannelCase):
    """One address is served at most its share of MaxClients; its other connections wait."""

    def test_default_share_is_a_quarter_of_max_clients(self) -> None:
        self.connect(max_clients=64)
        self.assertEqual(self.factory.max_clients_per_address, 16)
        self.connect(max_clients=3)
        self.assertEqual(self.factory.max_clients_per_address, 1)
        self.connect(max_clients=8, max_clients_per_address=5)
        self.assertEqual(self.factory.max_clients_per_address, 5)

    def test_over_its_share_a_connection_waits_unread_then_is_served(self) -> None:
        first, _ = self.connect(max_clients=8, max_clients_per_address=2)
        self.another()
        third, transport = self.another()
        self.assertIs(third.state, ConnectionState.QUEUED)
        self.assertEqual(transport.producerState, "paused")
        self.assertEqual(self.factory.free_slots, 6)
        # No time-out runs while it waits, however long.
        self.clock.advance(600)
        self.assertFalse(transport.disconnecting)
        first.connectionLost(None)
        self.assertIs(third.state, ConnectionState.IDLE)
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(self.factory.free_slots, 6)
        third.dataReceived(b"GET /third HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(self.statuses(transport), [b"200"])

    def test_other_addresses_are_served_meanwhile(self) -> None:
        self.connect(max_clients=8, max_clients_per_address=1)
        waiting, _ = self.another("127.0.0.1")
        other, transport = self.another("127.0.0.2")
        self.assertIs(waiting.state, ConnectionState.QUEUED)
        self.assertIs(other.state, ConnectionState.IDLE)
        other.dataReceived(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(self.statuses(transport), [b"200"])

    def test_waiting_in_order(self) -> None:
        first, _ = self.connect(max_clients=8, max_clients_per_address=1)
        second, _ = self.another()
        third, _ = self.another()
        first.connectionLost(None)
        self.assertEqual(
            (second.state, third.state), (ConnectionState.IDLE, ConnectionState.QUEUED)
        )

    def test_a_waiting_connection_that_ends_leaves_the_queue(self) -> None:
        first, _ = self.connect(max_clients=8, max_clients_per_address=1)
        second, _ = self.another()
        second.connectionLost(None)
        first.connectionLost(None)
        self.assertEqual(self.factory.connections, set())
        self.assertEqual(self.factory.free_slots, 8)

    def test_bytes_of_a_waiting_connection_are_answered_once_it_is_served(self) -> None:
        first, _ = self.connect(max_clients=8, max_clients_per_address=1)
        second, transport = self.another()
        second.dataReceived(b"GET /early HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(transport.value(), b"")
        first.connectionLost(None)
        self.assertEqual(self.statuses(transport), [b"200"])

    def test_past_max_clients_waiting_a_connection_is_closed(self) -> None:
        self.connect(max_clients=2, max_clients_per_address=1)
        waiting = [self.another()[1] for _ in range(2)]
        _, refused = self.another()
        self.assertFalse(any(t.disconnecting for t in waiting))
        self.assertTrue(refused.disconnecting)
        self.assertEqual(refused.value(), b"")

    def test_shutdown_closes_waiting_connections(self) -> None:
        self.connect(max_clients=8, max_clients_per_address=1)
        _, transport = self.another()
        self.factory.close_all(grace=5)
        self.assertTrue(transport.disconnecting)

    def test_address_share(self) -> None:
        self.assertEqual(address_share("192.0.2.7"), "192.0.2.7")
        self.assertEqual(address_share("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64")
        self.assertEqual(address_share("2001:db8:1:2::9"), "2001:db8:1:2::/64")
        self.assertNotEqual(address_share("2001:db8:1:3::9"), "2001:db8:1:2::/64")
        self.assertEqual(address_share("::ffff:192.0.2.7"), "192.0.2.7")
        self.assertEqual(address_share("None"), "None")
