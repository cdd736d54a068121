# -*- test-case-name: tests.test_soak -*-
"""
Soak: mixed load against one server process for ten minutes (configurable): every
module, HTML and JSON, good and bad logins, posts. Passes when no response had a status
the load did not ask for, resident memory is flat (least-squares slope of VmRSS, sampled
every few seconds, in KiB/min, after a warm-up: see WARM_UP_MINUTES) and the file
descriptors do not grow. `--trace DIR` runs the server under tracemalloc
(proof/traced_server.py) to tell which allocations grow.

    python -m proof.soak [--seconds 600 | --minutes 10] [--quick] [--trace DIR]
                         [--series FILE] [--warm-up-clients N]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import math
import random
import signal
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import bcrypt

from proof.table import Row, least_squares_slope, markdown
from tests.allocators import allocators_mib
from tests.daemons import SpyProcess, start_cli

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
#: RSS may grow at most this much per minute after the warm-up (allocator noise, caches).
RSS_SLOPE_LIMIT = 64.0
#: Minutes at the start left out of the slope that passes or fails. Run under tracemalloc
#: (`--trace`), the Python heap is flat from the first minute on; what VmRSS gains
#: meanwhile is the allocators settling: glibc's arena (one for all threads, and no
#: per-thread caches, as the systemd units run it: see twistedspy/allocator.py and
#: proof/server.py) and pymalloc's arenas grow to what the peaks of the load
#: need and then stay, as do the bounded caches (pages, parsed request lines and Hosts,
#: successful logins, the login throttle's table). That is a level, not a leak: it
#: counts in the whole-run slope that the figure also shows, but not in the pass mark.
#: An hour-long run (`make soak-hour`) shows the level: flat over its second half.
WARM_UP_MINUTES = 2.0
#: Clients during the warm-up, against `workers` after it. What the allocators keep is set
#: by the peaks of the load (several big pages built, rendered and written at once), which
#: four clients reach only by chance, now and then, for ten minutes or more; sixteen reach
#: them within the warm-up. Two ten-minute runs ended at the same RSS (60.8 and 60.9
#: MiB), but with sixteen clients first it was nearly reached by the end of the warm-up
#: (+46 KiB/min after it), and with four it was still being reached (+99 KiB/min).
WARM_UP_CLIENTS = 16


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


def worker(server: SpyProcess, stop: threading.Event, seed: int, tally: Counter[str]) -> None:
    rng = random.Random(seed)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    # Bad logins come from another loopback address: the throttle (docs/security.md) slows the
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


def run(
    seconds: float = 600.0,
    workers: int = 4,
    sample_every: float = 5.0,
    *,
    trace: Path | None = None,
    trace_frames: int = 25,
    series: Path | None = None,
    warm_up_clients: int = WARM_UP_CLIENTS,
) -> list[Row]:
    # The slope that passes or fails leaves out the warm-up (WARM_UP_MINUTES, why there);
    # a run too short to have a rest after it leaves out its first third instead.
    warm_up = WARM_UP_MINUTES if seconds >= 2 * WARM_UP_MINUTES * 60 else seconds / 180
    with tempfile.TemporaryDirectory(prefix="twistedspy-soak-") as name:
        folder = Path(name)
        accounts = folder / "accounts"
        accounts.write_text(
            "soak:" + bcrypt.hashpw(b"soak-password", bcrypt.gensalt(5)).decode() + "\n"
        )
        # Always through the tracing wrapper: with no frames to trace (no --trace) it only
        # reports, once a minute, what the allocators hold (proof/traced_server.py), which
        # tells memory the allocators keep for reuse from memory they keep asking for.
        stats = folder / "allocators" if trace is None else trace
        server = start_cli(
            folder / "server",
            "--security=on",
            f"--accounts={accounts}",
            # posts are 8 % of the load: the per-address limit (10 a minute) would answer
            # most of them 429, which the limit's own tests cover
            "--message-rate=1000000",
            env={
                "TWISTEDSPY_SNAPSHOTS": str(stats.resolve()),
                "TWISTEDSPY_TRACE_FRAMES": str(0 if trace is None else trace_frames),
            },
            module="proof.traced_server",
        )
        snapshots = 0
        stop, warmed_up = threading.Event(), threading.Event()
        tally: Counter[str] = Counter()
        threads = [
            threading.Thread(target=worker, args=(server, stop, seed, tally), daemon=True)
            for seed in range(workers)
        ] + [
            threading.Thread(target=worker, args=(server, warmed_up, seed, tally), daemon=True)
            for seed in range(workers, max(workers, warm_up_clients))
        ]
        rss: list[tuple[float, float]] = []
        fds: list[int] = []
        started = time.monotonic()
        try:
            for thread in threads:
                thread.start()
            while (elapsed := time.monotonic() - started) < seconds:
                if elapsed >= warm_up * 60:
                    warmed_up.set()
                rss.append((elapsed / 60, float(server.rss_kib())))
                fds.append(server.fds())
                if elapsed >= 60 * snapshots:
                    server.process.send_signal(signal.SIGUSR2)
                    snapshots += 1
                time.sleep(sample_every)
            stop.set()
            warmed_up.set()
            for thread in threads:
                thread.join(90)
            time.sleep(1)
            fds_end = server.fds()
            server.process.send_signal(signal.SIGUSR2)
            deadline = time.monotonic() + 60
            while len(list(stats.glob("*.txt"))) <= snapshots and time.monotonic() < deadline:
                time.sleep(0.5)
            held = [allocators_mib(f.read_text()) for f in sorted(stats.glob("*.txt"))]
            for path in (trace and trace / "rss.txt", series):
                if path:
                    path.write_text("".join(f"{m:.3f} {k:.0f}\n" for m, k in rss))
        finally:
            stop.set()
            warmed_up.set()
            server.stop()
    steady = [p for p in rss if p[0] >= warm_up]
    # The allocators' figure taken when the warm-up ended (one a minute), and the last.
    held_warm, held_end = held[min(math.ceil(warm_up), len(held) - 1)], held[-1]
    slope = least_squares_slope(steady)
    whole_slope = least_squares_slope(rss)
    # What a long run adds: the slope once whatever settles has had half the run to do so.
    last_half = least_squares_slope([p for p in rss if p[0] >= seconds / 120])
    retried = tally.pop("retried after a keep-alive close", 0)
    unexpected = {k: v for k, v in tally.items() if k != "requests"}
    return [
        Row(
            "soak",
            f"{seconds / 60:.0f} min of mixed load, {workers} keep-alive clients"
            f" ({max(workers, warm_up_clients)} in the {warm_up:.3g} min of warm-up):"
            " every module, HTML and JSON, good and bad logins, posts",
            f"{tally['requests']} requests, {sum(unexpected.values())} unexpected"
            f"{' ' + str(unexpected) if unexpected else ''} ({retried} retried after a"
            f" keep-alive close); RSS {rss[0][1] / 1024:.1f} →"
            f" {rss[-1][1] / 1024:.1f} MiB ({steady[0][1] / 1024:.1f} MiB after"
            f" {warm_up:.3g} min of warm-up), slope {whole_slope:+.1f} KiB/min over the whole"
            f" run, {slope:+.1f} KiB/min after the warm-up (limit {RSS_SLOPE_LIMIT:g}),"
            f" {last_half:+.1f} KiB/min over the second half;"
            f" held by the allocators after the warm-up → at the end: pymalloc arenas"
            f" {held_warm[0]:.1f} → {held_end[0]:.1f} MiB, glibc malloc (all arenas)"
            f" {held_warm[1]:.1f} → {held_end[1]:.1f} MiB (in use {held_warm[2]:.1f} →"
            f" {held_end[2]:.1f}); fds {fds[0]} → max {max(fds)} → {fds_end}",
            not unexpected and slope < RSS_SLOPE_LIMIT and fds_end <= fds[0],
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--quick", action="store_true", help="one minute, to try it out")
    parser.add_argument("--minutes", type=float, help="the same as --seconds, in minutes")
    parser.add_argument(
        "--trace",
        type=Path,
        metavar="DIR",
        help="run the server under tracemalloc and write a snapshot a minute to DIR"
        " (see proof/traced_server.py)",
    )
    parser.add_argument(
        "--trace-frames",
        type=int,
        default=25,
        metavar="N",
        help="frames a trace with --trace; 0: the allocators' figures only, at full speed",
    )
    parser.add_argument(
        "--series",
        type=Path,
        metavar="FILE",
        help="write the RSS samples to FILE: minutes since the start, then KiB, a line each",
    )
    parser.add_argument(
        "--warm-up-clients",
        type=int,
        default=WARM_UP_CLIENTS,
        metavar="N",
        help=f"clients during the warm-up (default {WARM_UP_CLIENTS}; 4 after it)",
    )
    args = parser.parse_args()
    seconds = args.seconds if args.minutes is None else args.minutes * 60
    print(
        markdown(
            run(
                60.0 if args.quick else seconds,
                trace=args.trace,
                trace_frames=args.trace_frames,
                series=args.series,
                warm_up_clients=args.warm_up_clients,
            )
        )
    )


if __name__ == "__main__":
    main()
