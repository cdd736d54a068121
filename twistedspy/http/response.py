# -*- test-case-name: tests.test_response -*-
"""The one response writer: every answer the server sends is serialised here.

Keeping it in one place is how every response gets its headers (Date, Server,
Content-Type, Content-Length, Cache-Control, `COMMON_HEADERS`, and the content security
policy on HTML) without any page being able to forget one.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, replace
from email.utils import formatdate
from http import HTTPStatus

from twistedspy.http.negotiation import qualities
from twistedspy.memo import BoundedMemo

#: The product without its version, on every response: the version module shows the
#: version to those logged in, and a banner would tell anyone else which flaws to try.
SERVER = b"twistedspy"

#: On every response (JSON, metrics, SVG, errors too). `nosniff`: a browser takes the
#: declared type, never a guess from the body (Fetch §3.5); `no-referrer`: a URL that
#: carried `?login=&password=` never travels on as the Referer of the page's own
#: stylesheet and script requests, nor to another site (W3C Referrer Policy §3.1).
COMMON_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)
#: No inline script: scripts and styles only from this server.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HTML_HEADERS: tuple[tuple[str, str], ...] = (("Content-Security-Policy", CONTENT_SECURITY_POLICY),)
#: docs/architecture.md, "HTTP": bodies over 1 KiB are compressed when the client allows it.
GZIP_THRESHOLD = 1024

#: status line reason phrases, looked up once rather than through the HTTPStatus enum
_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}


@dataclass(frozen=True, slots=True)
class Response:
    """An answer before serialisation; `headers` are the extras (Allow, Retry-After...)."""

    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()
    #: close the connection after this response, whatever the request asked
    close: bool = False
    #: the body gzip-compressed already (see `with_gzip`), for a response sent many times
    gzipped: bytes | None = None

    @property
    def is_html(self) -> bool:
        return self.content_type.startswith("text/html")


@dataclass(frozen=True, slots=True)
class Outcome:
    """A response and who asked for it (the journal names the user)."""

    response: Response
    user: str | None = None


def text_response(status: int, text: str, **kwargs: object) -> Response:
    """A short plain-text answer (health checks, errors for non-browser clients)."""
    return replace(
        Response(status, text.encode("utf-8"), "text/plain; charset=utf-8"),
        **kwargs,  # type: ignore[arg-type]
    )


def _compress(body: bytes) -> bytes:
    # mtime=0: the same page compresses to the same bytes (cacheable, testable).
    return gzip.compress(body, compresslevel=5, mtime=0)


def with_gzip(response: Response) -> Response:
    """The response with its compressed body made once, if it is long enough to need one."""
    if len(response.body) <= GZIP_THRESHOLD or response.gzipped is not None:
        return response
    return replace(response, gzipped=_compress(response.body))


def _allows_gzip(accept_encoding: str) -> bool:
    allowed = qualities(accept_encoding)
    quality = allowed.get("gzip", allowed.get("x-gzip", allowed.get("*", 0.0)))
    return quality > 0


#: the few `Accept-Encoding` values clients send, each judged once
_gzip_allowed = BoundedMemo(_allows_gzip, entries=64, longest=1024, size=len)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether `Accept-Encoding` (RFC 9110 §12.5.3) allows gzip: named or `*`, q > 0."""
    return _gzip_allowed(accept_encoding) if accept_encoding else False


