# -*- test-case-name: tests.test_protocol -*-
"""The connection: a thin `LineReceiver` that drives the sans-IO request parser.

It owns only what belongs to a connection: framing (lines, then a raw body), time-outs,
persistence, answering pipelined requests in order, and the limit on connections served
at once. What a request means is the dispatcher's business; what it looks like on the
wire is the parser's and the response writer's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IProtocolNegotiationFactory,
    IPushProducer,
)
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from typing_extensions import override
from zope.interface import implementer

from twistedspy.events import keeps, record, record_fields
from twistedspy.http.parser import MAX_LINE, HTTPError, Request, RequestParser, RequestTimeout
from twistedspy.http.response import DateCache, Outcome, Response, serialize
from twistedspy.http.stats import RequestStats

if TYPE_CHECKING:
    from twisted.internet.interfaces import (
        IAddress,
        IConsumer,
        IDelayedCall,
        IReactorTime,
        ITCPTransport,
    )


#: header fields whose values the journal never shows
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


class Site(Protocol):
    """The dispatcher, as the connection sees it."""

    def respond(self, request: Request, client: str) -> Outcome | Deferred[Outcome]: ...
    def error_response(self, error: HTTPError) -> Response: ...
    def journal_path(self, request: Request) -> str: ...


#: Bytes of a response handed to the transport at a time. The transport pauses us once its
#: buffer holds more than 64 KiB and resumes us only when it has passed all of it to the
#: kernel, so a client that does not read holds at most this much, twice, in the server.
SEND_CHUNK = 65536


@implementer(IPushProducer)
class _WriteBackPressure:
    """
    What the transport tells a channel about its write buffer (Twisted's producer and
    consumer: `pauseProducing` when the buffer is full, `resumeProducing` once drained).

    A separate object, because the channel's own pause/resume (LineReceiver's) mean
    "stop/start reading", which a pending response also needs: the channel combines both
    reasons itself.
    """

    def __init__(self, channel: HTTPChannel) -> None:
        self._channel = channel

    def pauseProducing(self) -> None:
        self._channel.write_blocked()

    def resumeProducing(self) -> None:
        self._channel.write_drained()

    def stopProducing(self) -> None:
        """The connection is gone; connectionLost does the rest."""


class InternalServerError(HTTPError):
    """The dispatcher itself failed: a bug, answered as 500 and journalled."""

    status = 500
    reason = "Internal Server Error"
    default_message = "The server failed to answer this request; the journal has the details."
    close = False


@implementer(IHalfCloseableProtocol)
class HTTPChannel(LineReceiver, TimeoutMixin):
    """One client connection, serving its requests one at a time, in order."""

    # RFC 9112 §2.2: a recipient MAY accept a bare LF as a line terminator; one trailing
    # CR is stripped in lineReceived and the parser rejects any other CR.
    delimiter = b"\n"
    # The longest line the parser allows, plus its CR; LineReceiver then hands longer ones
    # to lineLengthExceeded, which answers 414 or 431 instead of dropping the connection.
    MAX_LENGTH = MAX_LINE + 1

    factory: HTTPFactory

    def __init__(self, client: str) -> None:
        self.client = client
        self._parser = RequestParser()
        self._body_needed = 0
        self._body_parts: list[bytes] = []
        self._body_received = 0
        self._pending: Deferred[Outcome] | None = None
        # The response being handed to the transport, SEND_CHUNK at a time, and how far.
        self._outgoing = b""
        self._offset = 0
        self._keep_alive_after = False
        # The transport's write buffer is full: the client is not reading.
        self._blocked = False
        self._registered = False
        # The first bytes of the next request have arrived (and its RequestTimeout runs).
        self._request_begun = False
        self._closing = False
        self._close_when_idle = False
        self._read_closed = False
        self.lost = False

    @property
    def consumer(self) -> IConsumer:
        """The transport, as the consumer of what the channel writes."""
        assert self.transport is not None
        return cast("IConsumer", self.transport)

    @property
    def link(self) -> ITCPTransport:
        """The transport, typed: every stream transport Twisted gives us is a TCP one."""
        assert self.transport is not None
        return cast("ITCPTransport", self.transport)

    # -- connection life

    @override
    def connectionMade(self) -> None:
        self.setTimeout(self.factory.keepalive_timeout)
        self.consumer.registerProducer(_WriteBackPressure(self), True)
        self._registered = True
        self.factory.connection_opened(self)

    @override
    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost = True
        self._outgoing = b""
        self.setTimeout(None)
        self.factory.connection_closed(self)

    # IHalfCloseableProtocol: a client may send its requests and then shut down its side
    # (`nc -N`, some HTTP/1.0 clients). Without this, Twisted would close the whole
    # connection at that end of input and drop the answers still to be written.
    def readConnectionLost(self) -> None:
        self._read_closed = True
        self.close_when_idle()

    def writeConnectionLost(self) -> None:
        self.close_when_idle()

    def close_when_idle(self) -> None:
        """Close now if no response is being prepared, else right after it is written."""
        self._close_when_idle = True
        if self._pending is None and not self._outgoing and not self._closing:
            self._close()

    def _close(self) -> None:
        """Close once what the transport holds is written; abort if the client won't read it."""
        self._closing = True
        if self._registered:
            # abstract.FileDescriptor.loseConnection: with a producer registered, the
            # connection is not closed until the producer is unregistered.
            self._registered = False
            self.consumer.unregisterProducer()
        self.link.loseConnection()
        # A client that never reads its answer must not hold the connection for ever.
        self.setTimeout(self.factory.keepalive_timeout)

    # -- time-outs (TimeoutMixin)

    @override
    def callLater(self, period: float, func: Callable[[], object]) -> IDelayedCall:
        # The factory's clock, not the global reactor: tests drive time with a Clock.
        return self.factory.clock.callLater(period, func)

    @override
    def timeoutConnection(self) -> None:
        if self._closing or self._blocked or self._outgoing:
            # Closing, or answering, and the client has not taken our bytes in time.
            self.link.abortConnection()
        elif self._parser.in_progress or not self.line_mode or self._buffer:
            # Part of a request has arrived (perhaps not one whole line yet).
            self._fail(RequestTimeout())
        else:
            # An idle keep-alive connection ends silently (RFC 9112 §9.8).
            self._close()

    # -- receiving

    @override
    def dataReceived(self, data: bytes) -> None:
        if data and not self._request_begun and self._pending is None and self.line_mode:
            # The first bytes of a request: from now it has RequestTimeout to arrive whole,
            # however slowly it trickles in. Not "the parser is in progress": that starts
            # only once the request line is whole, so a request line sent a byte at a time
            # (slowloris) would restart the clock with every byte.
            self._request_begun = True
            self.setTimeout(self.factory.request_timeout)
        super().dataReceived(data)

    @override
    def lineReceived(self, line: bytes) -> None:
        if self._closing:
            return
        if line.endswith(b"\r"):
            line = line[:-1]
        try:
            result = self._parser.line_received(line)
        except HTTPError as error:
            self._fail(error)
            return
        if isinstance(result, Request):
            self._dispatch(result)
        elif result is not None:
            self._body_needed = result
            self._body_parts = []
            self._body_received = 0
            self.setRawMode()

    @override
    def rawDataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        missing = self._body_needed - self._body_received
        part, rest = data[:missing], data[missing:]
        self._body_parts.append(part)
        self._body_received += len(part)
        if self._body_received < self._body_needed:
            return
        body = b"".join(self._body_parts)
        self._body_parts = []
        try:
            request = self._parser.body_received(body)
        except HTTPError as error:
            self._fail(error)
            return
        self._dispatch(request)
        # Only the rest of one read goes back through line mode: never a large buffer,
        # whose line splitting would cost the square of its size.
        self.setLineMode(rest)

    @override
    def lineLengthExceeded(self, line: bytes) -> None:
        self._fail(self._parser.line_too_long())

    # -- answering

    def _dispatch(self, request: Request) -> None:
        self.setTimeout(None)
        self._request_begun = False
        started = time.monotonic()
        self._journal_headers(request)
        pending = self.factory.site.respond(request, self.client)
        if isinstance(pending, Outcome):
            # Ready at once: written before the next line is read, without a Deferred.
            try:
                self._write(pending, request, started)
            except Exception:
                self._internal_error(Failure(), request, started)
            return
        if not pending.called:
            # Stop reading until this one is answered: pipelined requests wait in the
            # buffer (and then in the kernel), and are answered in order (RFC 9112
            # §9.3.2). An answer ready at once is written before the next line is read,
            # so it needs no pause (and spares two epoll_ctl calls a request).
            self.pauseProducing()
        self._pending = pending
        pending.addCallback(self._write, request, started)
        pending.addErrback(self._internal_error, request, started)

    def _journal_headers(self, request: Request) -> None:
        """The `headers` event, which the journal keeps in verbose mode only (SPEC §5)."""
        if not keeps(self.factory.log, "headers"):
            return
        fields: dict[str, object] = {"client": self.client}
        fields["path"] = self.factory.site.journal_path(request)
        for name, _value in request.headers:
            if name in fields:
                continue
            # Credentials never reach the journal (SPEC §3).
            secret = name in SECRET_HEADERS
            fields[name] = "***" if secret else ", ".join(request.header_values(name))
        record_fields(self.factory.log, "headers", fields)

    def _internal_error(self, failure: Failure, request: Request, started: float) -> None:
        self.factory.log.failure("response failed", failure)
        error = InternalServerError()
        outcome = Outcome(self.factory.site.error_response(error))
        self._write(outcome, request, started)

    def _write(self, outcome: Outcome, request: Request, started: float) -> None:
        self._pending = None
        if self.lost:
            return
        response = self.factory.with_extra_headers(outcome.response)
        keep_alive = request.keep_alive and not response.close
        if self._close_when_idle and not (self._read_closed and self._buffer):
            # Shutting down, or the client has finished sending: this is the last answer,
            # unless requests it sent before closing its side are still waiting.
            keep_alive = False
        data = serialize(
            response,
            now=self.factory.clock.seconds(),
            date=self.factory.date,
            head=request.method == "HEAD",
            keep_alive=keep_alive,
            announce_keep_alive=keep_alive and request.version == (1, 0),
            accept_encoding=request.header("accept-encoding"),
        )
        seconds = time.monotonic() - started
        self.factory.stats.observe(request.path, response.status, seconds)
        record(
            self.factory.log,
            "request",
            client=self.client,
            user=outcome.user or "-",
            method=request.method,
            path=self.factory.site.journal_path(request),
            status=response.status,
            bytes=len(data),
            ms=round(seconds * 1000, 1),
        )
        self._outgoing, self._offset, self._keep_alive_after = data, 0, keep_alive
        self._send_more()

    def _send_more(self) -> None:
        """Hand the response to the transport a chunk at a time, while it has room."""
        while self._offset < len(self._outgoing) and not self._blocked:
            chunk = self._outgoing[self._offset : self._offset + SEND_CHUNK]
            self._offset += len(chunk)
            # May call write_blocked() before it returns.
            self.link.write(chunk)
        if self._offset < len(self._outgoing):
            # The client has RequestTimeout to take each chunk, or the connection is dropped.
            self.setTimeout(self.factory.request_timeout)
            return
        self._outgoing = b""
        if not self._keep_alive_after or (
            self._close_when_idle and not (self._read_closed and self._buffer)
        ):
            self._close()
            return
        self._read_on()

    def write_blocked(self) -> None:
        """The transport's buffer is full: read no more requests until the client catches up."""
        self._blocked = True
        if not self.paused:
            self.pauseProducing()
        if not self._closing:
            self.setTimeout(self.factory.request_timeout)

    def write_drained(self) -> None:
        """The transport has passed all it held to the kernel."""
        self._blocked = False
        if self._closing or self.lost:
            return
        if self._outgoing:
            self._send_more()
        else:
            self._read_on()

    def _read_on(self) -> None:
        """Go on to the next request, unless a response or a full buffer still holds us."""
        if self._closing or self._pending is not None or self._outgoing or self._blocked:
            return
        if self._read_closed:
            # Nothing more can arrive: answer what is buffered, without reading again.
            self.paused = False
            self.dataReceived(b"")
            if self._pending is None and not self._outgoing and not self._closing:
                self._close()
            return
        self.resumeProducing()
        if self._pending is None and not self._outgoing and not self._closing:
            # Bytes of the next request already here: its RequestTimeout starts now.
            self._request_begun = self._parser.in_progress or bool(self._buffer)
            self.setTimeout(
                self.factory.request_timeout
                if self._request_begun
                else self.factory.keepalive_timeout
            )

    def _fail(self, error: HTTPError) -> None:
        """Answer a request that cannot be parsed, then close (SPEC §2)."""
        if self._closing:
            return
        self._closing = True
        self.setTimeout(None)
        if not self.paused:
            self.pauseProducing()
        response = self.factory.with_extra_headers(self.factory.site.error_response(error))
        data = serialize(
            response, now=self.factory.clock.seconds(), date=self.factory.date, keep_alive=False
        )
        self.link.write(data)
        self.factory.stats.observe(None, response.status, 0.0)
        record(
            self.factory.log,
            "request",
            client=self.client,
            user="-",
            method="-",
            path="-",
            status=response.status,
            bytes=len(data),
            ms=0.0,
        )
        self._close()


