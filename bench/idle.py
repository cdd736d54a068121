"""Idle footprint: twistedspy beside node_exporter and Glances, none of them asked anything.

Starts the three servers on free loopback ports (twistedspy with every module, as
contrib/twistedspy.service runs it: `twistd spy`, glibc's per-thread caches off; Debian's
prometheus-node-exporter with its default collectors; `glances -w`, from the virtual
environment named by `--glances`, when there is one), asks each for one page so that it is
known to serve, then leaves them alone and samples each server every `--interval` seconds
for `--seconds`: resident memory (VmRSS) and CPU time used (utime + stime, all threads) of
its process tree (bench/procstat.py: twistedspy's processes page runs in a child process,
which is part of its footprint). Prints the tree's RSS after start, at the end, the
least-squares RSS slope over the second half (growth while idle), and CPU seconds per hour
of idling; then RSS (start > end) and CPU an hour for the server's own process (reaped
children in its CPU) and its live descendants apart; then the bars, on the trees: idle RSS <= 2 x
node_exporter's and idle CPU <= node_exporter's.
Run: PYTHONPATH=. python bench/idle.py [--seconds 3600] [--interval 30] [--glances VENV]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.procstat import Usage, free_port, tree

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass(slots=True)
class Watched:
    name: str
    process: subprocess.Popen[bytes]
    #: (seconds since idling began, RSS bytes, CPU seconds), of the whole tree
    samples: list[tuple[float, int, float]] = field(default_factory=list)
    #: the server's own process, then its descendants, at the first and the latest sample
    first: list[Usage] = field(default_factory=list)
    last: list[Usage] = field(default_factory=list)

    def sample(self, now: float) -> None:
        self.last = tree(self.process.pid)
        self.first = self.first or self.last
        rss = sum(u.rss_kib for u in self.last) * 1024
        self.samples.append((now, rss, sum(u.cpu_seconds for u in self.last)))


def wait_for(url: str) -> None:
    for _ in range(600):
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                answer.read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered at {url}")


def slope_kib_per_hour(points: list[tuple[float, int, float]]) -> float:
    """Least-squares slope of RSS over time, in KiB an hour."""
    if len(points) < 2:
        return 0.0
    xs = [p[0] for p in points]
    ys = [p[1] / 1024 for p in points]
    return statistics.linear_regression(xs, ys).slope * 3600


@contextlib.contextmanager
def started(
    argv: list[str], url: str, env: dict[str, str], cwd: Path
) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(url)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3600.0, help="how long to idle")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--glances", type=Path, help="a virtual environment with glances")
    args = parser.parse_args()
    # An hour's run is often left in the background and ended with kill: stop the three
    # servers then too (a background shell's job ignores SIGINT).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ports = {name: free_port() for name in ("twistedspy", "node_exporter", "glances")}
    with (
        tempfile.TemporaryDirectory(prefix="spy-idle-") as folder,
        contextlib.ExitStack() as stack,
    ):
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "GLIBC_TUNABLES": "glibc.malloc.tcache_count=0",
        }
        twistd = str(Path(sys.executable).parent / "twistd")
        spy = [twistd, "--nodaemon", "--pidfile=", "spy", "--port", str(ports["twistedspy"]),
               "--log-dir", folder, "--message-file", f"{folder}/messages.jsonl"]  # fmt: skip
        servers = [("twistedspy", spy, f"http://127.0.0.1:{ports['twistedspy']}/-/healthy")]
        exporter = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
        if exporter is not None:
            address = f"127.0.0.1:{ports['node_exporter']}"
            servers.append(("node_exporter", [exporter, f"--web.listen-address={address}"],
                            f"http://{address}/"))  # fmt: skip
        if args.glances is not None:
            glances = str(args.glances / "bin" / "glances")
            servers.append(("glances", [glances, "-w", "--disable-webui", "-B", "127.0.0.1",
                            "-p", str(ports["glances"])],
                            f"http://127.0.0.1:{ports['glances']}/api/4/status"))  # fmt: skip
        watched = [
            Watched(name, stack.enter_context(started(argv, url, env, ROOT)))
            for name, argv, url in servers
        ]
        began = time.monotonic()
        while True:
            now = time.monotonic() - began
            for w in watched:
                w.sample(now)
            if now >= args.seconds:
                break
            time.sleep(min(args.interval, max(0.0, args.seconds - now)))
    minutes = args.seconds / 60
    print(f"idle for {minutes:.0f} min, sampled every {args.interval:g} s, {os.cpu_count()} CPUs")
    print(f"{'server':14} {'RSS start MiB':>14} {'RSS end MiB':>12} "
          f"{'slope 2nd half KiB/h':>21} {'CPU s/hour':>11}")  # fmt: skip
    results = {}
    for w in watched:
        (t0, rss0, cpu0), (t1, rss1, cpu1) = w.samples[0], w.samples[-1]
        half = [s for s in w.samples if s[0] >= t1 / 2]
        per_hour = (cpu1 - cpu0) / (t1 - t0) * 3600 if t1 > t0 else 0.0
        results[w.name] = (rss1, per_hour)
        print(f"{w.name:14} {rss0 / 2**20:14.1f} {rss1 / 2**20:12.1f} "
              f"{slope_kib_per_hour(half):21.1f} {per_hour:11.2f}")  # fmt: skip
    print(f"{'apart':14} {'own RSS MiB':>14} {'descendants':>12} {'their RSS MiB':>14} "
          f"{'own CPU s/hour':>15} {'descendants CPU s/hour':>23}")  # fmt: skip
    for w in watched:
        (t0, _, cpu0), (t1, _, cpu1) = w.samples[0], w.samples[-1]
        hours = (t1 - t0) / 3600 or 1.0
        own = (w.last[0].cpu_seconds - w.first[0].cpu_seconds) / hours
        own_rss = f"{w.first[0].rss_kib / 1024:.1f} > {w.last[0].rss_kib / 1024:.1f}"
        rest = [sum(u.rss_kib for u in found[1:]) / 1024 for found in (w.first, w.last)]
        print(f"{w.name:14} {own_rss:>14} {len(w.last) - 1:12} "
              f"{f'{rest[0]:.1f} > {rest[1]:.1f}':>14} {own:15.2f} "
              f"{(cpu1 - cpu0) / hours - own:23.2f}")  # fmt: skip
    if "node_exporter" not in results:
        return 0
    rss_ok = results["twistedspy"][0] <= 2 * results["node_exporter"][0]
    cpu_ok = results["twistedspy"][1] <= results["node_exporter"][1]
    print(f"bar idle RSS <= 2 x node_exporter's: {'met' if rss_ok else 'MISSED'}")
    print(f"bar idle CPU <= node_exporter's: {'met' if cpu_ok else 'MISSED'}")
    return 0 if rss_ok and cpu_ok else 1


if __name__ == "__main__":
    sys.exit(main())