class DateCache:
    """`Date` changes once a second; formatting it for every request is waste."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def __call__(self, now: float) -> bytes:
        second = int(now)
        if second != self._second:
            self._second = second
            self._value = formatdate(second, usegmt=True).encode("ascii")
        return self._value


def serialize(
    response: Response,
    *,
    now: float,
    date: DateCache,
    head: bool = False,
    keep_alive: bool = True,
    announce_keep_alive: bool = False,
    accept_encoding: str | None = None,
) -> bytes:
    """
    The response's bytes on the wire, always as HTTP/1.1 (docs/architecture.md, "HTTP").

    `announce_keep_alive` is for HTTP/1.0 clients that asked to keep the connection: they
    assume it closes unless told otherwise (RFC 9112 §9.3 and appendix C.2.2).
    """
    body = response.body
    parts = [
        _status_line(response.status),
        date(now),
        _type_lines(response.content_type),
        b"",  # Content-Length, once the body is final
        b"\r\nCache-Control: no-store\r\n",
        _COMMON_LINES,
    ]
    parts.extend(_field_line(name, value) for name, value in response.headers)
    if len(body) > GZIP_THRESHOLD:
        parts.append(b"Vary: Accept, Accept-Encoding\r\n")
        if accepts_gzip(accept_encoding):
            body = response.gzipped if response.gzipped is not None else _compress(body)
            parts.append(b"Content-Encoding: gzip\r\n")
    parts[3] = b"%d" % len(body)
    if response.is_html:
        parts.append(_HTML_LINES)
    if not keep_alive or response.close:
        parts.append(b"Connection: close\r\n")
    elif announce_keep_alive:
        parts.append(b"Connection: keep-alive\r\n")
    parts.append(b"\r\n")
    # HEAD: the GET headers, Content-Length included, and no body (RFC 9110 §9.3.2).
    if not head:
        parts.append(body)
    return b"".join(parts)


def _field_line(name: str, value: str) -> bytes:
    return f"{name}: {value}\r\n".encode("latin-1")


# The constant parts of a response head, made once: the status line, and the lines from
# Server to the Content-Length name, for each status and content type the server uses.
_COMMON_LINES = b"".join(_field_line(name, value) for name, value in COMMON_HEADERS)
_HTML_LINES = b"".join(_field_line(name, value) for name, value in HTML_HEADERS)
_STATUS_LINES: dict[int, bytes] = {}
_TYPE_LINES: dict[str, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        reason = _REASONS.get(status, b"Unknown")
        line = _STATUS_LINES[status] = b"HTTP/1.1 %d %s\r\nDate: " % (status, reason)
    return line


def _type_lines(content_type: str) -> bytes:
    lines = _TYPE_LINES.get(content_type)
    if lines is None:
        lines = b"\r\nServer: %s\r\nContent-Type: %s\r\nContent-Length: " % (
            SERVER,
            content_type.encode("ascii"),
        )
        if len(_TYPE_LINES) < 64:  # modules choose types; keep the table small regardless
            _TYPE_LINES[content_type] = lines
    return lines


class WireCache:
    """
    The bytes of the responses sent within the current second, by the response object
    and how it was sent: a page from the page cache or the health check is the same
    `Response` again and again, and so are its bytes until the Date changes.

    Keyed by identity (a frozen Response never changes), with the response kept in the
    entry so that its identity cannot pass to another object. Small responses only, at
    most `_WIRE_ENTRIES`, and all let go of when the second changes.
    """

    __slots__ = ("_entries", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._entries: dict[tuple[int, bool, bool, bool, bool], tuple[Response, bytes]] = {}

    def __call__(
        self,
        response: Response,
        *,
        now: float,
        date: DateCache,
        head: bool = False,
        keep_alive: bool = True,
        announce_keep_alive: bool = False,
        accept_encoding: str | None = None,
    ) -> bytes:
        """`serialize`'s bytes for these arguments."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._entries = {}
        gzipped = len(response.body) > GZIP_THRESHOLD and accepts_gzip(accept_encoding)
        key = (id(response), head, keep_alive, announce_keep_alive, gzipped)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is response:
            return entry[1]
        data = serialize(
            response,
            now=now,
            date=date,
            head=head,
            keep_alive=keep_alive,
            announce_keep_alive=announce_keep_alive,
            accept_encoding="gzip" if gzipped else None,
        )
        if len(data) <= _WIRE_LONGEST:
            if len(self._entries) >= _WIRE_ENTRIES:
                self._entries = {}
            self._entries[key] = (response, data)
        return data


#: WireCache's bounds: entries, and bytes of one response
_WIRE_ENTRIES = 32
_WIRE_LONGEST = 16384
