"""The journal's write(2) calls per request under load, and the server's CPU per request.

Each round starts twistedspy (and, with --baseline, twistedspy from another source tree)
pinned to CPU 0, loads `/-/healthy` with `wrk -t1 -c32` on CPU 1 over keep-alive, and
reads from /proc/PID/io how many write-like system calls the server made meanwhile
(`syscw`: write(2) and its kin; socket sends are sendmsg/sendto, not counted), and its
CPU time (utime + stime, all threads, of its process tree: twistedspy's processes page
runs in a child process). Every request is journalled, so writes per
request is the journal's batching at work: one would be a write an event.

Run: PYTHONPATH=. python bench/journal_writes.py [--rounds 3] [--duration 5]
[--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.connections import SERVER_CPU, wait_ready
from bench.procstat import cpu_seconds, free_port

REPO = Path(__file__).resolve().parent.parent
LOAD_CPU = "1"


def write_calls(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise SystemExit(f"no syscw for {pid}")


def one_run(tree: Path, duration: int) -> tuple[float, float]:
    """Writes per request and CPU µs per request, for one fresh server from `tree`."""
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        work = Path(tmp)
        port = free_port()
        command = [
            *("taskset", "-c", SERVER_CPU, sys.executable, "-m", "twistedspy.cli"),
            *("--pidfile=", "-p", str(port), "--log-dir", str(work / "journal")),
            *("--max-clients", "128"),
        ]
        env = dict(os.environ, PYTHONPATH=str(tree))
        log = (work / "server.out").open("wb")
        proc = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(port, proc)
            writes, cpu = write_calls(proc.pid), cpu_seconds(proc.pid)
            wrk = subprocess.run(
                [
                    *("taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c32", f"-d{duration}s"),
                    f"http://127.0.0.1:{port}/-/healthy",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            writes, cpu = write_calls(proc.pid) - writes, cpu_seconds(proc.pid) - cpu
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    match = re.search(r"(\d+) requests in", wrk.stdout)
    if match is None:
        raise SystemExit(f"wrk said: {wrk.stdout}")
    requests = int(match.group(1))
    return writes / requests, cpu / requests * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--baseline", type=Path, help="twistedspy from this source tree too")
    args = parser.parse_args()
    trees = {"twistedspy": REPO}
    if args.baseline is not None:
        trees["baseline"] = args.baseline.resolve()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    for round_ in range(args.rounds):
        order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
        for name in order:
            writes, cpu = one_run(trees[name], args.duration)
            results[name].append((writes, cpu))
            print(f"round {round_ + 1} {name:10} {writes:6.3f} writes/req {cpu:6.1f} µs/req")
    print("\n| server | write(2) calls per request | CPU µs per request |")
    print("| --- | ---: | ---: |")
    for name, runs in results.items():
        writes = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"| {name} | {writes:.3f} | {cpu:.1f} |")
    if "baseline" in results:
        ratios = [
            c / b
            for (_, c), (_, b) in zip(results["twistedspy"], results["baseline"], strict=True)
        ]
        print(
            f"\nCPU per request, twistedspy / baseline, per round: "
            f"{' '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
