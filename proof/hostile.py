# -*- test-case-name: tests.test_hostile -*-
"""
Hostile clients against one server process, with figures: slowloris, clients that never
read, clients that hang up mid-response, a flood of pipelined requests, oversized
requests. Then attacks on security, each against a server of its own: Security off on
listen strings that bind a public address, user names by timing, guesses spread over a
/24, a broken accounts file, TLS downgrades. Loopback only; every loop is bounded by a
time or a count.

    python -m proof.hostile [--quick]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import os
import re
import selectors
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt

from proof.table import Row, markdown
from tests.attacks import handshake, oversized_requests, send_while_reading
from tests.daemons import ROOT, SpyProcess, start_cli

HOST = "127.0.0.1"
#: the server's defaults (docs/configuration.md), which the attack is measured against
MAX_CLIENTS = 64
REQUEST_TIMEOUT = 10.0


def server_sockets(server: SpyProcess) -> int:
    """
    TCP sockets the server process holds open (its listening socket included), not the
    Unix socket it speaks to its process worker over.
    """
    tcp: set[str] = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(FileNotFoundError):
            lines = Path(f"/proc/{server.pid}/net/{table}").read_text().splitlines()[1:]
            tcp.update(line.split()[9] for line in lines)
    count = 0
    for fd in Path(f"/proc/{server.pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            link = fd.readlink().name
            if link.startswith("socket:[") and link[8:-1] in tcp:
                count += 1
    return count


@dataclass
class FreshClient:
    """
    A well-behaved client asking /-/healthy every `interval` s while an attack runs, from
    an address of its own: the attackers' address has only its own share of MaxClients.
    """

    server: SpyProcess
    interval: float = 1.0
    source: str = "127.0.0.2"
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> FreshClient:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(180)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status = self.server.get("/-/healthy", timeout=150, source=self.source)
            except OSError as e:
                self.failures.append(repr(e))
            else:
                if status == 200:
                    self.latencies.append(time.monotonic() - started)
                else:
                    self.failures.append(f"status {status}")
            self._stop.wait(self.interval)

    def summary(self) -> str:
        if not self.latencies:
            return "no fresh request answered"
        return (
            f"fresh GET answered {len(self.latencies)}/{len(self.latencies) + len(self.failures)}"
            f", latency median {statistics.median(self.latencies):.2f} s,"
            f" max {max(self.latencies):.2f} s"
        )


def slowloris(server: SpyProcess, attackers: int, seconds: float) -> Row:
    """`attackers` connections, each sending its request a byte every second, for ever."""
    request = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 100_000
    selector = selectors.DefaultSelector()
    offsets: dict[socket.socket, int] = {}

    def connect() -> None:
        conn = socket.create_connection((HOST, server.port))
        conn.setblocking(False)
        offsets[conn] = 0
        selector.register(conn, selectors.EVENT_READ)

    for _ in range(attackers):
        connect()
    timed_out = other = 0
    most_sockets = 0
    deadline = time.monotonic() + seconds
    with FreshClient(server) as fresh:
        next_byte = time.monotonic()
        while time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.1):
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                try:
                    answer = conn.recv(65536)
                except OSError:
                    answer = b""
                if answer.startswith(b"HTTP/1.1 408 "):
                    timed_out += 1
                else:
                    other += 1
                selector.unregister(conn)
                del offsets[conn]
                conn.close()
                connect()  # a real attacker comes straight back
            if time.monotonic() >= next_byte:
                next_byte += 1.0
                for conn, offset in offsets.items():
                    with contextlib.suppress(OSError):
                        conn.send(request[offset : offset + 1])
                        offsets[conn] = offset + 1
                most_sockets = max(most_sockets, server_sockets(server) - 1)
    for conn in offsets:
        selector.unregister(conn)
        conn.close()
    bound = (attackers // MAX_CLIENTS + 1) * REQUEST_TIMEOUT + 5
    passed = not fresh.failures and bool(fresh.latencies) and max(fresh.latencies) < bound
    return Row(
        "slowloris",
        f"{attackers} connections sending a byte a second for {seconds:.0f} s, reconnecting"
        f" when cut (MaxClients {MAX_CLIENTS}, RequestTimeout {REQUEST_TIMEOUT:.0f} s)",
        f"{timed_out} ended with 408 ({other} otherwise); server held at most {most_sockets}"
        f" connections; {fresh.summary()} (bound {bound:.0f} s)",
        passed,
    )


def never_reading(server: SpyProcess, clients: int, seconds: float) -> Row:
    """Clients that pipeline requests for the biggest page and never read a byte."""
    rss_before = server.rss_kib()
    answered_before = server.journal().count(" request ")
    request = b"GET /processes?format=json HTTP/1.1\r\nHost: localhost\r\n\r\n"
    conns = []
    for _ in range(clients):
        # A small receive buffer, so that what the kernel takes for a client that reads
        # nothing does not depend on how big the page is on this machine today.
        conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.connect((HOST, server.port))
        conn.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            conn.send(request * 1000)
        conns.append(conn)
    peak = rss_before
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, server.rss_kib())
        time.sleep(0.5)
    answered = server.journal().count(" request ") - answered_before
    # The server lets go of each once it has taken nothing for RequestTimeout: its kernel
    # buffers are full by now, or soon on a busy machine, where the pages come slower.
    started_waiting = time.monotonic()
    while (sockets := server_sockets(server) - 1) and (
        time.monotonic() - started_waiting < 2 * REQUEST_TIMEOUT
    ):
        time.sleep(0.5)
    waited = time.monotonic() - started_waiting
    for conn in conns:
        conn.close()
    page = len_of_page(server, "/processes?format=json")
    # What the server holds for them is bounded (one response and the transport's buffer
    # each); what the kernel holds in socket buffers is the kernel's (tcp_wmem, tcp_rmem).
    passed = sockets == 0 and peak - rss_before < 64 * 1024
    return Row(
        "clients that never read",
        f"{clients} connections each pipelining 1000 requests for /processes?format=json"
        f" ({page // 1024} KiB each), reading nothing, for {seconds:.0f} s",
        f"{answered} of {clients * 1000} answered (the rest wait unread in the kernel);"
        f" RSS +{(peak - rss_before) / 1024:.1f} MiB at peak; connections left:"
        f" {sockets}, {seconds + waited:.0f} s after they connected",
        passed,
    )


def len_of_page(server: SpyProcess, path: str) -> int:
    with socket.create_connection((HOST, server.port), timeout=30) as conn:
        conn.sendall(
            f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := conn.recv(1 << 20):
            data += chunk
    return len(data.partition(b"\r\n\r\n")[2])


def hang_ups(server: SpyProcess, count: int) -> Row:
    """Clients that ask for a big page, read a little, and reset the connection."""
    for _ in range(count):
        with socket.create_connection((HOST, server.port), timeout=30) as conn:
            conn.sendall(b"GET /processes?format=json HTTP/1.1\r\nHost: localhost\r\n\r\n")
            conn.recv(100)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    deadline = time.monotonic() + 10
    while server_sockets(server) > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    left = server_sockets(server) - 1
    status = server.get("/version")
    return Row(
        "hang-ups mid-response",
        f"{count} clients reset the connection after the first 100 bytes of /processes",
        f"connections left: {left}; /version then: {status}",
        left == 0 and status == 200,
    )


def flood(server: SpyProcess, count: int) -> Row:
    """One connection pipelining `count` requests at once, then reading the answers."""
    requests = b"".join(
        b"GET /-/healthy?n=%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % i for i in range(count)
    )
    requests += b"GET /-/healthy HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    received = bytearray()

    def read(conn: socket.socket) -> None:
        while chunk := conn.recv(1 << 20):
            received.extend(chunk)

    with FreshClient(server, interval=0.2) as fresh:
        started = time.monotonic()
        with socket.create_connection((HOST, server.port), timeout=120) as conn:
            reader = threading.Thread(target=read, args=(conn,))
            reader.start()
            conn.sendall(requests)
            reader.join(300)
        elapsed = time.monotonic() - started
    answers = received.count(b"HTTP/1.1 200 OK\r\n")
    return Row(
        "pipelined flood",
        f"one connection sending {count} pipelined requests at once",
        f"{answers} answered in order in {elapsed:.1f} s ({answers / elapsed:.0f}/s);"
        f" meanwhile {fresh.summary()}",
        answers == count + 1 and not fresh.failures,
    )


def oversized(server: SpyProcess) -> Row:
    cases = oversized_requests(1_000_000)
    seen = []
    for _, request, _ in cases:
        answer = send_while_reading(server.port, request)
        seen.append(answer[9:12].decode(errors="replace") or "reset")
    want = [case.status.decode() for case in cases]
    return Row(
        "oversized everything",
        "1 MB request line, 1 MB header line, 100 000 header lines, a 1 GB Content-Length,"
        " 1 MB of empty lines",
        f"answers {', '.join(seen)} (want {', '.join(want)})",
        seen == want,
    )


# -- attacks on the login, the listening socket and TLS (docs/security.md)


def _cli(folder: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`twistedspy` with these options, run until it ends by itself (a refused start-up)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "twistedspy.cli",
            "--pidfile=",
            f"--log-dir={folder / 'logs'}",
            *options,
        ],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def public_listen(folder: Path) -> Row:
    """Security off on listen strings whose bound address is not what they seem to say."""
    seen = []
    refused = 0
    for listen in ("tcp:0:interface=127.0.0.1:interface=0.0.0.0", "haproxy:tcp:0"):
        done = _cli(folder, f"--listen={listen}")
        # twistd has taken over stderr by then: the line goes to its log, on stdout
        said = re.search(r"refusing to serve (\S+) port", done.stdout + done.stderr)
        seen.append(f"status {done.returncode}" + (f", refused {said[1]}" if said else ""))
        refused += done.returncode == 1 and said is not None
    return Row(
        "Security off on a public socket",
        "`--listen tcp:0:interface=127.0.0.1:interface=0.0.0.0` and `--listen haproxy:tcp:0`,"
        " Security off, no --insecure",
        "; ".join(seen),
        refused == 2,
    )


def _login(port: int, user: str, password: str, source: str) -> tuple[int, float]:
    """(status, milliseconds) of one Basic login to /version from `source`."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    connection = http.client.HTTPConnection(HOST, port, timeout=60, source_address=(source, 0))
    try:
        connection.connect()
        started = time.perf_counter()
        connection.request("GET", "/version", headers={"Authorization": f"Basic {token}"})
        response = connection.getresponse()
        response.read()
        return response.status, (time.perf_counter() - started) * 1000
    finally:
        connection.close()


