"""The heavy page, end to end: /processes beside `ps`, a twisted.web peer, and under load.

With N extra sleeping processes (default 1000, started and killed here), in one run:

- `ps -eo pid,comm,stat,user,group,rss` wall time;
- GET /processes (HTML) from twistedspy, started here on a free loopback port (its
  page is made in the server's child process, docs/architecture.md);
- the same page from bench/peer_processes.py (twisted.web + psutil + Jinja2);
- p99 latency of GET /version while four clients hammer /processes (wrk when installed,
  otherwise four client threads), on each server.

Medians of several rounds, `ps` and the pages taken in turn in each round, so that all
see the same machine; the size of each page. Bars: /processes median <= 1.0 x ps in the
same run; /version p99 under that load <= 10 ms on twistedspy.

`--before DIR` also serves the same page from another checkout of twistedspy (with its
own `.venv`, e.g. the main branch), in the same run, its rounds taken in turn with this
one's, so that a change is measured side by side with the code it replaces.
`--load-page` names what the four clients ask for (`/processes?sort=cpu&limit=50`, say,
to see what a page that writes fewer rows would do); with `--gzip` they send
`Accept-Encoding: gzip`, as browsers do, so that the server compresses every page.
Run: PYTHONPATH=. python bench/processes.py [N] [--rounds R] [--before DIR] [--load-page P]
[--gzip]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.procstat import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PS = ["ps", "-eo", "pid,comm,stat,user,group,rss"]
HAMMERS = 4
LOAD_SECONDS = 8.0


def get(port: int, path: str, headers: dict[str, str] | None = None) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path} on {port}: {response.status}")
        return body
    finally:
        connection.close()


def timed_ms(f: Callable[[], object]) -> float:
    start = time.perf_counter()
    f()
    return (time.perf_counter() - start) * 1000


def side_by_side(runs: list[Callable[[], object]], rounds: int) -> list[float]:
    """Median ms of each, their runs taken in turn so that all see the same machine
    (a first run of each warms it up, and for twistedspy takes the CPU sample the next
    one measures from)."""
    for run in runs:
        run()
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for run, kept in zip(runs, times, strict=True):
            kept.append(timed_ms(run))
    return [statistics.median(kept) for kept in times]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@contextmanager
def sleepers(count: int) -> Iterator[None]:
    children = [subprocess.Popen(["sleep", "600"]) for _ in range(count)]
    try:
        yield
    finally:
        for child in children:
            child.kill()
        for child in children:
            child.wait()


@contextmanager
def server(argv: list[str], port: int, root: Path = ROOT) -> Iterator[None]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        argv, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(300):
            try:
                get(port, "/version")
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"{argv[:3]} did not answer on port {port}")
        yield
    finally:
        process.terminate()
        process.wait(timeout=15)


def hammer_with_wrk(
    port: int, seconds: float, page: str, headers: dict[str, str]
) -> subprocess.Popen[str] | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    sent = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
    return subprocess.Popen(
        [wrk, f"-t{HAMMERS}", f"-c{HAMMERS}", f"-d{seconds:.0f}s", "--timeout", "30s",
         *sent, f"http://127.0.0.1:{port}{page}"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def pages_per_second(wrk_output: str) -> float | None:
    """What wrk's clients got: the more pages a second, the busier the server was."""
    for line in wrk_output.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    return None


def hammer_with_threads(
    port: int, stop: threading.Event, page: str, headers: dict[str, str]
) -> list[threading.Thread]:
    def client() -> None:
        while not stop.is_set():
            get(port, page, headers)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(HAMMERS)]
    for t in threads:
        t.start()
    return threads


