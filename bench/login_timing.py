"""Time logins over a real socket: unknown user vs wrong passwords, with mixed bcrypt costs.

An unknown user must cost the same time as a wrong password for the slowest account, so
that nobody can learn which user names exist by timing the 401s, whatever costs the
accounts use (docs/security.md). This starts a real twistedspy (`python -m twistedspy.cli`,
Security on) in a scratch folder with two cost-4 accounts and one cost-10 account, then
sends N failed logins of each kind (unknown user, wrong password for the cost-10 account,
wrong password for a cost-4 one), interleaved, and prints the medians and their ratios to
the cost-10 failure, and the median time of a login the server has already verified (its
success cache).

Each failed attempt comes from a loopback /24 of its own (127.1.0.1, 127.2.0.1, ...: the
kernel routes all of 127.0.0.0/8 to lo), so neither the per-address nor the per-network
login throttle answers 429; the global budget (100 failures in 5 minutes) caps N at 33.

Run: PYTHONPATH=. python bench/login_timing.py [N]   (N <= 33, default 30)
"""

from __future__ import annotations

import base64
import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bcrypt

from bench.procstat import free_port

#: the slowest account's cost, and the cheap accounts'
COST, CHEAP_COST = 10, 4
PASSWORD = "correct horse battery staple"


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
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    if not 1 <= rounds <= 33:
        raise SystemExit("N must be 1 to 33 (the global budget is 100 failed logins)")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(COST)).decode("ascii")
        cheap = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(CHEAP_COST)).decode("ascii")
        (folder / "accounts").write_text(f"ann:{cheap}\nbea:{cheap}\nslow:{hashed}\n")
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
            cheap_wrong: list[float] = []
            sources = (f"127.{n}.0.1" for n in range(1, 255))
            for n in range(rounds):
                # interleaved, so that drift in the machine's load hits all alike
                for user, times in (("nobody", unknown), ("slow", wrong), ("ann", cheap_wrong)):
                    status, ms = login_ms(
                        port,
                        f"{user}{n}" if user == "nobody" else user,
                        f"wrong-{n}",
                        next(sources),
                    )
                    assert status == 401, status
                    times.append(ms)
            # the same request with no credentials: a 401 with no bcrypt check at all
            anonymous = []
            for _ in range(rounds):
                status, ms = login_ms(port, "", "", "127.0.0.1")
                anonymous.append(ms)
            status, first = login_ms(port, "slow", PASSWORD)
            assert status == 200, status
            cached = []
            for _ in range(rounds):
                status, ms = login_ms(port, "slow", PASSWORD)
                assert status == 200, status
                cached.append(ms)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    unknown_ms, wrong_ms = statistics.median(unknown), statistics.median(wrong)
    cheap_ms = statistics.median(cheap_wrong)
    checks = []
    for _ in range(rounds):
        start = time.perf_counter()
        bcrypt.checkpw(b"wrong", hashed.encode("ascii"))
        checks.append((time.perf_counter() - start) * 1000)
    print(f"accounts of bcrypt cost {COST} and {CHEAP_COST}, {rounds} logins of each kind,")
    print("medians over a real socket:")
    print(f"  unknown user              401  {unknown_ms:8.1f} ms")
    print(f"  wrong password, cost {COST:<2}   401  {wrong_ms:8.1f} ms")
    print(f"  wrong password, cost {CHEAP_COST:<2}   401  {cheap_ms:8.1f} ms")
    print(f"  ratio unknown/cost {COST}          {unknown_ms / wrong_ms:8.2f}")
    print(f"  ratio cost {CHEAP_COST}/cost {COST}           {cheap_ms / wrong_ms:8.2f}")
    print(f"  no credentials            401  {statistics.median(anonymous):8.1f} ms")
    print(f"  bare bcrypt.checkpw            {statistics.median(checks):8.1f} ms (cost {COST})")
    print(f"  first success             200  {first:8.1f} ms")
    print(f"  cached success            200  {statistics.median(cached):8.1f} ms")


if __name__ == "__main__":
    main()