def login_timing(server: SpyProcess, rounds: int) -> Row:
    """Unknown users and cheap accounts against the slowest account, by the clock."""
    times: dict[str, list[float]] = {"nobody": [], "slow": [], "ann": []}
    statuses = set()
    sources = (f"127.{n}.0.1" for n in range(1, 255))
    for n in range(rounds):
        for user, kept in times.items():
            status, ms = _login(server.port, user, f"wrong-{n}", next(sources))
            statuses.add(status)
            kept.append(ms)
    slowest = statistics.median(times["slow"])
    unknown = statistics.median(times["nobody"]) / slowest
    cheap = statistics.median(times["ann"]) / slowest
    return Row(
        "user names by timing",
        f"accounts of bcrypt cost 4 (two) and 10 (one); {rounds} wrong logins of each kind,"
        " unknown user, cost-10 and cost-4 account, each from a /24 of its own",
        f"medians: unknown {statistics.median(times['nobody']):.0f} ms, cost 10"
        f" {slowest:.0f} ms, cost 4 {statistics.median(times['ann']):.0f} ms; ratios to cost"
        f" 10: {unknown:.2f} and {cheap:.2f} (bound 0.62-1.6)",
        statuses == {401} and all(1 / 1.6 < r < 1.6 for r in (unknown, cheap)),
    )


