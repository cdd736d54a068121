"""One `/metrics` scrape beside node_exporter's, and the background sampler's CPU cost.

Starts N extra sleeping processes (default 1000), a twistedspy server and node_exporter
(Debian's prometheus-node-exporter) on loopback ports, scrapes each 20 times after a
warm-up and prints the medians: the client's wall time for both, and twistedspy's own
server-side time from its request histogram (module="metrics"). node_exporter runs
twice: with its default collectors, and with only those giving the facts twistedspy
exports. Then it times the samplers of the cpu and network pages (N ticks through a
`task.Clock`, CPU time of this process) and extrapolates to one hour of running.

`--before DIR` also starts twistedspy from another checkout (with its own `.venv`, e.g.
the main branch) in the same run; the two servers' scrapes are taken in turn, so that a
change is measured side by side with the code it replaces.

Run: PYTHONPATH=. python bench/metrics.py [N] [--before DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock
from twisted.logger import Logger

from bench.processes import sleepers
from bench.procstat import free_port
from twistedspy.history import SAMPLE_INTERVAL, Recorder, Sampler
from twistedspy.modules.cpu import cpu_point, read_cpu_sample
from twistedspy.modules.network import read_network_sample, traffic_point

ROUNDS = 20
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
#: node_exporter collectors that give what twistedspy exports under node_* names
SAME_FACTS = ("cpu", "loadavg", "stat", "meminfo", "filesystem", "netdev", "uname", "os", "time")


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as reply:
        body: bytes = reply.read()
        return body


def wait_for(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            get(url)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within 30 s")


@contextlib.contextmanager
def running(argv: list[str], url: str, root: Path | None = None) -> Iterator[None]:
    """Runs argv until the block ends; `root`: the twistedspy checkout it runs from."""
    env = None if root is None else {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=root
    )
    try:
        wait_for(url)
        yield
    finally:
        process.terminate()
        process.wait()


def scrape_ms(*urls: str) -> list[tuple[float, int]]:
    """
    For each URL, the median wall time of ROUNDS scrapes and the number of samples in
    one; the URLs' scrapes taken in turn, so that all see the same machine.
    """
    for url in urls:
        for _ in range(3):
            get(url)
    times: list[list[float]] = [[] for _ in urls]
    bodies = [b""] * len(urls)
    for _ in range(ROUNDS):
        for index, url in enumerate(urls):
            started = time.perf_counter()
            bodies[index] = get(url)
            times[index].append((time.perf_counter() - started) * 1000)
    return [
        (
            statistics.median(spent),
            sum(len(f.samples) for f in text_string_to_metric_families(body.decode())),
        )
        for spent, body in zip(times, bodies, strict=True)
    ]


def server_side_ms(base: str) -> float:
    """twistedspy's own mean time for /metrics requests, from its latency histogram."""
    body = get(f"{base}/metrics?collect%5B%5D=server").decode()
    total = count = 0.0
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.labels.get("module") != "metrics":
                continue
            if s.name == "twistedspy_http_request_duration_seconds_sum":
                total = s.value
            elif s.name == "twistedspy_http_request_duration_seconds_count":
                count = s.value
    return total / count * 1000 if count else float("nan")


def collector_ms(base: str) -> dict[str, float]:
    """Each collector's own duration in one scrape, as twistedspy reports it."""
    body = get(f"{base}/metrics").decode()
    return {
        s.labels["collector"]: s.value * 1000
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == "twistedspy_scrape_collector_duration_seconds"
    }


def sampler_cost(ticks: int = 5000) -> tuple[float, float]:
    """CPU µs per tick of both samplers together, and CPU seconds per hour of running."""
    clock = Clock()
    log = Logger()
    samplers = [
        Sampler(Recorder(read_cpu_sample, cpu_point), clock, log),
        Sampler(Recorder(read_network_sample, traffic_point), clock, log),
    ]
    for s in samplers:
        s.start()
    started = time.process_time()
    for _ in range(ticks):
        clock.advance(SAMPLE_INTERVAL)
    used = time.process_time() - started
    for s in samplers:
        s.stop()
    per_tick = used / ticks
    return per_tick * 1e6, per_tick * 3600 / SAMPLE_INTERVAL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=1000, help="extra sleepers")
    parser.add_argument("--before", type=Path, help="another checkout to measure beside")
    args = parser.parse_args()
    count: int = args.count
    folder = Path(tempfile.mkdtemp(prefix="twistedspy-bench-"))
    rows: list[tuple[str, float, int]] = []
    #: (label, server-side ms, each collector's ms) for each twistedspy measured
    spies: list[tuple[str, float, dict[str, float]]] = []
    try:
        with sleepers(count):
            here = Path(__file__).resolve().parent.parent
            checkouts: list[tuple[str, str, Path]] = [("twistedspy", sys.executable, here)]
            if args.before is not None:
                root = args.before.resolve()
                checkouts.append((str(args.before), str(root / ".venv" / "bin" / "python"), root))
            with contextlib.ExitStack() as servers:
                bases = []
                for index, (_, python, root) in enumerate(checkouts):
                    port = free_port()
                    own = folder / str(index)
                    spy = [python, "-m", "twistedspy.cli", f"--port={port}",
                           f"--log-dir={own}/logs", f"--message-file={own}/m.jsonl"]  # fmt: skip
                    base = f"http://127.0.0.1:{port}"
                    servers.enter_context(running(spy, f"{base}/-/healthy", root))
                    bases.append(base)
                everything = scrape_ms(*(f"{b}/metrics" for b in bases))
                sides = [server_side_ms(b) for b in bases]
                no_processes = scrape_ms(*(f"{b}/metrics?exclude%5B%5D=processes" for b in bases))
                for (label, _, _), base, whole, part, side in zip(
                    checkouts, bases, everything, no_processes, sides, strict=True
                ):
                    rows.append((f"{label} /metrics (client wall time)", *whole))
                    rows.append((f"{label} /metrics?exclude[]=processes", *part))
                    spies.append((label, side, collector_ms(base)))
            if Path(NODE_EXPORTER).exists():
                for label, extra in (
                    ("node_exporter 1.5, default collectors", []),
                    (
                        "node_exporter 1.5, the same facts only",
                        [
                            "--collector.disable-defaults",
                            *(f"--collector.{c}" for c in SAME_FACTS),
                        ],
                    ),
                ):
                    ne_port = free_port()
                    url = f"http://127.0.0.1:{ne_port}/metrics"
                    argv = [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{ne_port}", *extra]
                    with running(argv, url):
                        [(ms, samples)] = scrape_ms(url)
                        rows.append((label, ms, samples))
            else:
                print(f"({NODE_EXPORTER} is not installed: no node_exporter figures)")
            per_tick_us, per_hour = sampler_cost()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print(f"{count} extra sleeping processes, {os.cpu_count()} CPUs, median of {ROUNDS} scrapes")
    print(f"{'':44} {'ms':>8} {'samples':>8}")
    for label, ms, samples in rows:
        print(f"{label:44} {ms:8.1f} {samples:8d}")
    for label, side, collectors in spies:
        print(f"{label + ' /metrics, server side (histogram)':44} {side:8.1f}")
        print(
            f"{label} collectors, ms: " + ", ".join(f"{k} {v:.1f}" for k, v in collectors.items())
        )
    print()
    print(f"samplers (cpu + network), one tick every {SAMPLE_INTERVAL:g} s:")
    print(f"  {per_tick_us:.0f} µs CPU a tick, {per_hour:.2f} s CPU an hour")


if __name__ == "__main__":
    main()