def version_under_load(
    port: int,
    page: str = "/processes",
    seconds: float = LOAD_SECONDS,
    headers: dict[str, str] | None = None,
) -> tuple[float, float, int, float | None]:
    """(median, p99) ms of GET /version while four clients ask for `page` (with
    `headers`), the number of samples, and the pages a second the four clients got (with
    wrk)."""
    stop = threading.Event()
    headers = headers or {}
    wrk = hammer_with_wrk(port, seconds + 2, page, headers)
    threads = [] if wrk is not None else hammer_with_threads(port, stop, page, headers)
    time.sleep(1.0)  # let the load build up
    latencies = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            latencies.append(timed_ms(lambda: get(port, "/version")))
            time.sleep(0.01)
    finally:
        stop.set()
        output = wrk.communicate()[0] if wrk is not None else ""
        for t in threads:
            t.join()
    median, p99 = statistics.median(latencies), percentile(latencies, 0.99)
    return median, p99, len(latencies), pages_per_second(output)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=1000, help="extra sleepers")
    parser.add_argument("--rounds", type=int, default=15, help="runs for each median")
    parser.add_argument("--before", type=Path, help="another checkout to measure beside")
    parser.add_argument(
        "--load-page", default="/processes", help="what the four clients ask for (a query)"
    )
    parser.add_argument(
        "--gzip", action="store_true", help="the four clients accept gzip, as browsers do"
    )
    args = parser.parse_args()
    load_headers = {"Accept-Encoding": "gzip"} if args.gzip else {}
    python = sys.executable
    spy_port, peer_port, before_port = free_port(), free_port(), free_port()
    with (
        tempfile.TemporaryDirectory(prefix="spy-bench-") as folder,
        sleepers(args.count),
        contextlib.ExitStack() as servers,
    ):
        total = len([p for p in Path("/proc").iterdir() if p.name.isdigit()])

        def spy(python: str, port: int) -> list[str]:
            return [python, "-m", "twistedspy.cli", "-p", str(port), "--pidfile=",
                    "--log-dir", folder, "--modules", "processes,version"]  # fmt: skip

        peer = [python, str(HERE / "peer_processes.py"), str(peer_port)]
        servers.enter_context(server(spy(python, spy_port), spy_port))
        servers.enter_context(server(peer, peer_port))
        runs: list[Callable[[], object]] = [
            lambda: subprocess.run(PS, check=True, capture_output=True),
            lambda: get(spy_port, "/processes"),
            lambda: get(peer_port, "/processes"),
        ]
        if args.before is not None:
            root = args.before.resolve()
            before = spy(str(root / ".venv" / "bin" / "python"), before_port)
            servers.enter_context(server(before, before_port, root))
            runs.append(lambda: get(before_port, "/processes"))
        ps_ms, *page_ms = side_by_side(runs, args.rounds)
        ports = [spy_port, peer_port, before_port][: len(page_ms)]
        sizes = [len(get(port, "/processes")) for port in ports]
        before_load = None
        spy_load = version_under_load(spy_port, args.load_page, headers=load_headers)
        if args.before is not None:
            before_load = version_under_load(before_port, args.load_page, headers=load_headers)
        peer_load = version_under_load(peer_port, args.load_page, headers=load_headers)
    hammer = "wrk -t4 -c4" if shutil.which("wrk") else "4 client threads"
    spy_ms = page_ms[0]
    page_ok = spy_ms <= 1.0 * ps_ms
    load_ok = spy_load[1] <= 10.0
    print(f"{total} processes, {os.cpu_count()} CPUs, medians of {args.rounds} rounds")
    print(f"{'':40} {'ms':>8}  {'x ps':>6}  {'HTML bytes':>10}")
    print(f"{'ps -eo pid,comm,stat,user,group,rss':40} {ps_ms:8.1f}  {1.0:6.2f}")
    names = ["twistedspy", "twisted.web+psutil+Jinja2", str(args.before)]
    for name, ms, size in zip(names, page_ms, sizes, strict=False):
        print(f"{name + ' GET /processes':40} {ms:8.1f}  {ms / ps_ms:6.2f}  {size:10}")
    accepting = ", accepting gzip," if args.gzip else ""
    print(f"GET /version while {hammer}{accepting} hammer {args.load_page}:")
    print(f"{'':40} {'median':>8}  {'p99':>6}  samples  pages/s")
    loads = [("twistedspy", spy_load), ("peer", peer_load)]
    if before_load is not None:
        loads.insert(1, (str(args.before), before_load))
    for name, (median, p99, samples, rate) in loads:
        pages = "" if rate is None else f"{rate:7.1f}"
        print(f"{name:40} {median:8.1f}  {p99:6.1f}  {samples:7}  {pages}")
    print(f"bar /processes <= 1.0 x ps: {'met' if page_ok else 'MISSED'}")
    print(f"bar /version p99 <= 10 ms under load: {'met' if load_ok else 'MISSED'}")
    return 0 if page_ok and load_ok else 1


if __name__ == "__main__":
    sys.exit(main())
