"""Time logins over a real socket: unknown user vs wrong password, and a cached success.

SPEC §3 wants an unknown user to cost the same time as a wrong password, so that nobody
can learn which user names exist by timing the 401s. This starts a real twistedspy
(`python -m twistedspy.cli`, Security on, bcrypt cost 10 accounts) in a scratch folder,
then sends N logins of each kind, interleaved, and prints the medians and their ratio,
and the median time of a login the server has already verified (its success cache).

Each failed attempt comes from its own loopback address (127.0.0.2, .3, ...: the kernel
routes all of 127.0.0.0/8 to lo), so the per-address login throttle never answers 429.

Run: PYTHONPATH=. python bench/login_timing.py [N]   (N <= 120, default 40)
"""

from __future__ import annotations

import base64
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bcrypt

COST = 10
PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def login_ms(port: int, user: str, password: str, source: str = "127.0.0.1") -> tuple[int, float]:
    """(status, milliseconds) of one GET /version with Basic credentials on a new connection."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    headers = {"Authorization": f"Basic {token}"} if user else {}
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=30, source_address=(source, 0)
    )
    try:
        connection.connect()
        start = time.perf_counter()
        connection.request("GET", "/version", headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, (time.perf_counter() - start) * 1000
    finally:
        connection.close()


def wait_until_serving(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/-/healthy")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the server did not start within 30 s")


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    if not 1 <= rounds <= 120:
        raise SystemExit("N must be 1 to 120 (one loopback address per failed login)")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(COST)).decode("ascii")
        (folder / "accounts").write_text(f"alice:{hashed}\nbob:{hashed}\n")
        port = free_port()
        root = Path(__file__).resolve().parent.parent
        env = {**os.environ, "PYTHONPATH": str(root)}
        command = [sys.executable, "-m", "twistedspy.cli", "-p", str(port), "-s", "on"]
        command += ["--accounts", "accounts", "--pidfile", ""]
        server = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL)
        try:
            wait_until_serving(port, server)
            unknown: list[float] = []
            wrong: list[float] = []
            sources = (f"127.0.0.{n}" for n in range(2, 255))
            for n in range(rounds):
                # interleaved, so that drift in the machine's load hits both alike
                status, ms = login_ms(port, f"nobody{n}", PASSWORD, next(sources))
                assert status == 401, status
                unknown.append(ms)
                status, ms = login_ms(port, "alice", f"wrong-{n}", next(sources))
                assert status == 401, status
                wrong.append(ms)
            # the same request with no credentials: a 401 with no bcrypt check at all
            anonymous = []
            for _ in range(rounds):
                status, ms = login_ms(port, "", "", "127.0.0.1")
                anonymous.append(ms)
            status, first = login_ms(port, "bob", PASSWORD)
            assert status == 200, status
            cached = []
            for _ in range(rounds):
                status, ms = login_ms(port, "bob", PASSWORD)
                assert status == 200, status
                cached.append(ms)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    unknown_ms, wrong_ms = statistics.median(unknown), statistics.median(wrong)
    checks = []
    for _ in range(rounds):
        start = time.perf_counter()
        bcrypt.checkpw(b"wrong", hashed.encode("ascii"))
        checks.append((time.perf_counter() - start) * 1000)
    print(f"bcrypt cost {COST}, {rounds} logins of each kind, medians over a real socket:")
    print(f"  unknown user    401  {unknown_ms:8.1f} ms")
    print(f"  wrong password  401  {wrong_ms:8.1f} ms")
    print(f"  ratio unknown/wrong  {unknown_ms / wrong_ms:8.2f}")
    print(f"  no credentials  401  {statistics.median(anonymous):8.1f} ms")
    print(f"  bare bcrypt.checkpw  {statistics.median(checks):8.1f} ms (in this process)")
    print(f"  first success   200  {first:8.1f} ms")
    print(f"  cached success  200  {statistics.median(cached):8.1f} ms")


if __name__ == "__main__":
    main()
