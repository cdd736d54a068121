# -*- test-case-name: tests.test_response -*-
"""The one response writer: every answer the server sends is serialised here.

Keeping it in one place is how every response gets the headers SPEC §2 promises (Date,
Server, Content-Type, Content-Length, Cache-Control, and the security headers on HTML)
without any page being able to forget one.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, replace
from email.utils import formatdate
from http import HTTPStatus

from twistedspy import __version__

SERVER = f"twistedspy/{__version__}".encode("ascii")

#: No inline script (SPEC §2): scripts and styles only from this server.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HTML_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
)
#: SPEC §2: bodies over 1 KiB are compressed when the client allows it.
GZIP_THRESHOLD = 1024

#: status line reason phrases, looked up once rather than through the HTTPStatus enum
_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}

_CODING = re.compile(r"\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*(?:;\s*q\s*=\s*([0-9.]+)\s*)?")


@dataclass(frozen=True, slots=True)
class Response:
    """An answer before serialisation; `headers` are the extras (Allow, Retry-After...)."""

    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()
    #: close the connection after this response, whatever the request asked
    close: bool = False

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


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether `Accept-Encoding` (RFC 9110 §12.5.3) allows gzip: named or `*`, q > 0."""
    if not accept_encoding:
        return False
    allowed: dict[str, float] = {}
    for item in accept_encoding.split(","):
        match = _CODING.fullmatch(item)
        if match is None:
            continue
        try:
            quality = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            continue
        allowed[match.group(1).lower()] = quality
    quality = allowed.get("gzip", allowed.get("x-gzip", allowed.get("*", 0.0)))
    return quality > 0


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
    The response's bytes on the wire, always as HTTP/1.1 (SPEC §2).

    `announce_keep_alive` is for HTTP/1.0 clients that asked to keep the connection: they
    assume it closes unless told otherwise (RFC 9112 §9.3 and appendix C.2.2).
    """
    body = response.body
    extra: list[tuple[str, str]] = list(response.headers)
    if len(body) > GZIP_THRESHOLD:
        extra.append(("Vary", "Accept, Accept-Encoding"))
        if accepts_gzip(accept_encoding):
            # mtime=0: the same page compresses to the same bytes (cacheable, testable).
            body = gzip.compress(body, compresslevel=5, mtime=0)
            extra.append(("Content-Encoding", "gzip"))
    if response.is_html:
        extra.extend(HTML_HEADERS)
    reason = _REASONS.get(response.status, b"Unknown")
    lines = [
        b"HTTP/1.1 %d %s" % (response.status, reason),
        b"Date: " + date(now),
        b"Server: " + SERVER,
        b"Content-Type: " + response.content_type.encode("ascii"),
        b"Content-Length: %d" % len(body),
        b"Cache-Control: no-store",
    ]
    lines.extend(f"{name}: {value}".encode("latin-1") for name, value in extra)
    if not keep_alive or response.close:
        lines.append(b"Connection: close")
    elif announce_keep_alive:
        lines.append(b"Connection: keep-alive")
    head_bytes = b"\r\n".join(lines) + b"\r\n\r\n"
    # HEAD: the GET headers, Content-Length included, and no body (RFC 9110 §9.3.2).
    return head_bytes if head else head_bytes + body
