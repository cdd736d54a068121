# -*- test-case-name: tests.test_parser -*-
"""
A sans-IO HTTP/1.x request parser: bytes in, events out (h11's `receive_data` and
`next_event`), or an `HTTPError` carrying the status to answer.

It knows nothing of sockets or Twisted, and it alone finds where lines and bodies end:
the connection hands it every byte it reads, so trial, hypothesis and the fuzzer run
exactly what production runs. Where it is stricter than RFC 9112 / RFC 9110 the reason
is written beside the check: mostly, every lenient reading here is one a front-end proxy
might read differently, which is how request smuggling happens.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, NamedTuple
from urllib.parse import unquote_to_bytes

from twistedspy.http import grammar

#: the fields read while parsing (framing, persistence, Host, credentials), collected as
#: they arrive
_CHECKED_FIELDS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "authorization"}
)

MAX_LINE = 8192
"""Longest request line and header line, in bytes, without the line end."""
MAX_FIELDS = 100
"""Most header fields in one request."""
MAX_BODY = 65536
"""Largest Content-Length accepted."""
MAX_HEADER_BYTES = 65536
"""Most bytes in all header lines of one request together (each line plus its CRLF)."""
MAX_EMPTY_LINES = 8
"""Empty lines tolerated before a request line (RFC 9112 §2.2 says to ignore "at least one")."""
_DEFAULT_LIMITS = (MAX_LINE, MAX_FIELDS, MAX_BODY, MAX_HEADER_BYTES)


#: Request lines, paths and Host values seen already, with what parsing them gave: the
#: same few arrive again and again (a client polling /version), and a lookup is several
#: times cheaper than the regular expressions. Only what parsed without error is kept,
#: never a query (it may hold a password), and each table is bounded: cleared when full.
_known_heads: dict[bytes, _RequestHead] = {}
_known_paths: dict[str, _Target] = {}
_known_hosts: dict[str, bool] = {}
_KNOWN_MAX = 1024

#: Whole request heads (request line to the empty line, CRLFs and all) that parsed to a
#: request without a body, with the `RequestHead` event they gave: a client polling the
#: same page sends the same bytes each time, and the parse of given bytes by a parser with
#: the default limits never differs. Never a head with a query (it may hold a password),
#: never one with credentials (see `_known_credential_requests`), and never one longer
#: than `_HEAD_WINDOW`: the lookup searches at most that far for the head's end, once per
#: request.
_known_requests: dict[bytes, RequestHead] = {}
_KNOWN_REQUESTS_MAX = 256
_HEAD_WINDOW = 1024
#: header fields whose values must not be kept beyond their request
_SECRET_FIELDS = frozenset({"authorization", "proxy-authorization", "cookie"})
#: the value of a secret field's line in a whole head, up to its LF (a head's lines hold
#: no other LF, and field names are case-insensitive: RFC 9110 §5.1)
_SECRET_VALUE = re.compile(
    rb"\n(?:" + b"|".join(name.encode("ascii") for name in sorted(_SECRET_FIELDS)) + rb"):"
    rb"([^\n]*)(?=\n)",
    re.IGNORECASE,
)
#: RFC 9110 §5.6.3: the blanks (OWS) around a field value
_BLANKS = b" \t"


class _CredentialTemplate(NamedTuple):
    #: the request as parsed, each secret field's value emptied
    request: Request
    #: where the secret fields are in its headers, in the order they were sent
    slots: tuple[int, ...]


#: Heads with credentials, remembered without them: keyed by the head's bytes with the
#: value of each secret field cut out (its name and colon kept), and looked up the same
#: way. A hit puts the values of the head at hand back in once they pass the field-value
#: grammar (anything else is parsed in full), so a client sending the same head with its
#: password is spared the grammar too, and no password outlives its request.
_known_credential_requests: dict[bytes, _CredentialTemplate] = {}


def _remember(table: dict[Any, Any], key: object, value: object) -> None:
    if len(table) >= _KNOWN_MAX:
        table.clear()
    table[key] = value


class HTTPError(Exception):
    """A request that cannot be served; carries the status to answer with."""

    status: ClassVar[int] = 400
    reason: ClassVar[str] = "Bad Request"
    default_message: ClassVar[str] = "The request could not be understood."
    #: Every parser error leaves the byte stream at an unknown place: close after answering.
    close: ClassVar[bool] = True

    def __init__(self, message: str | None = None) -> None:
        self.message = message if message is not None else self.default_message
        super().__init__(self.message)


class BadRequest(HTTPError):
    status = 400
    reason = "Bad Request"
    default_message = "The request could not be understood."


class RequestTimeout(HTTPError):
    """Raised by the protocol, not the parser: only it knows about time."""

    status = 408
    reason = "Request Timeout"
    default_message = "The request was not completed in time."


class ContentTooLarge(HTTPError):
    status = 413
    reason = "Content Too Large"
    default_message = "The request body is too large."


class URITooLong(HTTPError):
    status = 414
    reason = "URI Too Long"
    default_message = "The request line is too long."


class HeaderFieldsTooLarge(HTTPError):
    status = 431
    reason = "Request Header Fields Too Large"
    default_message = "The request header fields are too large."


class TransferEncodingNotImplemented(HTTPError):
    status = 501
    reason = "Not Implemented"
    default_message = "Transfer-Encoding is not supported; send a Content-Length instead."


class VersionNotSupported(HTTPError):
    status = 505
    reason = "HTTP Version Not Supported"
    default_message = "Only HTTP/1.0 and HTTP/1.1 are supported."


@dataclass(frozen=True, slots=True)
class Request:
    """One complete request, as received."""

    method: str
    #: the request-target exactly as received
    target: str
    #: percent-decoded once; "" for authority-form and asterisk-form
    path: str
    #: the raw query after "?", not decoded; "" if none
    query: str
    #: (1, 0) or (1, 1); HTTP/1.2 to 1.9 are answered as 1.1 (RFC 9110 §6.2)
    version: tuple[int, int]
    #: names lower-cased, values without surrounding blanks, in the order received
    headers: tuple[tuple[str, str], ...]
    body: bytes
    #: the absolute-form authority if the target had one (RFC 9112 §3.2.2), else Host, else ""
    host: str
    keep_alive: bool

    def header(self, name: str) -> str | None:
        """The last value of a field, or None."""
        name = name.lower()
        for field, value in reversed(self.headers):
            if field == name:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        """Every value of a field, in order."""
        name = name.lower()
        return [value for field, value in self.headers if field == name]


class _Target(NamedTuple):
    # NamedTuples, not frozen dataclasses, for the parser's own per-request records:
    # as immutable, and built several times faster (no object.__setattr__ per field).
    path: str
    query: str
    #: the authority of an absolute-form target, which overrides Host
    authority: str | None


class _State(enum.Enum):
    REQUEST_LINE = enum.auto()
    HEADERS = enum.auto()
    BODY = enum.auto()
    #: the message is complete; EndOfMessage is the next event
    DONE = enum.auto()
    FAILED = enum.auto()


class _RequestHead(NamedTuple):
    method: str
    target: str
    version: tuple[int, int]


# -- events (h11's shape: `receive_data` puts bytes in, `next_event` takes events out) ----


class NeedData(enum.Enum):
    """The type of `NEED_DATA`."""

    NEED_DATA = enum.auto()


NEED_DATA: Final = NeedData.NEED_DATA
"""Event: nothing more can be told until more bytes arrive."""


@dataclass(frozen=True, slots=True)
class RequestHead:
    """Event: a request line and its header fields; `body_length` body bytes follow."""

    #: the request, its body still empty
    request: Request
    body_length: int

    def complete(self, body: Sequence[bytes]) -> Request:
        """The request with the body its BodyData events carried."""
        if not body:
            return self.request
        return _rebuilt(self.request, body=b"".join(body))


@dataclass(frozen=True, slots=True)
class BodyData:
    """Event: the next piece of the body."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    """Event: the request is complete; the next one may begin."""


END_OF_MESSAGE: Final = EndOfMessage()

Event = RequestHead | BodyData | EndOfMessage | NeedData


class RequestAssembler:
    """Gathers one request's events into the `Request` they make."""

    __slots__ = ("_body", "_head")

    def __init__(self) -> None:
        self._head: RequestHead | None = None
        self._body: list[bytes] = []

    def add(self, event: RequestHead | BodyData | EndOfMessage) -> Request | None:
        """The complete request at its EndOfMessage, else None."""
        if type(event) is RequestHead:
            self._head, self._body = event, []
            return None
        if type(event) is BodyData:
            self._body.append(event.data)
            return None
        assert self._head is not None, "EndOfMessage before a RequestHead"
        request = self._head.complete(self._body)
        self._head, self._body = None, []
        return request


