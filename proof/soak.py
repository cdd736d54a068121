# -*- test-case-name: tests.test_hostile -*-
"""
Soak: mixed load against one server process for ten minutes (configurable): every
module, HTML and JSON, good and bad logins, posts. Passes when no response had a status
the load did not ask for, resident memory is flat (least-squares slope of VmRSS, sampled
every few seconds, in KiB/min) and the file descriptors do not grow.

    python -m proof.soak [--seconds 600] [--quick]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import random
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import bcrypt

from proof.server import ServerProcess, start
from proof.table import Row, least_squares_slope, markdown

GOOD = {"Authorization": "Basic " + base64.b64encode(b"soak:soak-password").decode()}
BAD = {"Authorization": "Basic " + base64.b64encode(b"soak:wrong").decode()}
PAGES = [
    "/",
    "/version",
    "/processes",
    "/processes?format=json&sort=rss&limit=20",
    "/meminfo",
    "/meminfo?format=json",
    "/diskfree",
    "/diskfree?format=json&all=1",
    "/network",
    "/network?format=json",
    "/cpu",
    "/cpu?format=json",
    "/metrics",
    "/message",
    "/-/healthy",
]
#: RSS may grow at most this much per minute over the run (allocator noise, caches).
RSS_SLOPE_LIMIT = 64.0


def ask(
    client: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
) -> http.client.HTTPResponse:
    client.request(method, path, body=body, headers=headers)
    response = client.getresponse()
    response.read()
    return response


def worker(server: ServerProcess, stop: threading.Event, seed: int, tally: Counter[str]) -> None:
    rng = random.Random(seed)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    # Bad logins come from another loopback address: the throttle (SPEC §3) slows the
    # address that fails, and would otherwise answer the good logins 429 too.
    attacker = http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=60, source_address=("127.0.0.2", 0)
    )
    while not stop.is_set():
        roll = rng.random()
        method, path, headers, body, want = "GET", rng.choice(PAGES), dict(GOOD), None, {200}
        client = connection
        if roll < 0.02:
            client, path, headers, want = attacker, "/version", dict(BAD), {401, 429}
        elif roll < 0.10:
            method, path, want = "POST", "/message", {200}
            body = f"text=soak {seed} {time.monotonic()}".encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif roll < 0.15:
            path, want = "/nonesuch", {404}
        if rng.random() < 0.5:
            headers["Accept"] = "application/json"
        try:
            try:
                response = ask(client, method, path, body, headers)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed this connection after KeepAliveTimeout idle just as
                # the request went out: retried once on a new one, as HTTP clients do
                # (RFC 9112 §9.3.1); every request here is safe to repeat.
                client.close()
                tally["retried after a keep-alive close"] += 1
                response = ask(client, method, path, body, headers)
            status = response.status
            if response.getheader("Connection", "").lower() == "close":
                client.close()
        except (OSError, http.client.HTTPException) as e:
            tally[f"error {type(e).__name__} {method} {path}"] += 1
            client.close()
            continue
        tally["requests"] += 1
        if status not in want:
            tally[f"unexpected {status} {method} {path}"] += 1
    connection.close()
    attacker.close()


def run(seconds: float = 600.0, workers: int = 4, sample_every: float = 5.0) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="twistedspy-soak-") as name:
        folder = Path(name)
        accounts = folder / "accounts"
        accounts.write_text(
            "soak:" + bcrypt.hashpw(b"soak-password", bcrypt.gensalt(5)).decode() + "\n"
        )
        server = start(folder / "server", "--security=on", f"--accounts={accounts}")
        stop = threading.Event()
        tally: Counter[str] = Counter()
        threads = [
            threading.Thread(target=worker, args=(server, stop, seed, tally), daemon=True)
            for seed in range(workers)
        ]
        rss: list[tuple[float, float]] = []
        fds: list[int] = []
        started = time.monotonic()
        try:
            for thread in threads:
                thread.start()
            while (elapsed := time.monotonic() - started) < seconds:
                rss.append((elapsed / 60, float(server.rss_kib())))
                fds.append(server.fds())
                time.sleep(sample_every)
            stop.set()
            for thread in threads:
                thread.join(90)
            time.sleep(1)
            fds_end = server.fds()
        finally:
            stop.set()
            server.stop()
    # The first minute warms caches (imports, history buffers, the thread pool): the slope
    # is taken over the rest when there is a rest.
    steady = [p for p in rss if p[0] >= 1.0] if seconds >= 180 else rss[len(rss) // 3 :]
    slope = least_squares_slope(steady)
    retried = tally.pop("retried after a keep-alive close", 0)
    unexpected = {k: v for k, v in tally.items() if k != "requests"}
    return [
        Row(
            "soak",
            f"{seconds / 60:.0f} min of mixed load, {workers} keep-alive clients: every module,"
            " HTML and JSON, good and bad logins, posts",
            f"{tally['requests']} requests, {sum(unexpected.values())} unexpected"
            f"{' ' + str(unexpected) if unexpected else ''} ({retried} retried after a"
            f" keep-alive close); RSS {rss[0][1] / 1024:.1f} →"
            f" {rss[-1][1] / 1024:.1f} MiB, slope {slope:+.1f} KiB/min; fds"
            f" {fds[0]} → max {max(fds)} → {fds_end}",
            not unexpected and slope < RSS_SLOPE_LIMIT and fds_end <= fds[0],
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--quick", action="store_true", help="one minute, to try it out")
    args = parser.parse_args()
    print(markdown(run(60.0 if args.quick else args.seconds)))


if __name__ == "__main__":
    main()
