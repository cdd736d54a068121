"""One `/metrics` scrape beside node_exporter's, and the background sampler's CPU cost.

Starts N extra sleeping processes (default 1000), a twistedspy server and node_exporter
(Debian's prometheus-node-exporter) on loopback ports, scrapes each 20 times after a
warm-up and prints the medians: the client's wall time for both, and twistedspy's own
server-side time from its request histogram (module="metrics"). node_exporter runs
twice: with its default collectors, and with only those giving the facts twistedspy
exports. Then it times the samplers of the cpu and network pages (N ticks through a
`task.Clock`, CPU time of this process) and extrapolates to one hour of running.

Run: PYTHONPATH=. python bench/metrics.py [N]
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
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

from twistedspy.history import SAMPLE_INTERVAL, Recorder, Sampler
from twistedspy.modules.cpu import cpu_point, read_cpu_sample
from twistedspy.modules.network import read_network_sample, traffic_point

ROUNDS = 20
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
#: node_exporter collectors that give what twistedspy exports under node_* names
SAME_FACTS = ("cpu", "loadavg", "stat", "meminfo", "filesystem", "netdev", "uname", "os", "time")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
def running(argv: list[str], url: str) -> Iterator[None]:
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(url)
        yield
    finally:
        process.terminate()
        process.wait()


def scrape_ms(url: str) -> tuple[float, int]:
    """Median wall time of ROUNDS scrapes, and the number of samples in one."""
    for _ in range(3):
        get(url)
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        body = get(url)
        times.append((time.perf_counter() - started) * 1000)
    count = sum(len(f.samples) for f in text_string_to_metric_families(body.decode()))
    return statistics.median(times), count


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
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    children = [subprocess.Popen(["sleep", "600"]) for _ in range(count)]
    folder = Path(tempfile.mkdtemp(prefix="twistedspy-bench-"))
    rows: list[tuple[str, float, int]] = []
    try:
        port = free_port()
        spy = [sys.executable, "-m", "twistedspy.cli", f"--port={port}",
               f"--log-dir={folder / 'logs'}", f"--message-file={folder / 'm.jsonl'}"]  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        env_path = os.pathsep.join([str(Path(__file__).resolve().parent.parent), *sys.path])
        os.environ["PYTHONPATH"] = env_path
        with running(spy, f"{base}/-/healthy"):
            ms, samples = scrape_ms(f"{base}/metrics")
            rows.append(("twistedspy /metrics (client wall time)", ms, samples))
            server = server_side_ms(base)
            ms, samples = scrape_ms(f"{base}/metrics?exclude%5B%5D=processes")
            rows.append(("twistedspy /metrics?exclude[]=processes", ms, samples))
            collectors = collector_ms(base)
        if Path(NODE_EXPORTER).exists():
            for label, extra in (
                ("node_exporter 1.5, default collectors", []),
                (
                    "node_exporter 1.5, the same facts only",
                    ["--collector.disable-defaults", *(f"--collector.{c}" for c in SAME_FACTS)],
                ),
            ):
                ne_port = free_port()
                url = f"http://127.0.0.1:{ne_port}/metrics"
                argv = [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{ne_port}", *extra]
                with running(argv, url):
                    ms, samples = scrape_ms(url)
                    rows.append((label, ms, samples))
        else:
            print(f"({NODE_EXPORTER} is not installed: no node_exporter figures)")
        per_tick_us, per_hour = sampler_cost()
    finally:
        for child in children:
            child.kill()
        for child in children:
            child.wait()
        shutil.rmtree(folder, ignore_errors=True)

    print(f"{count} extra sleeping processes, {os.cpu_count()} CPUs, median of {ROUNDS} scrapes")
    print(f"{'':44} {'ms':>8} {'samples':>8}")
    for label, ms, samples in rows:
        print(f"{label:44} {ms:8.1f} {samples:8d}")
    print(f"{'twistedspy /metrics, server side (histogram)':44} {server:8.1f}")
    print("twistedspy collectors, ms: " + ", ".join(f"{k} {v:.1f}" for k, v in collectors.items()))
    print()
    print(f"samplers (cpu + network), one tick every {SAMPLE_INTERVAL:g} s:")
    print(f"  {per_tick_us:.0f} µs CPU a tick, {per_hour:.2f} s CPU an hour")


if __name__ == "__main__":
    main()
