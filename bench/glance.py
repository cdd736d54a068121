"""The landing page at a glance: its latency with N extra processes, and what the
processes sampler behind its top five costs.

With N extra sleeping processes (default 1000, started and killed here), one twistedspy
serves every built-in module on a free loopback port; once its samplers have run, the
bench asks for:

- `GET /?round=I`: a fresh landing page each time (the query makes each page cache key
  new, so every request collects every module's figures and renders them);
- `GET /`: what a person reloading the page gets (the page cache answers within a second);
- `GET /?format=json&round=I`: the live page's own fetch, fresh.

It prints p50 and p99 of each, then the processes sampler's cost: one scan of /proc
(the reader the sampler runs every 5 s, in a worker thread) timed here in-process, and
that as a share of one CPU. Bar (issue 19): fresh landing page p50 < 20 ms.
Run: PYTHONPATH=. python bench/glance.py [N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from bench.processes import get, percentile, server, sleepers, timed_ms
from bench.procstat import free_port
from twistedspy.history import SAMPLE_INTERVAL
from twistedspy.procfs.processes import ProcfsProcessSource

#: the bar: a fresh landing page's median
BAR_MS = 20.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=1000, help="extra sleepers")
    parser.add_argument("--rounds", type=int, default=200, help="requests for each figure")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="spy-bench-") as folder, sleepers(args.count):
        total = len([p for p in Path("/proc").iterdir() if p.name.isdigit()])
        argv = [sys.executable, "-m", "twistedspy.cli", "-p", str(port), "--pidfile=",
                "--log-dir", folder, "--message-file", f"{folder}/messages.jsonl"]  # fmt: skip
        with server(argv, port):
            # Two process scans (the top five's CPU %), and the cpu and network samplers.
            time.sleep(2 * SAMPLE_INTERVAL + 1)
            figures = {}
            for name, path in (
                ("GET / fresh", "/?round={}"),
                ("GET / (page cache)", "/"),
                ("GET /?format=json fresh", "/?format=json&round={}"),
            ):
                get(port, path.format("warm"))
                times = [timed_ms(partial(get, port, path.format(i))) for i in range(args.rounds)]
                figures[name] = (statistics.median(times), percentile(times, 0.99))
        scan = ProcfsProcessSource()
        scan()
        scans = [timed_ms(scan) for _ in range(15)]
    scan_ms = statistics.median(scans)
    print(f"{total} processes, {os.cpu_count()} CPUs, {args.rounds} requests each")
    print(f"{'':28} {'p50 ms':>8} {'p99 ms':>8}")
    for name, (p50, p99) in figures.items():
        print(f"{name:28} {p50:8.2f} {p99:8.2f}")
    share = scan_ms / (SAMPLE_INTERVAL * 1000) * 100
    print(f"processes sampler: one scan {scan_ms:.1f} ms every {SAMPLE_INTERVAL:g} s "
          f"= {share:.1f} % of one CPU")  # fmt: skip
    ok = figures["GET / fresh"][0] < BAR_MS
    print(f"bar fresh landing page p50 < {BAR_MS:g} ms: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
