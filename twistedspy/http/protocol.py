# -*- test-case-name: tests.test_protocol -*-
"""The connection: a thin `LineReceiver` that drives the sans-IO request parser.

It owns only what belongs to a connection: time-outs, persistence, answering pipelined
requests in order, and the limits on connections served at once (in all, and from one
address). What a request means is the dispatcher's business; what it looks like on the
wire is the parser's and the response writer's.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import time
from collections import deque
from collections.abc import KeysView
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IProtocolNegotiationFactory,
    IPushProducer,
)
from twisted.internet.protocol import ServerFactory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from typing_extensions import override
from zope.interface import implementer

from twistedspy.events import keeps, record, record_fields, recorder
from twistedspy.http.parser import (
    END_OF_MESSAGE,
    NEED_DATA,
    HTTPError,
    Request,
    RequestAssembler,
    RequestHead,
    RequestParser,
    RequestTimeout,
)
from twistedspy.http.response import (
    GZIP_THRESHOLD,
    DateCache,
    Outcome,
    Response,
    WireCache,
    serialize,
)
from twistedspy.http.stats import RequestStats

if TYPE_CHECKING:
    from twisted.internet.interfaces import (
        IAddress,
        IConsumer,
        IReactorTime,
        ITCPTransport,
    )


#: the fields of the journal's `request` event, in order (docs/operations.md)
REQUEST_FIELDS = ("client", "user", "method", "path", "status", "bytes", "ms")

#: header fields whose values the journal never shows
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


class Site(Protocol):
    """The dispatcher, as the connection sees it."""

    def connection_login(self) -> object:
        """What the site keeps for one connection (its login), handed back with each request."""

    def respond(
        self, request: Request, client: str, kept: object = None
    ) -> Outcome | Deferred[Outcome]: ...
    def error_response(self, error: HTTPError) -> Response: ...
    def journal_path(self, request: Request) -> str: ...


#: Bytes of a response handed to the transport at a time. The transport pauses us once its
#: buffer holds more than 64 KiB and resumes us only when it has passed all of it to the
#: kernel, so a client that does not read holds at most this much, twice, in the server.
SEND_CHUNK = 65536

#: Seconds between the factory's looks for connections past their deadline: a time-out
#: takes effect up to this much later than its setting (docs/architecture.md).
SWEEP_INTERVAL = 0.25

#: the deadline of a connection that has none
_NEVER = math.inf


@implementer(IPushProducer)
class _WriteBackPressure:
    """
    What the transport tells a channel about its write buffer (Twisted's producer and
    consumer: `pauseProducing` when the buffer is full, `resumeProducing` once drained).

    A separate object, because the channel's own pause/resume (LineReceiver's) mean
    "stop/start reading", which a pending response also needs: the channel combines both
    reasons itself.
    """

    __slots__ = ("_channel",)

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


class ConnectionState(enum.IntEnum):
    """
    Where a connection is in its life; `_MOVES` lists the transitions between them.

    An IntEnum for its hash: a plain Enum's is a Python call, paid at every transition.
    """

    #: accepted, and waiting (unread) for a slot in its address's share of MaxClients
    QUEUED = enum.auto()
    #: waiting for a request: RequestLineTimeout on a new connection, else KeepAliveTimeout
    IDLE = enum.auto()
    #: bytes of a request have arrived, not yet its whole head; RequestTimeout runs
    READING_HEAD = enum.auto()
    #: the head is parsed and body bytes are awaited; RequestTimeout runs
    READING_BODY = enum.auto()
    #: the site is preparing the answer; nothing more is read meanwhile
    DISPATCHED = enum.auto()
    #: the answer goes to the transport a chunk at a time, as fast as the client takes it
    WRITING = enum.auto()
    #: loseConnection is called: the transport writes what it holds, then closes
    CLOSING = enum.auto()
    #: connectionLost
    CLOSED = enum.auto()


_QUEUED, _IDLE, _HEAD, _BODY, _DISPATCHED, _WRITING, _CLOSING, _CLOSED = ConnectionState
#: the states in which the parser's events are taken, and the socket is read
_READING = frozenset({_IDLE, _HEAD, _BODY})
#: every transition a connection makes; anything else is a bug (checked as it happens)
_MOVES: dict[ConnectionState, frozenset[ConnectionState]] = {
    _QUEUED: frozenset({_IDLE, _CLOSING, _CLOSED}),
    _IDLE: frozenset({_HEAD, _CLOSING, _CLOSED}),
    _HEAD: frozenset({_BODY, _DISPATCHED, _CLOSING, _CLOSED}),
    _BODY: frozenset({_DISPATCHED, _CLOSING, _CLOSED}),
    _DISPATCHED: frozenset({_WRITING, _CLOSED}),
    # After a response: the next request's bytes are here already (HEAD), or not (IDLE).
    _WRITING: frozenset({_IDLE, _HEAD, _CLOSING, _CLOSED}),
    _CLOSING: frozenset({_CLOSED}),
    _CLOSED: frozenset(),
}


@implementer(IHalfCloseableProtocol)
class HTTPChannel(LineReceiver):
    """
    One client connection, serving its requests one at a time, in order.

    A `LineReceiver` kept in raw mode from the start: the request parser alone finds
    where lines and bodies end, so every byte read goes to it through `rawDataReceived`
    and the connection never splits anything itself (splitting lines here too would make
    a second splitter, one the parser's tests and fuzzer do not reach).

    Its state is one `ConnectionState`, plus two facts independent of it: the transport's
    write buffer is full (`_write_blocked`), and the client has closed its sending side
    (`_peer_closed`).

    Its time-out is a deadline (`due`) that the factory's sweep checks, not a timer of its
    own: setting one at every request and move would make and cancel a `DelayedCall` each
    time, and keep one alive for every idle connection.
    """

    # Slots for every attribute, LineReceiver's and Protocol's too: thousands of idle
    # connections each hold these, and an instance dictionary costs several times more.
    __slots__ = (
        "_assembler",
        "_buffer",
        "_busyReceiving",
        "_keep_alive_after",
        "_kept",
        "_line_due",
        "_offset",
        "_outgoing",
        "_parser",
        "_peer_closed",
        "_request_due",
        "_state",
        "_write_blocked",
        "client",
        "connected",
        "due",
        "factory",
        "line_mode",
        "paused",
        "served",
        "share",
        "transport",
    )

    factory: HTTPFactory

    def __init__(self, client: str) -> None:
        # What LineReceiver and Protocol have as class attributes, which slots hide.
        self._buffer = b""
        self._busyReceiving = False
        self.line_mode = 1
        self.paused = False
        self.connected = 0
        self.transport = None
        self.client = client
        #: the address whose share of MaxClients this connection counts against
        self.share = address_share(client)
        #: whether it holds a slot of its address's share (the factory's to set)
        self.served = False
        self._state = _QUEUED
        self._write_blocked = False
        self._peer_closed = False
        # Made with the first byte of a request and let go of between requests: an idle
        # connection holds none.
        self._parser: RequestParser | None = None
        self._assembler: RequestAssembler | None = None
        # When the request line (on a new connection) and the whole request are due, by
        # the factory's clock; `due` is the earlier while a request is being read.
        self._line_due: float | None = None
        self._request_due = 0.0
        #: when the connection times out, by the factory's clock (checked by its sweep)
        self.due = _NEVER
        # The response being handed to the transport, SEND_CHUNK at a time, and how far.
        self._outgoing = b""
        self._offset = 0
        self._keep_alive_after = False
        #: the site's memory of this connection's login (made once the factory is set)
        self._kept: object = None

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def consumer(self) -> IConsumer:
        """The transport, as the consumer of what the channel writes."""
        assert self.transport is not None
        return cast("IConsumer", self.transport)

    @property
    def incoming(self) -> IPushProducer:
        """The transport, as the producer of what the client sends: paused, it reads none."""
        assert self.transport is not None
        return cast("IPushProducer", self.transport)

    @property
    def link(self) -> ITCPTransport:
        """The transport, typed: every stream transport Twisted gives us is a TCP one."""
        assert self.transport is not None
        return cast("ITCPTransport", self.transport)

    def _enter(self, state: ConnectionState) -> None:
        assert state in _MOVES[self._state], f"{self._state} -> {state}"
        self._state = state

    # -- connection life

    @override
    def connectionMade(self) -> None:
        self._kept = self.factory.site.connection_login()
        self.setRawMode()
        self.consumer.registerProducer(_WriteBackPressure(self), True)
        self.factory.connection_opened(self)
        if self._state is _QUEUED:
            # No slot in its address's share yet: what it sends waits in the kernel.
            self.incoming.pauseProducing()

    def serve(self) -> None:
        """QUEUED -> IDLE: the factory gives this connection a slot; its request line is due."""
        self._enter(_IDLE)
        self.incoming.resumeProducing()
        self._line_due = self.factory.clock.seconds() + self.factory.request_line_timeout
        self.due = self._line_due
        if not self._between_requests():
            self._begin_request()
            self._process()

    @override
    def connectionLost(self, reason: Failure | None = None) -> None:
        self._enter(_CLOSED)
        self._outgoing = b""
        self.due = _NEVER
        self.factory.connection_closed(self)

    # IHalfCloseableProtocol: a client may send its requests and then shut down its side
    # (`nc -N`, some HTTP/1.0 clients). Without this, Twisted would close the whole
    # connection at that end of input and drop the answers still to be written.
    def readConnectionLost(self) -> None:
        self._peer_closed = True
        self.close_when_idle()

    def writeConnectionLost(self) -> None:
        self.close_when_idle()

    def close_when_idle(self) -> None:
        """Close now if no response is under way, else right after it is written."""
        if self._state in _READING or self._state is _QUEUED:
            self._close()

    def _close(self) -> None:
        """Close once what the transport holds is written; abort if the client won't read it."""
        self._enter(_CLOSING)
        # abstract.FileDescriptor.loseConnection: with a producer registered, the
        # connection is not closed until the producer is unregistered.
        self.consumer.unregisterProducer()
        self.link.loseConnection()
        # A client that never reads its answer must not hold the connection for ever.
        self._expire_in(self.factory.keepalive_timeout)

    # -- time-outs

    def _expire_in(self, seconds: float) -> None:
        self.due = self.factory.clock.seconds() + seconds

    def time_out(self) -> None:
        """The deadline has passed (the factory's sweep calls this)."""
        self.due = _NEVER
        state = self._state
        if state is _IDLE:
            # Nothing of a request has arrived: an idle connection ends silently (RFC 9112
            # §9.8), a new one as an idle keep-alive one does.
            self._close()
        elif state is _HEAD or state is _BODY:
            line_due = self._line_due
            if line_due is not None and line_due <= self._request_due:
                seconds = self.factory.request_line_timeout
                self._fail(
                    RequestTimeout(f"The request line did not arrive within {seconds:g} s.")
                )
            else:
                self._fail(RequestTimeout())
        else:
            # Answering or closing, and the client has not taken our bytes in time.
            self.link.abortConnection()

    # -- receiving

    @override
    def rawDataReceived(self, data: bytes) -> None:
        state = self._state
        if state is _IDLE:
            self._begin_request()
        elif state is not _HEAD and state is not _BODY:
            if state is not _CLOSING:
                # Read before a pause took hold (TLS hands on all it has decrypted): kept,
                # in order, for when this connection reads again.
                self._parsing().receive_data(data)
            return
        self._parsing().receive_data(data)
        self._process()

    def _parsing(self) -> RequestParser:
        """The parser, taken if this is the first byte since the last request."""
        parser = self._parser
        if parser is None:
            parser = self._parser = self.factory.parsers.take()
        return parser

    def _between_requests(self) -> bool:
        """Whether no byte of the next request has arrived."""
        return self._parser is None or self._parser.between_requests

    def _begin_request(self) -> None:
        """IDLE -> READING_HEAD: the first bytes of a request are here; RequestTimeout runs."""
        self._enter(_HEAD)
        # From now the whole request has RequestTimeout to arrive, however slowly it
        # trickles in: a request line sent a byte at a time (slowloris) must not restart
        # the clock with every byte.
        self._request_due = self.factory.clock.seconds() + self.factory.request_timeout
        self.due = (
            self._request_due if self._line_due is None else min(self._line_due, self._request_due)
        )

    def _process(self) -> None:
        """Take the parser's events until it needs more bytes or a request is dispatched."""
        parser = self._parser
        if parser is None:
            return
        while (self._state is _HEAD or self._state is _BODY) and not self._write_blocked:
            try:
                event = parser.next_event()
            except HTTPError as error:
                self._fail(error)
                return
            if event is NEED_DATA:
                if self._peer_closed:
                    # Nothing more can arrive: a request cut short is never answered.
                    self._close()
                elif self._line_due is not None and parser.request_line_received:
                    # The request line came in time; only RequestTimeout is left.
                    self._line_due = None
                    self.due = self._request_due
                return
            if type(event) is RequestHead and not event.body_length:
                # Nearly every request: no body, so its EndOfMessage is next, and there is
                # nothing to assemble.
                end = parser.next_event()
                assert end is END_OF_MESSAGE, end
                self._dispatch(event.request)
                continue
            assembler = self._assembler
            if assembler is None:
                assembler = self._assembler = RequestAssembler()
            request = assembler.add(event)
            if request is not None:
                self._assembler = None
                self._dispatch(request)
            elif type(event) is RequestHead:
                self._enter(_BODY)

    # -- answering

    def _dispatch(self, request: Request) -> None:
        self._enter(_DISPATCHED)
        self._line_due = None
        self.due = _NEVER
        started = time.monotonic()
        self._journal_headers(request)
        pending = self.factory.site.respond(request, self.client, self._kept)
        if isinstance(pending, Outcome):
            # Ready at once: written before the next request is parsed, without a
            # Deferred, and without pausing the transport (two epoll_ctl calls saved).
            try:
                self._respond(pending, request, started)
            except Exception:
                self._internal_error(Failure(), request, started)
            return
        if not pending.called:
            # Read nothing more until this one is answered: pipelined requests wait in
            # the parser (and then in the kernel), and are answered in order (RFC 9112
            # §9.3.2).
            self.incoming.pauseProducing()
        pending.addCallback(self._respond, request, started).addErrback(
            self._internal_error, request, started
        ).addCallback(self._answered)

    def _answered(self, _: None) -> None:
        """The site's Deferred has fired and its answer is written: go on."""
        self._go_on()

    def _journal_headers(self, request: Request) -> None:
        """The `headers` event, kept in verbose mode only (docs/operations.md)."""
        if not self.factory.journals_headers:
            return
        fields: dict[str, object] = {"client": self.client}
        fields["path"] = self.factory.site.journal_path(request)
        for name, _value in request.headers:
            if name in fields:
                continue
            # Credentials never reach the journal (docs/security.md).
            secret = name in SECRET_HEADERS
            fields[name] = "***" if secret else ", ".join(request.header_values(name))
        record_fields(self.factory.log, "headers", fields)

    def _internal_error(self, failure: Failure, request: Request, started: float) -> None:
        self.factory.log.failure("response failed", failure)
        error = InternalServerError()
        outcome = Outcome(self.factory.site.error_response(error))
        self._respond(outcome, request, started)

    def _keeps_alive(self, request: Request) -> bool:
        """Whether another request may follow this one's answer."""
        return (
            request.keep_alive
            and not self.factory.stopping
            # The client has finished sending: this is the last answer, unless requests
            # it sent before closing its side are still waiting.
            and not (self._peer_closed and self._between_requests())
        )

    def _respond(self, outcome: Outcome, request: Request, started: float) -> None:
        if self._state is not _DISPATCHED:
            # The client went away while the answer was being prepared.
            return
        factory = self.factory
        response = factory.with_extra_headers(outcome.response)
        keep_alive = not response.close and self._keeps_alive(request)
        data = factory.wire(
            response,
            now=factory.clock.seconds(),
            date=factory.date,
            head=request.method == "HEAD",
            keep_alive=keep_alive,
            announce_keep_alive=keep_alive and request.version == (1, 0),
            # Read only where it matters: a short body is never compressed.
            accept_encoding=(
                request.header("accept-encoding") if len(response.body) > GZIP_THRESHOLD else None
            ),
        )
        seconds = time.monotonic() - started
        factory.stats.observe(request.path, response.status, seconds)
        factory.record_request(
            self.client,
            outcome.user or "-",
            request.method,
            factory.site.journal_path(request),
            response.status,
            len(data),
            round(seconds * 1000, 1),
        )
        # Entered only now: if anything above raised, the 500 is answered in its place.
        self._enter(_WRITING)
        self._outgoing, self._offset, self._keep_alive_after = data, 0, keep_alive
        self._send_more()

    def _send_more(self) -> None:
        """Hand the response to the transport a chunk at a time, while it has room."""
        link = self.link
        while self._offset < len(self._outgoing) and not self._write_blocked:
            chunk = self._outgoing[self._offset : self._offset + SEND_CHUNK]
            self._offset += len(chunk)
            # May call write_blocked() before it returns.
            link.write(chunk)
        if self._offset < len(self._outgoing):
            # The client has RequestTimeout to take each chunk, or the connection is dropped.
            self._expire_in(self.factory.request_timeout)
            return
        # Let go of the response, and of the numbers that would each keep an object.
        self._outgoing, self._offset, self._request_due = b"", 0, 0.0
        if not self._keep_alive_after or self.factory.stopping:
            self._close()
        elif self._between_requests():
            if self._parser is not None:
                self.factory.parsers.give_back(self._parser)
                self._parser = None
            self._enter(_IDLE)
            self._expire_in(self.factory.keepalive_timeout)
        else:
            # Bytes of the next request are here already: its RequestTimeout starts now.
            self._enter(_HEAD)
            self._request_due = self.factory.clock.seconds() + self.factory.request_timeout
            self.due = self._request_due

    def _go_on(self) -> None:
        """After an answer or a drained buffer: parse what waits, and read again."""
        self._process()
        if self._state in _READING and not self._write_blocked and not self._peer_closed:
            self.incoming.resumeProducing()

    def write_blocked(self) -> None:
        """The transport's buffer is full: read no more requests until the client catches up."""
        self._write_blocked = True
        self.incoming.pauseProducing()
        if self._state is not _CLOSING:
            self._expire_in(self.factory.request_timeout)

    def write_drained(self) -> None:
        """The transport has passed all it held to the kernel."""
        self._write_blocked = False
        if self._state is _WRITING:
            self._send_more()
        self._go_on()

    def _fail(self, error: HTTPError) -> None:
        """Answer a request that cannot be parsed (or came too slowly), then close."""
        response = self.factory.with_extra_headers(self.factory.site.error_response(error))
        data = serialize(
            response, now=self.factory.clock.seconds(), date=self.factory.date, keep_alive=False
        )
        self.link.write(data)
        self.factory.stats.observe(None, response.status, 0.0)
        self.factory.record_request(self.client, "-", "-", "-", response.status, len(data), 0.0)
        self._close()


class SpareParsers:
    """
    Parsers let go of between requests, for the next request to take, as making one costs
    more than the rest of parsing a cached request's head. A connection holds its parser
    only while a request is being read or answered, so that an idle one holds none; a few
    spares are kept, no more.
    """

    __slots__ = ("_spares",)

    #: spares kept at most
    KEPT = 64

    def __init__(self) -> None:
        self._spares: list[RequestParser] = []

    def take(self) -> RequestParser:
        """A parser with nothing received, its limits the defaults."""
        return self._spares.pop() if self._spares else RequestParser()

    def give_back(self, parser: RequestParser) -> None:
        """Keep `parser`, which must be between requests: its state is then as new, once it
        lets go of the bytes it has parsed (which taking no bytes does)."""
        assert parser.between_requests
        if len(self._spares) < self.KEPT:
            parser.receive_data(b"")
            self._spares.append(parser)


@implementer(IProtocolNegotiationFactory)
class HTTPFactory(ServerFactory):
    """
    Makes connections and keeps count of them: for MaxClients, for each address's share
    of it, and for a clean shutdown.

    MaxClients queues instead of refusing (docs/configuration.md): at the limit the
    listening port stops reading, so further connections wait in the kernel's listen
    backlog and are accepted in turn as slots free up. Pausing the port is not enough on
    its own: one accept wake-up takes up to `numberAccepts` sockets in a loop (100 and
    growing), so that number is clamped to the free slots before every accept.

    One address is served at most `max_clients_per_address` connections at once (a
    quarter of MaxClients unless set), so that one client cannot hold every slot. Its
    further connections wait too, in the same spirit as MaxClients: accepted, but not read
    until one of its own ends (the kernel's backlog cannot be sorted by address). Such a
    waiting connection takes no slot from anybody else. At most MaxClients connections
    wait so in all; past that, a connection from an address over its share is closed at
    once, as the kernel drops connections once its backlog is full.

    Time-outs: one sweep every SWEEP_INTERVAL seconds finds the connections past their
    deadline. It runs only while there are connections, so an idle server has no timer for
    it.
    """

    protocol = HTTPChannel  # type: ignore[assignment]

    def __init__(
        self,
        site: Site,
        clock: IReactorTime,
        *,
        max_clients: int,
        request_timeout: float,
        request_line_timeout: float,
        keepalive_timeout: float,
        log: Logger,
        max_clients_per_address: int | None = None,
        stats: RequestStats | None = None,
    ) -> None:
        self.site = site
        #: every response written is counted here, for /metrics
        self.stats = stats if stats is not None else RequestStats()
        self.clock = clock
        self.max_clients = max_clients
        self.max_clients_per_address = max_clients_per_address or max(1, max_clients // 4)
        self.request_timeout = request_timeout
        self.request_line_timeout = request_line_timeout
        self.keepalive_timeout = keepalive_timeout
        self.log = log
        #: journals a response: record(log, "request", **dict(zip(REQUEST_FIELDS, values)))
        self.record_request = recorder(log, "request", REQUEST_FIELDS)
        self._headers_asked: Logger | None = None
        self._headers_kept = False
        self.date = DateCache()
        #: parsers between requests, for the next request on any connection
        self.parsers = SpareParsers()
        #: the bytes of the responses sent this second, to send again
        self.wire = WireCache()
        # Every open connection, waiting ones included; a dict, as a set's table is
        # several times larger.
        self._connections: dict[HTTPChannel, None] = {}
        self.ports: list[object] = []
        #: the shutdown has begun: answers under way are the last on their connection
        self.stopping = False
        # How many connections are being served, by their address's share, and in all.
        self._served: dict[str, int] = {}
        self._served_count = 0
        # Connections waiting for a slot in their address's share, oldest first.
        self._waiting: dict[str, deque[HTTPChannel]] = {}
        self._waiting_count = 0
        self._all_closed: list[Deferred[None]] = []
        self._clamp_scheduled = False
        self._sweep: LoopingCall | None = None
        #: header fields every response on this factory's listener carries (HSTS on TLS)
        self.extra_headers: tuple[tuple[str, str], ...] = ()

    @property
    def journals_headers(self) -> bool:
        """Whether the journal keeps `headers` events: asked once per `log`, not per request."""
        log = self.log
        if self._headers_asked is not log:
            self._headers_asked, self._headers_kept = log, keeps(log, "headers")
        return self._headers_kept

    @property
    def connections(self) -> KeysView[HTTPChannel]:
        """Every open connection, waiting ones included."""
        return self._connections.keys()

    def with_extra_headers(self, response: Response) -> Response:
        """The response with `extra_headers` added, if there are any."""
        if not self.extra_headers:
            return response
        return replace(response, headers=response.headers + self.extra_headers)

    # IProtocolNegotiationFactory: Twisted 26.4 to 26.10's TLS endpoints fail the handshake
    # with clients that offer ALPN unless the factory names a protocol.
    def acceptableProtocols(self) -> list[bytes]:
        return [b"http/1.1"]

    @override
    def buildProtocol(self, addr: IAddress | None) -> HTTPChannel:  # type: ignore[override]
        # Not getattr(addr, "host", str(addr)): that formats every address it is given.
        host = getattr(addr, "host", None)
        channel = HTTPChannel(host if isinstance(host, str) else str(addr))
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
        """Serve a new connection, or let it wait for its address's share, or close it."""
        self._connections[channel] = None
        if self._sweep is None:
            self._sweep = LoopingCall(self._time_out_late)
            self._sweep.clock = self.clock
            self._sweep.start(SWEEP_INTERVAL, now=False)
        record(self.log, "connection", client=channel.client)
        served = self._served.get(channel.share, 0)
        if served < self.max_clients_per_address:
            self._served[channel.share] = served + 1
            self._served_count += 1
            channel.served = True
            channel.serve()
        elif self._waiting_count < self.max_clients:
            self._waiting.setdefault(channel.share, deque()).append(channel)
            self._waiting_count += 1
        else:
            channel.close_when_idle()
        self._limit_accepts()

    def connection_closed(self, channel: HTTPChannel) -> None:
        self._connections.pop(channel, None)
        share = channel.share
        waiting = self._waiting.get(share, deque())
        if channel.served:
            channel.served = False
            self._served_count -= 1
            served = self._served[share] - 1
            # The slot passes to the oldest waiting connection of the same address (one
            # closed while it waited, at shutdown, is only let go of).
            while waiting:
                successor = waiting.popleft()
                self._waiting_count -= 1
                if successor.state is ConnectionState.QUEUED:
                    served += 1
                    self._served_count += 1
                    successor.served = True
                    successor.serve()
                    break
            if served:
                self._served[share] = served
            else:
                del self._served[share]
        elif channel in waiting:
            waiting.remove(channel)
            self._waiting_count -= 1
        if not waiting:
            self._waiting.pop(share, None)
        self._limit_accepts()
        if not self.connections:
            if self._sweep is not None:
                self._sweep.stop()
                self._sweep = None
            done, self._all_closed = self._all_closed, []
            for d in done:
                d.callback(None)

    def _time_out_late(self) -> None:
        """Time out every connection whose deadline has passed."""
        now = self.clock.seconds()
        # Listed first: timing out may close connections, and change the set.
        for channel in [channel for channel in self.connections if channel.due <= now]:
            if channel.due <= now:
                try:
                    channel.time_out()
                except Exception:
                    # One connection's failure must not stop the sweep, and with it every
                    # other connection's time-outs: that one is dropped.
                    self.log.failure("time-out failed")
                    channel.link.abortConnection()

    @property
    def free_slots(self) -> int:
        return max(0, self.max_clients - self._served_count)

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
            elif not self.stopping:
                _start_reading(port)

    def stop_accepting(self) -> None:
        """Accept nothing more; the ports themselves are closed by their owner."""
        self.stopping = True

    def close_all(self, grace: float) -> Deferred[None]:
        """
        Close every connection once its response is written; after `grace` seconds, drop
        the ones still open. Fires when all are gone (buffered bytes flushed first).
        """
        self.stopping = True
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


def address_share(host: str) -> str:
    """
    The address whose share of MaxClients a client's connections count against: an IPv4
    address itself, an IPv6 one by its /64, the block one host or link normally holds
    (RFC 4291 §2.5.1: 64-bit interface identifiers), so that a host cannot take a fresh
    share with each of its addresses.
    """
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


def _stop_reading(port: object) -> None:
    stop = getattr(port, "stopReading", None)
    if stop is not None:
        stop()


def _start_reading(port: object) -> None:
    if getattr(port, "connected", True) and not getattr(port, "disconnecting", False):
        start = getattr(port, "startReading", None)
        if start is not None:
            start()
