"""
Requests past each of the server's limits, and the status each must get: asserted small in
`tests/test_hostile.py`, measured at full size by `proof/hostile.py`; and a TLS handshake
as `openssl s_client` makes it, for the TLS tests and the downgrade attempts of both.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import threading
from typing import NamedTuple


class Oversized(NamedTuple):
    what: str
    request: bytes
    #: the status the server must answer before it closes
    status: bytes


def oversized_requests(size: int) -> list[Oversized]:
    """One request past each limit, some `size` bytes long (docs/architecture.md, "HTTP")."""
    return [
        Oversized("request line", b"GET /" + b"a" * size + b" HTTP/1.1\r\n", b"414"),
        Oversized(
            "header line",
            b"GET / HTTP/1.1\r\nHost: localhost\r\nX: " + b"a" * size + b"\r\n",
            b"431",
        ),
        Oversized(
            "header lines",
            b"GET / HTTP/1.1\r\nHost: localhost\r\n" + b"X: y\r\n" * (size // 10),
            b"431",
        ),
        Oversized(
            "Content-Length of 1 GB",
            b"POST /message HTTP/1.1\r\nHost: localhost\r\nContent-Length: 999999999\r\n\r\n"
            + b"z" * size,
            b"413",
        ),
        Oversized("empty lines", b"\r\n" * (size // 2), b"400"),
    ]


def send_while_reading(port: int, request: bytes) -> bytes:
    """
    Send while a second thread reads. The server answers an oversized request before it
    has all of it and closes with input unread, so the kernel resets the connection
    (RFC 9112 §9.6); a client that reads only after sending may lose the answer to it.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        received: list[bytes] = []

        def read() -> None:
            with contextlib.suppress(OSError):
                while chunk := conn.recv(65536):
                    received.append(chunk)

        reader = threading.Thread(target=read)
        reader.start()
        with contextlib.suppress(OSError):
            conn.sendall(request)
        reader.join(30)
        return b"".join(received)


def handshake(port: int, *options: str) -> tuple[bool, str]:
    """
    Whether `openssl s_client` with these options completes a handshake with a server on
    loopback, and the protocol and cipher agreed ("TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256"),
    or the end of what it said when it did not.
    """
    done = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *options],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # "New, TLSv1.3, Cipher is X" after the handshake names the cipher, and the protocol
    # too but for ciphers older than TLS 1.2 ("SSLv3"); the session block, printed at
    # once for TLS 1.2 (and only with a ticket for 1.3), names the protocol.
    new = re.search(r"^New, (\S+), Cipher is (\S+)$", done.stdout, re.MULTILINE)
    protocol = re.search(r"^\s+Protocol\s*: (\S+)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or new is None or new[2] == "(NONE)":
        return False, done.stdout[-300:] + done.stderr[-300:]
    return True, f"{protocol[1] if protocol else new[1]} {new[2]}"
