"""Idle footprint: twistedspy beside node_exporter and Glances, none of them asked anything.

Starts the three servers on free loopback ports (twistedspy with every module, as
contrib/twistedspy.service runs it: `twistd spy`, glibc's per-thread caches off; Debian's
prometheus-node-exporter with its default collectors; `glances -w`, from the virtual
environment named by `--glances`, when there is one), asks each for one page so that it is
known to serve, then leaves them alone and samples each process every `--interval` seconds
for `--seconds`: resident memory (VmRSS) and CPU time used (utime + stime, all threads).
Prints RSS after start, at the end, the least-squares RSS slope over the second half (growth
while idle), and CPU seconds per hour of idling; then the bars: idle RSS <= 2 x node_exporter's
and idle CPU <= node_exporter's.
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

from bench.procstat import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class Watched:
    name: str
    process: subprocess.Popen[bytes]
    #: (seconds since idling began, RSS bytes, CPU seconds)
    samples: list[tuple[float, int, float]] = field(default_factory=list)


def rss_and_cpu(pid: int) -> tuple[int, float]:
    """VmRSS (bytes) and utime + stime (seconds) from /proc/PID (proc(5))."""
    with open(f"/proc/{pid}/status", "rb") as status:
        rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith(b"VmRSS:"))
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    return rss, (int(fields[11]) + int(fields[12])) / TICKS


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
                w.samples.append((now, *rss_and_cpu(w.process.pid)))
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
    if "node_exporter" not in results:
        return 0
    rss_ok = results["twistedspy"][0] <= 2 * results["node_exporter"][0]
    cpu_ok = results["twistedspy"][1] <= results["node_exporter"][1]
    print(f"bar idle RSS <= 2 x node_exporter's: {'met' if rss_ok else 'MISSED'}")
    print(f"bar idle CPU <= node_exporter's: {'met' if cpu_ok else 'MISSED'}")
    return 0 if rss_ok and cpu_ok else 1


if __name__ == "__main__":
    sys.exit(main())
