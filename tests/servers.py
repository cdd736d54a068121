"""A real twistedspy server on 127.0.0.1:0 for integration tests, and plain clients for it.

Clients run in threads (`deferToThread`) so that the server, on the test's reactor, keeps
serving while they block: that is how a real client meets it.
"""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from twistedspy.service import SpyService, makeService
from twistedspy.settings import Settings


@dataclass
class RunningServer:
    service: SpyService
    port: int
    folder: Path

    @property
    def log_dir(self) -> Path:
        return self.service.settings.log_dir

    def journal_text(self) -> str:
        # The lines of the reactor's current turn are written at its end; a test reading
        # in the middle of one wants them too.
        self.service.journal.flush()
        return "".join(p.read_text() for p in sorted(self.log_dir.glob("*.log")))

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Any:
        """A Deferred firing with a `Reply` for one request over a fresh connection."""
        return deferToThread(fetch, self.port, method, path, headers or {}, body)

    def exchange(self, data: bytes, *, timeout: float = 10.0) -> Any:
        """A Deferred firing with every byte the server sends until it closes."""
        return deferToThread(exchange, self.port, data, timeout)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def start_server(case: TestCase, **overrides: Any) -> RunningServer:
    """Start a server with these settings over test defaults; it stops at the test's end."""
    folder = Path(case.mktemp())
    folder.mkdir(parents=True)
    settings = replace(
        Settings(port=0, log_dir=folder / "logs", message_file=folder / "messages.jsonl"),
        **overrides,
    )
    service = makeService(settings, reactor)
    service.startService()
    # A test may stop the service itself (shutdown tests): stop it only if still running.
    case.addCleanup(lambda: service.stopService() if service.running else None)
    assert service.port is not None
    return RunningServer(service, service.port.getHost().port, folder)  # type: ignore[attr-defined]


def fetch(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes = b"",
    source: str | None = None,
) -> Reply:
    """One request over a fresh connection; `source` picks the client's own address."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=30, source_address=(source, 0) if source else None
    )
    try:
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, half-close, and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as client:
        client.sendall(data)
        client.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def split_responses(data: bytes, *, head: bool = False) -> list[tuple[int, bytes, bytes]]:
    """Raw response bytes as (status, head, body) triples, framed by Content-Length."""
    responses = []
    while data:
        head_bytes, separator, rest = data.partition(b"\r\n\r\n")
        if not separator:
            raise ValueError(f"incomplete response head: {data[:80]!r}")
        status = int(head_bytes.split(b" ", 2)[1])
        length = 0
        for line in head_bytes.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = 0 if head else int(value)
        responses.append((status, head_bytes, rest[:length]))
        data = rest[length:]
    return responses
