"""Server CPU per full `/metrics` scrape, twistedspy beside node_exporter, with N extra
processes (default 1000).

Both servers run pinned to CPU 0 (`taskset -c 0`), node_exporter with its default
collectors; they are scraped in turn, one at a time, once a second each for `--seconds`
(default 40): a Prometheus scraping every second, the shortest interval in common use.
Each server's CPU time (utime + stime of /proc/PID/stat, which counts in 10 ms ticks,
hence many scrapes) over the run, divided by its scrapes, is its CPU per scrape; it
includes whatever the server does between scrapes (twistedspy's page samplers). The
process families reuse a scan up to 10 s old (twistedspy/modules/processes.py), so one
scrape in ten walks /proc: the figures are that mix, and the last scrape's
per-collector durations are printed too.

Run: PYTHONPATH=. python bench/scrape_cost.py [N] [--seconds 40]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench.metrics import NODE_EXPORTER, free_port, get, wait_for
from bench.processes import sleepers

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (proc(5) /proc/PID/stat fields 14 and 15)."""
    data = Path(f"/proc/{pid}/stat").read_bytes()
    fields = data[data.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@contextlib.contextmanager
def pinned(argv: list[str], url: str) -> Iterator[int]:
    process = subprocess.Popen(
        ["taskset", "-c", "0", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(url)
        yield process.pid
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=1000, help="extra sleepers")
    parser.add_argument("--seconds", type=int, default=40)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="twistedspy-cost-"))
    try:
        with sleepers(args.count):
            spy_port, node_port = free_port(), free_port()
            spy_url = f"http://127.0.0.1:{spy_port}/metrics"
            node_url = f"http://127.0.0.1:{node_port}/metrics"
            spy = [sys.executable, "-m", "twistedspy.cli", f"--port={spy_port}",
                   f"--log-dir={folder}/logs", f"--message-file={folder}/m.jsonl"]  # fmt: skip
            node = [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{node_port}"]
            with pinned(spy, spy_url) as spy_pid, pinned(node, node_url) as node_pid:
                for url in (spy_url, node_url):  # warm up
                    get(url)
                time.sleep(6)
                pids = {"twistedspy": spy_pid, "node_exporter": node_pid}
                urls = {"twistedspy": spy_url, "node_exporter": node_url}
                before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                bodies = {}
                started = time.monotonic()
                for second in range(args.seconds):
                    for name, url in urls.items():
                        bodies[name] = get(url)
                    time.sleep(max(0.0, started + second + 1 - time.monotonic()))
                spent = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print(f"{args.count} extra processes, both servers on CPU 0, "
          f"{args.seconds} scrapes each, one a second")  # fmt: skip
    print(f"{'':16} {'CPU ms/scrape':>14} {'samples':>8}")
    for name, seconds in spent.items():
        families = list(text_string_to_metric_families(bodies[name].decode()))
        samples = sum(len(f.samples) for f in families)
        print(f"{name:16} {seconds * 1000 / args.seconds:14.1f} {samples:8d}")
    ratio = spent["twistedspy"] / spent["node_exporter"] if spent["node_exporter"] else 0
    print(f"ratio twistedspy / node_exporter: {ratio:.2f}")
    for family in text_string_to_metric_families(bodies["twistedspy"].decode()):
        if family.name == "twistedspy_scrape_collector_duration_seconds":
            print("twistedspy collectors, last scrape, ms: " + ", ".join(
                f"{s.labels['collector']} {s.value * 1000:.2f}" for s in family.samples
            ))  # fmt: skip


if __name__ == "__main__":
    main()