class RequestParser:
    """
    One per connection; parses its requests one after another.

    `receive_data` takes the bytes as they arrive, `next_event` hands out what they mean:
    a `RequestHead`, `BodyData`, `EndOfMessage`, or `NEED_DATA`; a request that cannot be
    served raises its `HTTPError`, and so does every later call (after an error the place
    in the stream is unknown). This is the only code that finds where lines and bodies
    end: the connection, the tests and the fuzzer all go through it.
    """

    # The connection makes one for each request it reads: slots make that cheaper.
    __slots__ = (
        "_assembler",
        "_body_left",
        "_checked",
        "_data",
        "_empty_lines",
        "_error",
        "_fields",
        "_head",
        "_header_bytes",
        "_max_body",
        "_max_fields",
        "_max_header_bytes",
        "_max_line",
        "_memo",
        "_pos",
        "_scanned",
        "_state",
    )

    def __init__(
        self,
        *,
        max_line: int = MAX_LINE,
        max_fields: int = MAX_FIELDS,
        max_body: int = MAX_BODY,
        max_header_bytes: int = MAX_HEADER_BYTES,
    ) -> None:
        self._max_line = max_line
        self._max_fields = max_fields
        self._max_body = max_body
        self._max_header_bytes = max_header_bytes
        self._state = _State.REQUEST_LINE
        self._empty_lines = 0
        self._head: _RequestHead | None = None
        self._fields: list[tuple[str, str]] = []
        #: the values of the fields read while parsing, gathered as they arrive
        self._checked: dict[str, list[str]] = {}
        self._header_bytes = 0
        self._body_left = 0
        self._error: HTTPError | None = None
        # Bytes received: those before `_pos` are parsed already, and no LF lies between
        # `_pos` and `_scanned` (so a line arriving a byte at a time is searched once).
        self._data = b""
        self._pos = 0
        self._scanned = 0
        # feed()'s, made by its first call: the connection assembles requests itself.
        self._assembler: RequestAssembler | None = None
        # Only a parser with the default limits may take or give a remembered head: the
        # same bytes may be refused under other limits.
        self._memo = (max_line, max_fields, max_body, max_header_bytes) == _DEFAULT_LIMITS

    @property
    def between_requests(self) -> bool:
        """Whether no byte of the next request has arrived (not even an empty line)."""
        return (
            self._state is _State.REQUEST_LINE
            and not self._empty_lines
            and self._pos == len(self._data)
        )

    @property
    def request_line_received(self) -> bool:
        """Whether the current request's line has arrived whole (and parsed)."""
        return self._state is not _State.REQUEST_LINE

    def receive_data(self, data: bytes) -> None:
        """Take the next bytes of the stream, in any pieces."""
        if self._state is _State.FAILED:
            return
        if self._pos == len(self._data):
            # All parsed: the common case, a request in one read, costs no copy.
            self._data, self._pos, self._scanned = data, 0, 0
        else:
            # What is left is at most one line (it has no LF) or an unread pipelined part.
            self._data = self._data[self._pos :] + data
            self._scanned -= self._pos
            self._pos = 0

    def next_event(self) -> Event:
        """The next event the bytes received so far make (see the class docstring)."""
        state = self._state
        if state is _State.BODY:
            return self._body_data()
        if state is _State.DONE:
            self._reset()
            return END_OF_MESSAGE
        if state is _State.FAILED:
            assert self._error is not None
            raise self._error
        # A head may be looked up once, before any of its bytes has been searched (so a
        # head trickling in a byte at a time is not searched again with each byte).
        memo_from = -1
        if (
            self._memo
            and state is _State.REQUEST_LINE
            and self._scanned == self._pos
            and not self._empty_lines
        ):
            data, start = self._data, self._pos
            end = data.find(b"\r\n\r\n", start, start + _HEAD_WINDOW) + 4
            if end > 3:
                raw = data[start:end]
                known = _known_requests.get(raw)
                if known is None and _known_credential_requests:
                    known = _recall_with_credentials(raw)
                if known is not None:
                    self._pos = self._scanned = end
                    self._state = _State.DONE
                    return known
            memo_from = start
        try:
            while (line := self._next_line()) is not None:
                if self._state is _State.REQUEST_LINE:
                    self._request_line(line)
                else:
                    head = self._header_line(line)
                    if head is not None:
                        if memo_from >= 0:
                            self._memorize(head, memo_from)
                        return head
        except HTTPError as error:
            self._state, self._error = _State.FAILED, error
            raise
        return NEED_DATA

    def feed(self, data: bytes) -> list[Request]:
        """
        `receive_data`, then the requests completed so far: for tests and tools, which
        want whole requests; the connection takes the same events one at a time.
        """
        self.receive_data(data)
        assembler = self._assembler
        if assembler is None:
            assembler = self._assembler = RequestAssembler()
        done: list[Request] = []
        while (event := self.next_event()) is not NEED_DATA:
            request = assembler.add(event)
            if request is not None:
                done.append(request)
        return done

    def _memorize(self, head: RequestHead, start: int) -> None:
        """Remember a head parsed whole from `start` in this call, if it may be kept."""
        raw = self._data[start : self._pos]
        request = head.request
        if (
            head.body_length
            or self._empty_lines
            or len(raw) > _HEAD_WINDOW
            or not raw.endswith(b"\r\n\r\n")
            or request.query
            or b"?" in raw[: raw.find(b"\n")]
        ):
            return
        slots = tuple(i for i, (name, _) in enumerate(request.headers) if name in _SECRET_FIELDS)
        if not slots:
            if len(_known_requests) >= _KNOWN_REQUESTS_MAX:
                _known_requests.clear()
            _known_requests[raw] = head
            return
        key, values = _cut_secrets(raw)
        if len(values) != len(slots):
            # Never so (each secret field's line is cut, and only those): a reading that
            # disagreed would only cost this head its place in the table.
            return
        template = _with_values(request, slots, [""] * len(slots))
        if len(_known_credential_requests) >= _KNOWN_REQUESTS_MAX:
            _known_credential_requests.clear()
        _known_credential_requests[key] = _CredentialTemplate(template, slots)

    # -- the states -------------------------------------------------------------------

    def _next_line(self) -> bytes | None:
        """The next whole line without its line end, or None until its LF arrives."""
        data, pos = self._data, self._pos
        # RFC 9112 §2.2: a recipient may take a bare LF as a line terminator; one CR
        # before it is part of the line end, and any other CR is refused by the grammar.
        end = data.find(b"\n", self._scanned)
        if end < 0:
            # +1: the CR of a CRLF may already be here while its LF is not.
            if len(data) - pos > self._max_line + 1:
                raise self._line_too_long()
            self._scanned = len(data)
            return None
        self._pos = self._scanned = end + 1
        if end > pos and data[end - 1] == 13:  # CR
            end -= 1
        return data[pos:end]

    def _body_data(self) -> BodyData | NeedData:
        available = len(self._data) - self._pos
        if not available:
            return NEED_DATA
        size = min(available, self._body_left)
        start = self._pos
        self._pos += size
        self._scanned = self._pos
        self._body_left -= size
        if not self._body_left:
            self._state = _State.DONE
        return BodyData(self._data[start : self._pos])

    def _line_too_long(self) -> HTTPError:
        """The error for a line over the limit, by what that line would have been."""
        if self._state is _State.REQUEST_LINE:
            return URITooLong(f"The request line is longer than {self._max_line} bytes.")
        return HeaderFieldsTooLarge(f"A header line is longer than {self._max_line} bytes.")

    def _reset(self) -> None:
        self._state = _State.REQUEST_LINE
        self._empty_lines = 0
        self._head = None
        self._fields = []
        self._checked = {}
        self._header_bytes = 0
        if self._pos == len(self._data):
            # Nothing of the next request yet: let go of the last read's bytes.
            self._data, self._pos, self._scanned = b"", 0, 0

    def _request_line(self, line: bytes) -> None:
        if not line:
            # RFC 9112 §2.2: ignore at least one empty line before the request line. A
            # bound, so that a stream of CRLFs cannot hold a connection forever.
            self._empty_lines += 1
            if self._empty_lines > MAX_EMPTY_LINES:
                raise BadRequest("Too many empty lines before the request line.")
            return
        if len(line) > self._max_line:
            raise self._line_too_long()
        head = _known_heads.get(line)
        if head is not None:
            self._head = head
            self._state = _State.HEADERS
            return
        _refuse_bare_cr(line)
        match = grammar.request_line_re.fullmatch(line)
        if match is None:
            if grammar.simple_request_line_re.fullmatch(line):
                raise VersionNotSupported(
                    "A request line without an HTTP version is HTTP/0.9, which is not supported."
                )
            raise BadRequest(
                "The request line is malformed: it must be METHOD, one space, the target, "
                "one space, and HTTP/1.1 (the target percent-encoded, without spaces)."
            )
        major, minor = int(match["major"]), int(match["minor"])
        if major != 1:
            raise VersionNotSupported(f"HTTP/{major}.{minor} is not supported.")
        # RFC 9110 §6.2: a recipient of a higher minor version answers with the highest
        # minor version it supports, and may treat the message as that version.
        version = (1, min(minor, 1))
        self._head = _RequestHead(
            method=match["method"].decode("ascii"),
            target=match["target"].decode("ascii"),
            version=version,
        )
        self._state = _State.HEADERS
        if self._head.target.startswith("/") and b"?" not in line:
            # A path without a query: a query may carry a password, and so may the
            # userinfo of an absolute-form or authority-form target (refused only later),
            # neither of which may be kept beyond its request.
            _remember(_known_heads, line, self._head)

    def _header_line(self, line: bytes) -> RequestHead | None:
        if line:
            self._add_field(line)
            return None
        assert self._head is not None
        request = self._finish_head(self._head, tuple(self._fields))
        length = self._content_length()
        self._body_left = length
        self._state = _State.BODY if length else _State.DONE
        return RequestHead(request, length)

    def _add_field(self, line: bytes) -> None:
        if len(line) > self._max_line:
            raise self._line_too_long()
        self._header_bytes += len(line) + 2
        if self._header_bytes > self._max_header_bytes:
            raise HeaderFieldsTooLarge(
                f"The header fields together are larger than {self._max_header_bytes} bytes."
            )
        if len(self._fields) >= self._max_fields:
            raise HeaderFieldsTooLarge(f"More than {self._max_fields} header fields were sent.")
        _refuse_bare_cr(line)
        if line[:1] in (b" ", b"\t"):
            # RFC 9112 §5.2: a server may reject obs-fold with 400; unfolding it would read
            # differently from any front end that does not.
            raise BadRequest("A header line begins with whitespace (obsolete line folding).")
        match = grammar.field_line_re.fullmatch(line)
        if match is None:
            if grammar.space_before_colon_re.fullmatch(line):
                # RFC 9112 §5.1: a server MUST reject whitespace between name and colon.
                raise BadRequest("A header field has whitespace between its name and the colon.")
            if line.startswith(b":"):
                raise BadRequest("A header field has an empty name.")
            raise BadRequest(
                "A header field is malformed (it needs a name, a colon and a value without "
                "control characters)."
            )
        name = match["name"].decode("ascii").lower()
        # obs-text (RFC 9110 §5.5) is kept as the Latin-1 characters it stands for.
        value = match["value"].decode("latin-1")
        self._fields.append((name, value))
        if name in _CHECKED_FIELDS:
            self._checked.setdefault(name, []).append(value)

    def _finish_head(self, head: _RequestHead, fields: tuple[tuple[str, str], ...]) -> Request:
        target = _parse_target(head.method, head.target)
        hosts = self._checked.get("host", ())
        # RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, and for any request with
        # more than one Host line or an invalid Host value.
        if len(hosts) > 1:
            raise BadRequest("The request has more than one Host header field.")
        if head.version >= (1, 1) and not hosts:
            raise BadRequest("An HTTP/1.1 request must have a Host header field.")
        host = hosts[0] if hosts else ""
        if hosts:
            # Departure: RFC 9110 §7.2 lets Host be empty when the target URI has no
            # authority. Every URI served here is http(s), which must have a non-empty host
            # (RFC 9110 §4.2.1), so an empty Host can only be a mistake: refused in any version.
            if not host:
                raise BadRequest("The Host header field is empty.")
            if host not in _known_hosts:
                if not grammar.host_re.fullmatch(host):
                    raise BadRequest("The Host header field is not a valid host name and port.")
                _remember(_known_hosts, host, True)
        if len(self._checked.get("authorization", ())) > 1:
            # RFC 9110 §11.6.2: Authorization holds one set of credentials, not a list. Of
            # two, a front end may check one while this server would read the other.
            raise BadRequest("The request has more than one Authorization header field.")
        if target.authority is not None:
            # RFC 9112 §3.2.2: the absolute-form authority wins over Host.
            host = target.authority
        return Request(
            method=head.method,
            target=head.target,
            path=target.path,
            query=target.query,
            version=head.version,
            headers=fields,
            body=b"",
            host=host,
            keep_alive=_keep_alive(head.version, self._checked.get("connection", ())),
        )

    def _content_length(self) -> int:
        lengths = self._checked.get("content-length", ())
        if "transfer-encoding" in self._checked:
            if lengths:
                # RFC 9112 §6.1: both together "ought to be handled as an error"; they are
                # the classic request-smuggling vector, so never pick one of the two.
                raise BadRequest("The request has both Transfer-Encoding and Content-Length.")
            # RFC 9112 §6.1: a transfer coding the server does not understand gets 501.
            # Chunked is not implemented; no module takes a body of unknown length.
            raise TransferEncodingNotImplemented()
        if not lengths:
            # RFC 9112 §6.3 rule 7: a request with neither has no body.
            return 0
        if len(lengths) > 1:
            # Departure: RFC 9110 §8.6 lets a recipient accept repeated identical values.
            # A front end that picks a different one of two lines is a smuggling vector, and
            # no honest client repeats it; refuse it outright.
            raise BadRequest("The request has more than one Content-Length header field.")
        value = lengths[0]
        if not grammar.content_length_re.fullmatch(value):
            # Departure: RFC 9110 §8.6 also allows a list of identical values ("5, 5") to be
            # read as one. Refused for the same reason as a repeated field.
            raise BadRequest("The Content-Length header field is not a plain number.")
        # Compare digits before converting: int() of thousands of digits is slow, and
        # refused outright past sys.get_int_max_str_digits().
        significant = value.lstrip("0")
        if len(significant) > len(str(self._max_body)) or int(value) > self._max_body:
            raise ContentTooLarge(f"The request body is larger than {self._max_body} bytes.")
        return int(value)