def network_guessing(server: SpyProcess) -> Row:
    """Wrong passwords from 14 addresses of one /24: one guess from each."""
    statuses = [_login(server.port, "slow", "guess", f"127.0.1.{n}")[0] for n in range(10, 24)]
    first_429 = statuses.index(429) + 1 if 429 in statuses else None
    return Row(
        "guesses spread over a /24",
        "one wrong password from each of 127.0.1.10 to 127.0.1.23 (per address: 10 allowed)",
        f"{statuses.count(401)} answered 401, {statuses.count(429)} answered 429"
        f" (first 429: guess {first_429})",
        statuses == [401] * 12 + [429] * 2,
    )


def broken_accounts(server: SpyProcess, accounts: Path) -> Row:
    """A user removed in the same edit that adds an unsupported hash; then the file deleted."""
    good = accounts.read_text()
    kept = "".join(line for line in good.splitlines(keepends=True) if not line.startswith("ann"))
    accounts.write_text(kept + "carol:$apr1$abcdefgh$0123456789abcdefghijkl\n")
    removed = _login(server.port, "ann", PASSWORD, "127.0.2.1")[0]
    kept_user = _login(server.port, "slow", PASSWORD, "127.0.2.1")[0]
    healthy = server.get("/-/healthy")
    accounts.unlink()
    deleted = _login(server.port, "slow", PASSWORD, "127.0.2.1")[0]
    accounts.write_text(good)
    restored = _login(server.port, "slow", PASSWORD, "127.0.2.1")[0]
    return Row(
        "broken accounts file",
        "user removed in the same edit that adds an $apr1$ line; then the file deleted;"
        " then put back",
        f"removed user {removed}, remaining user {kept_user}, /-/healthy {healthy};"
        f" deleted: {deleted}; put back: {restored}",
        (removed, kept_user, healthy, deleted, restored) == (401, 401, 503, 401, 200),
    )


