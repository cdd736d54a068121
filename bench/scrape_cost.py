"""Server CPU per full `/metrics` scrape, twistedspy beside node_exporter, with N extra
processes (default 1000).

The servers run pinned to CPU 0 (`taskset -c 0`), node_exporter with its default
collectors. First each is left alone for `--idle` seconds (default 20) and its CPU a
second is noted: the work it does with no scrape (twistedspy's page samplers). Then they
are scraped in turn, one at a time, once a second each for `--seconds` (default 40), the
order turning each second: a Prometheus scraping every second, the shortest interval in
common use. Each server's CPU time (its process and its live descendants, such as
twistedspy's processes-page child; /proc counts in 10 ms ticks, hence many scrapes) over
that run, divided by its scrapes, is its CPU per scrape; it includes whatever the server
does between scrapes. The process families reuse a scan for SCAN_MAX_AGE seconds
(twistedspy/modules/processes.py), so only some scrapes walk /proc: the figures are that
mix, and the last scrape's per-collector durations are printed too.

`--before DIR` also runs twistedspy from another checkout (its own tree, e.g. the main
branch; this checkout's Python) in the same run, so that a change is measured side by
side with the code it replaces.

`--query Q` asks twistedspy for `/metrics?Q` (`exclude[]=processes`: the scrape without
the process families).

Run: PYTHONPATH=. python bench/scrape_cost.py [N] [--seconds 40] [--idle 20] [--before DIR]
[--query Q]
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

from bench.metrics import NODE_EXPORTER, get, wait_for
from bench.processes import sleepers
from bench.procstat import cpu_seconds, free_port


def processes_now() -> int:
    """Processes in /proc: other work on the machine adds to what every scan walks."""
    return sum(entry.name.isdigit() for entry in Path("/proc").iterdir())


@contextlib.contextmanager
def pinned(argv: list[str], url: str, root: Path | None = None) -> Iterator[int]:
    """Runs argv on CPU 0 until the block ends; `root`: the twistedspy checkout it runs from."""
    env = None if root is None else {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        ["taskset", "-c", "0", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=root,
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
    parser.add_argument("--idle", type=int, default=20, help="seconds left alone first")
    parser.add_argument("--before", type=Path, help="another twistedspy checkout, run too")
    parser.add_argument("--query", default="", help="for twistedspy, e.g. exclude[]=processes")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="twistedspy-cost-"))
    trees = {"twistedspy": None} if args.before is None else {
        "twistedspy": None, "twistedspy before": args.before.resolve()}  # fmt: skip
    try:
        with sleepers(args.count), contextlib.ExitStack() as servers:
            pids, urls = {}, {}
            for n, (name, root) in enumerate(trees.items()):
                port = free_port()
                urls[name] = f"http://127.0.0.1:{port}/metrics" + (args.query and f"?{args.query}")
                spy = [sys.executable, "-m", "twistedspy.cli", f"--port={port}",
                       f"--log-dir={folder}/logs{n}", f"--message-file={folder}/m{n}.jsonl",
                       f"--pidfile={folder}/twistd{n}.pid"]  # fmt: skip
                pids[name] = servers.enter_context(pinned(spy, urls[name], root))
            node_port = free_port()
            urls["node_exporter"] = f"http://127.0.0.1:{node_port}/metrics"
            node = [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{node_port}"]
            pids["node_exporter"] = servers.enter_context(pinned(node, urls["node_exporter"]))
            for url in urls.values():  # warm up
                get(url)
            time.sleep(2)  # the warm-up's answers written
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            time.sleep(args.idle)
            idle = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            counts = [processes_now()]
            bodies = {}
            names = list(urls)
            started = time.monotonic()
            for second in range(args.seconds):
                turn = second % len(names)
                for name in names[turn:] + names[:turn]:
                    bodies[name] = get(urls[name])
                time.sleep(max(0.0, started + second + 1 - time.monotonic()))
                counts.append(processes_now())
            spent = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print(f"{args.count} extra processes, every server on CPU 0; idle {args.idle} s, "
          f"then {args.seconds} scrapes each, one a second; "
          f"{min(counts)}-{max(counts)} processes in /proc")  # fmt: skip
    print(f"{'':18} {'CPU ms/scrape':>14} {'idle CPU ms/s':>14} {'samples':>8} {'ratio':>6}")
    node_spent = spent["node_exporter"]
    for name, seconds in spent.items():
        families = list(text_string_to_metric_families(bodies[name].decode()))
        samples = sum(len(f.samples) for f in families)
        ratio = seconds / node_spent if node_spent else 0.0
        print(f"{name:18} {seconds * 1000 / args.seconds:14.1f} "
              f"{idle[name] * 1000 / args.idle:14.1f} {samples:8d} {ratio:6.2f}")  # fmt: skip
    for name in trees:
        for family in text_string_to_metric_families(bodies[name].decode()):
            if family.name == "twistedspy_scrape_collector_duration_seconds":
                print(f"{name} collectors, last scrape, ms: " + ", ".join(
                    f"{s.labels['collector']} {s.value * 1000:.2f}" for s in family.samples
                ))  # fmt: skip


if __name__ == "__main__":
    main()