def _cut_secrets(raw: bytes) -> tuple[bytes, list[bytes]]:
    """
    A whole head with the value of every secret field cut out, and those values as sent
    (blanks included), in order. Each value runs from its colon to its line's end: the
    LF, less one CR before it.
    """
    pieces: list[bytes] = []
    values: list[bytes] = []
    kept_from = 0
    for match in _SECRET_VALUE.finditer(raw):
        start, end = match.span(1)
        if end > start and raw[end - 1] == 13:  # CR
            end -= 1
        pieces.append(raw[kept_from:start])
        values.append(raw[start:end])
        kept_from = end
    pieces.append(raw[kept_from:])
    return b"".join(pieces), values


def _recall_with_credentials(raw: bytes) -> RequestHead | None:
    """The event a remembered head with credentials gives with the values in `raw`, if
    they are field values as the grammar takes them (else None: `raw` is parsed in full)."""
    key, values = _cut_secrets(raw)
    if not values:
        return None
    template = _known_credential_requests.get(key)
    if template is None:
        return None
    if len(values) != len(template.slots):
        return None  # never so: the key holds each secret field's name, as cut
    texts = []
    for sent in values:
        value = sent.strip(_BLANKS)
        if grammar.field_value_re.fullmatch(value) is None:
            return None
        # obs-text (RFC 9110 §5.5) is kept as the Latin-1 characters it stands for.
        texts.append(value.decode("latin-1"))
    return RequestHead(_with_values(template.request, template.slots, texts), 0)