def tls_downgrade(folder: Path) -> Row:
    """Old protocol versions and ciphers without forward secrecy or AEAD, offered alone."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run(
        ["openssl", *request, "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    listen = f"ssl:0:privateKey={key}:certKey={cert}:interface={HOST}"
    server = start_cli(folder, f"--listen={listen}", tls=True)
    try:
        offers = {
            "TLS 1.1": ("-tls1_1", "-cipher", "ALL:@SECLEVEL=0"),
            "AES128-GCM-SHA256": ("-tls1_2", "-cipher", "AES128-GCM-SHA256"),
            "ECDHE-RSA-AES128-SHA": ("-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA"),
            "TLS 1.2": ("-tls1_2",),
            "TLS 1.3": ("-tls1_3",),
        }
        answers = {
            name: (agreed if ok else "refused")
            for name, options in offers.items()
            for ok, agreed in [handshake(server.port, *options)]
        }
    finally:
        server.stop()
    refused = [name for name, agreed in answers.items() if agreed == "refused"]
    return Row(
        "TLS downgrade",
        "openssl s_client offering only TLS 1.1, only a plain-RSA cipher, only a CBC"
        " cipher; then TLS 1.2 and 1.3",
        "; ".join(f"{name}: {agreed}" for name, agreed in answers.items()),
        refused == ["TLS 1.1", "AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA"],
    )


#: the password of every account the login cases make
PASSWORD = "correct horse battery staple"


def login_attacks(folder: Path, quick: bool) -> list[Row]:
    """The login cases, against one server with Security on and accounts of mixed costs."""
    accounts = folder / "accounts"
    cheap = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode("ascii")
    slow = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode("ascii")
    accounts.write_text(f"ann:{cheap}\nbea:{cheap}\nslow:{slow}\n")
    server = start_cli(folder, "--security=on", f"--accounts={accounts}")
    try:
        # under the global budget of 100 failures: 3 * rounds + 14 + 3
        return [
            login_timing(server, 10 if quick else 25),
            network_guessing(server),
            broken_accounts(server, accounts),
        ]
    finally:
        server.stop()


def security_cases(folder: Path, quick: bool) -> list[Row]:
    """Each in a folder of its own: one server each, none left running."""
    folders = [folder / name for name in ("listen", "login", "tls")]
    for where in folders:
        where.mkdir()
    return [
        public_listen(folders[0]),
        *login_attacks(folders[1], quick),
        tls_downgrade(folders[2]),
    ]


def run(quick: bool = False) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="twistedspy-hostile-") as folder:
        server = start_cli(Path(folder))
        try:
            rss_before, fds_before = server.rss_kib(), server.fds()
            rows = [
                oversized(server),
                hang_ups(server, 50 if quick else 300),
                flood(server, 2000 if quick else 20000),
                never_reading(server, 5 if quick else 20, REQUEST_TIMEOUT + (5 if quick else 10)),
                slowloris(server, 100 if quick else 300, 15 if quick else 45),
            ]
            time.sleep(1)
            deadline = time.monotonic() + 30
            while server.fds() > fds_before and time.monotonic() < deadline:
                time.sleep(0.2)
            rss_after, fds_after = server.rss_kib(), server.fds()
            status = server.get("/version")
            rows.append(
                Row(
                    "after the attacks",
                    "the same server, once every attack has ended",
                    f"RSS {rss_before / 1024:.1f} → {rss_after / 1024:.1f} MiB; fds"
                    f" {fds_before} → {fds_after}; /version {status}",
                    status == 200 and fds_after <= fds_before,
                )
            )
        finally:
            server.stop()
        rows += security_cases(Path(folder), quick)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller numbers, to try it out")
    print(markdown(run(parser.parse_args().quick)))


if __name__ == "__main__":
    main()