@implementer(IProtocolNegotiationFactory)
class HTTPFactory(ServerFactory):
    """
    Makes connections and keeps count of them, for MaxClients and for a clean shutdown.

    MaxClients queues instead of refusing (SPEC §1): at the limit the listening port stops
    reading, so further connections wait in the kernel's listen backlog and are accepted
    in turn as slots free up. Pausing the port is not enough on its own: one accept
    wake-up takes up to `numberAccepts` sockets in a loop (100 and growing), so that number
    is clamped to the free slots before every accept.
    """

    protocol = HTTPChannel  # type: ignore[assignment]

    def __init__(
        self,
        site: Site,
        clock: IReactorTime,
        *,
        max_clients: int,
        request_timeout: float,
        keepalive_timeout: float,
        log: Logger,
        on_connection: Callable[[str], None] | None = None,
        stats: RequestStats | None = None,
    ) -> None:
        self.site = site
        #: every response written is counted here, for /metrics
        self.stats = stats if stats is not None else RequestStats()
        self.clock = clock
        self.max_clients = max_clients
        self.request_timeout = request_timeout
        self.keepalive_timeout = keepalive_timeout
        self.log = log
        self.date = DateCache()
        self.connections: set[HTTPChannel] = set()
        self.ports: list[object] = []
        self._all_closed: list[Deferred[None]] = []
        self._clamp_scheduled = False
        self._accepting = True
        #: header fields every response on this factory's listener carries (HSTS on TLS)
        self.extra_headers: tuple[tuple[str, str], ...] = ()

    def with_extra_headers(self, response: Response) -> Response:
        """The response with `extra_headers` added, if there are any."""
        if not self.extra_headers:
            return response
        return replace(response, headers=response.headers + self.extra_headers)

    # IProtocolNegotiationFactory: Twisted 26.4 to 26.10's TLS endpoints fail the handshake
    # with clients that offer ALPN unless the factory names a protocol (TWISTED-NOTES).
    def acceptableProtocols(self) -> list[bytes]:
        return [b"http/1.1"]

    @override
    def buildProtocol(self, addr: IAddress | None) -> HTTPChannel:  # type: ignore[override]
        channel = HTTPChannel(getattr(addr, "host", str(addr)))
        channel.factory = self
        return channel

    def add_port(self, port: object) -> None:
        """
        Serve connections from this listening port, within MaxClients.

        The clamp starts here, before the first accept: the port's accept loop reads
        `numberAccepts` (100 to begin with) once per wake-up and takes that many sockets
        whatever the factory does meanwhile, so a burst waiting in the backlog before the
        first wake-up would all be let in at once.
        """
        self.ports.append(port)
        self._clamp_accepts()

    def connection_opened(self, channel: HTTPChannel) -> None:
        self.connections.add(channel)
        record(self.log, "connection", client=channel.client)
        self._limit_accepts()

    def connection_closed(self, channel: HTTPChannel) -> None:
        self.connections.discard(channel)
        self._limit_accepts()
        if not self.connections:
            waiting, self._all_closed = self._all_closed, []
            for d in waiting:
                d.callback(None)

    @property
    def free_slots(self) -> int:
        return max(0, self.max_clients - len(self.connections))

    def _limit_accepts(self) -> None:
        if self.free_slots == 0:
            for port in self.ports:
                _stop_reading(port)
        # The port's accept loop resets numberAccepts after each wake-up, after the
        # connections it accepted were made: clamp again once it has returned.
        if not self._clamp_scheduled:
            self._clamp_scheduled = True
            self.clock.callLater(0, self._clamp_accepts)

    def _clamp_accepts(self) -> None:
        self._clamp_scheduled = False
        free = self.free_slots
        for port in self.ports:
            if hasattr(port, "numberAccepts"):
                port.numberAccepts = max(1, free)
            if free == 0:
                _stop_reading(port)
            elif self._accepting:
                _start_reading(port)

    def stop_accepting(self) -> None:
        """Accept nothing more; the ports themselves are closed by their owner."""
        self._accepting = False

    def close_all(self, grace: float) -> Deferred[None]:
        """
        Close every connection once its response is written; after `grace` seconds, drop
        the ones still open. Fires when all are gone (buffered bytes flushed first).
        """
        if not self.connections:
            return succeed(None)
        done: Deferred[None] = Deferred()
        self._all_closed.append(done)
        for channel in list(self.connections):
            channel.close_when_idle()

        def force() -> None:
            for channel in list(self.connections):
                channel.link.abortConnection()

        deadline = self.clock.callLater(grace, force)

        def cancel_deadline(result: None) -> None:
            if deadline.active():
                deadline.cancel()

        done.addCallback(cancel_deadline)
        return done


def _stop_reading(port: object) -> None:
    stop = getattr(port, "stopReading", None)
    if stop is not None:
        stop()


def _start_reading(port: object) -> None:
    if getattr(port, "connected", True) and not getattr(port, "disconnecting", False):
        start = getattr(port, "startReading", None)
        if start is not None:
            start()