def _with_values(request: Request, slots: Sequence[int], values: Sequence[str]) -> Request:
    """`request` with the header fields at `slots` given `values`, in order."""
    headers = list(request.headers)
    for slot, value in zip(slots, values, strict=True):
        headers[slot] = (headers[slot][0], value)
    return _rebuilt(request, headers=tuple(headers))


def _rebuilt(
    request: Request,
    *,
    headers: tuple[tuple[str, str], ...] | None = None,
    body: bytes | None = None,
) -> Request:
    """`request` with other headers or another body, built directly (`dataclasses.replace`
    costs several times more)."""
    return Request(
        method=request.method,
        target=request.target,
        path=request.path,
        query=request.query,
        version=request.version,
        headers=request.headers if headers is None else headers,
        body=request.body if body is None else body,
        host=request.host,
        keep_alive=request.keep_alive,
    )


def _refuse_bare_cr(line: bytes) -> None:
    # RFC 9112 §2.2: a bare CR must be refused or replaced by SP before processing;
    # replacing would make this server read a line some other one splits in two.
    if b"\r" in line:
        raise BadRequest("The request contains a carriage return that does not end a line.")


def _parse_target(method: str, target: str) -> _Target:
    """Split a request-target by its form (RFC 9112 §3.2), the form chosen by the method."""
    if "#" in target:
        # RFC 9112 §3.2: no request-target form has a fragment.
        raise BadRequest("The request target contains a fragment (#).")
    if method == "CONNECT":
        # RFC 9112 §3.2.3: CONNECT takes authority-form, and nothing else does.
        if not grammar.authority_form_re.fullmatch(target):
            raise BadRequest("CONNECT needs a target of the form host:port.")
        return _Target("", "", None)
    if target == "*":
        # RFC 9112 §3.2.4: asterisk-form is only for a server-wide OPTIONS.
        if method != "OPTIONS":
            raise BadRequest("The target * is only allowed with OPTIONS.")
        return _Target("", "", None)
    if target.startswith("/"):
        known = _known_paths.get(target)
        if known is not None:
            return known
        origin = grammar.origin_form_re.fullmatch(target)
        if origin is None:
            raise BadRequest("The request target is not a valid path and query.")
        parsed = _Target(_decode_path(origin["path"]), origin["query"] or "", authority=None)
        if origin["query"] is None:
            # Not a target with a query, which may carry a password (see _request_line).
            _remember(_known_paths, target, parsed)
        return parsed
    absolute = grammar.absolute_form_re.fullmatch(target)
    if absolute is None:
        raise BadRequest("The request target is neither a path nor an absolute http URL.")
    if absolute["scheme"].lower() not in ("http", "https"):
        raise BadRequest("Only http and https URLs can be requested.")
    authority = absolute["authority"]
    if "@" in authority:
        # RFC 9110 §4.2.4: a recipient should treat userinfo in an http(s) URI as an error.
        raise BadRequest("The request URL contains a user name or password.")
    if not authority or not grammar.authority_re.fullmatch(authority):
        # RFC 9110 §4.2.1: an http URI with an empty host must be rejected as invalid.
        raise BadRequest("The request URL has no valid host.")
    # RFC 9110 §4.2.3: an empty path is equivalent to "/".
    path = _decode_path(absolute["path"] or "/")
    return _Target(path, absolute["query"] or "", authority=authority)


def _decode_path(raw: str) -> str:
    """Percent-decode a path exactly once (RFC 3986 §2.1), as strict UTF-8."""
    if "%" not in raw:
        # Nothing to decode, and the grammar allows no control character in a path.
        return raw
    # The grammar has already checked that every "%" is followed by two hex digits.
    try:
        path = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The request path is not valid UTF-8 once percent-decoded.") from None
    if grammar.decoded_control_re.search(path):
        raise BadRequest("The request path contains a control character once percent-decoded.")
    return path


def _keep_alive(version: tuple[int, int], connection: Sequence[str]) -> bool:
    """RFC 9112 §9.3: persistence by version and the Connection options (RFC 9110 §7.6.1)."""
    if not connection:
        return version >= (1, 1)
    options = {option.strip(" \t").lower() for value in connection for option in value.split(",")}
    if "close" in options:
        return False
    if version >= (1, 1):
        return True
    return "keep-alive" in options
