"""twistedspy against `twisted.web` serving the same bytes, under `wrk` on loopback.

One run starts both servers, each pinned to CPU 0 (`taskset -c 0`), and loads them in
turn with `wrk` pinned to CPU 1, with keep-alive and with `Connection: close`, over
several rounds, alternating which server goes first. For each run it prints requests/s,
p50/p99 latency, and the server's CPU time per request (utime + stime of the server's
process tree, threads and child process included: bench/procstat.py, divided by wrk's
request count):
on a noisy machine that is the steadier figure. Then the ratios twistedspy/twisted.web
per round and their median.

Paths:
- `/version`: twistedspy answers from its page cache (the module's max_age is one
  second: collected and rendered at most once a second, every request still checked and
  logged in); the peer serves the bytes twistedspy sent once, as a static string. The
  comparison the project set itself.
- `/-/healthy`: pure HTTP on both sides (a fixed short body), to compare the HTTP layers.

With `--security on`, twistedspy runs with Security on and one bcrypt account, wrk sends
that account's `Authorization: Basic` with every request, and the peer is the same
twisted.web site behind `HTTPAuthSessionWrapper` with Basic credentials and twistedspy's
own bcrypt checker (`AccountsChecker` on the same accounts file), so both log in through
a twisted.cred Portal. `/-/healthy` needs no login, so only `/version` is loaded then.

With `--browser`, wrk sends what Firefox sends with a page request besides
`Accept-Encoding` (`User-Agent`, `Accept`, `Accept-Language`, `Upgrade-Insecure-Requests`),
so that both servers read a browser's head and still send the same bytes.

twisted.web writes no access log unless `--peer-access-log` is given: the bars are set
against a peer without one, while twistedspy writes its journal as it always does.

Run: PYTHONPATH=. python bench/http_bench.py [--rounds 5] [--duration 10] [--baseline DIR]
[--security on] [--browser] (--baseline: a third server, twistedspy from another source
tree, in the same rounds).
(named http_bench, not http: a bench/http.py would shadow the standard library's
`http` package for every script run from bench/).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import bcrypt

import twisted
from bench.procstat import cpu_seconds, free_port

REPO = Path(__file__).resolve().parent.parent
SERVER_CPU = "0"
LOAD_CPU = "1"
#: the name the --baseline tree's server goes by in the tables
BASELINE = "baseline"
#: the bars: CPU per request, twistedspy / twisted.web, by path and mode
#: (docs/performance.md); a path and mode not listed here is held to 1.0
BAR = {
    ("/version", "keep-alive"): 0.77,
    ("/version", "close"): 1.0,
    ("/-/healthy", "keep-alive"): 0.6,
    ("/-/healthy", "close"): 1.0,
}
#: the account both servers check with Security on (bcrypt cost 10: the first login of
#: each connection costs one check, later ones are remembered by both)
USER, PASSWORD, COST = "bench", "bench-password", 10
#: a browser's page request, but Accept-Encoding (both servers then send the same bytes)
BROWSER_HEADERS = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.5",
    "Upgrade-Insecure-Requests": "1",
}
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True, slots=True)
class Load:
    """One wrk run against one server."""

    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float
    errors: int


def wait_ready(
    port: int, proc: subprocess.Popen[bytes], path: str, headers: dict[str, str]
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on {port} exited with {proc.returncode}")
        try:
            fetch(port, path, headers)
        except OSError:
            time.sleep(0.1)
            continue
        return
    raise SystemExit(f"server on {port} did not start")


def fetch(port: int, path: str, headers: dict[str, str]) -> tuple[str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        reply = connection.getresponse()
        body = reply.read()
        if reply.status != 200:
            raise SystemExit(f"GET {path} on {port}: {reply.status}")
        return reply.getheader("Content-Type") or "", body
    finally:
        connection.close()


def write_accounts(work: Path) -> tuple[Path, dict[str, str]]:
    """An accounts file with the bench's one account, and the header that logs in as it."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(COST)).decode("ascii")
    accounts = work / "accounts"
    accounts.write_text(f"{USER}:{hashed}\n")
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode("ascii")
    return accounts, {"Authorization": f"Basic {token}"}


def start_twistedspy(
    port: int,
    work: Path,
    *,
    connections: int,
    tree: Path = REPO,
    accounts: Path | None = None,
) -> subprocess.Popen[bytes]:
    """twistedspy from the source tree `tree`, with room for `connections` from wrk."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    command = [
        *("taskset", "-c", SERVER_CPU),
        *(sys.executable, "-m", "twistedspy.cli", "--pidfile="),
        *("-p", str(port), "--log-dir", str(work / "journal")),
        # wrk's connections all come from 127.0.0.1, and one address is served a quarter
        # of MaxClients at once: MaxClients four times wrk's, so that all are served.
        *("--max-clients", str(4 * connections)),
        *(("-s", "on", "--accounts", str(accounts)) if accounts is not None else ()),
    ]
    log = (work / "twistedspy.out").open("wb")
    proc = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_ready(port, proc, "/-/healthy", {})
    return proc


def start_peer(
    port: int,
    work: Path,
    pages: dict[str, tuple[str, bytes]],
    *,
    accounts: Path | None = None,
    headers: dict[str, str],
    access_log: bool = False,
) -> subprocess.Popen[bytes]:
    pages_file = work / "pages.json"
    pages_file.write_text(
        json.dumps({path: [kind, body.decode("latin-1")] for path, (kind, body) in pages.items()})
    )
    command = [
        *("taskset", "-c", SERVER_CPU),
        *(sys.executable, str(REPO / "bench" / "peer_web.py")),
        *(str(port), str(pages_file), str(work / "access.log") if access_log else "-"),
        *((str(accounts),) if accounts is not None else ()),
    ]
    # the peer with accounts imports twistedspy's checker
    env = dict(os.environ, PYTHONPATH=str(REPO))
    log = (work / "peer.out").open("wb")
    proc = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_ready(port, proc, next(iter(pages)), headers)
    return proc


def milliseconds(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(output: str) -> tuple[int, float, float, float, int]:
    """requests, requests/s, p50 ms, p99 ms, errors (non-2xx and socket errors)."""
    requests = int(re.search(r"(\d+) requests in", output)[1])  # type: ignore[index]
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", output)[1])  # type: ignore[index]
    p50 = milliseconds(re.search(r"\s50%\s+(\S+)", output)[1])  # type: ignore[index]
    p99 = milliseconds(re.search(r"\s99%\s+(\S+)", output)[1])  # type: ignore[index]
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx[1])
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sock:
        # read errors are how wrk counts a server closing after `Connection: close`
        errors += int(sock[1]) + int(sock[3]) + int(sock[4])
    return requests, rps, p50, p99, errors


def load(
    pid: int,
    port: int,
    path: str,
    *,
    close: bool,
    duration: int,
    connections: int,
    headers: dict[str, str],
) -> Load:
    command = [
        *("taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{duration}s"),
        "--latency",
        *(("-H", "Connection: close") if close else ()),
        *(arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")),
        f"http://127.0.0.1:{port}{path}",
    ]
    before = cpu_seconds(pid)
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    after = cpu_seconds(pid)
    requests, rps, p50, p99, errors = parse_wrk(output)
    cpu_us = (after - before) / max(requests, 1) * 1e6
    return Load(requests, rps, p50, p99, cpu_us, errors)


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return (
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs ({model}), "
        f"Python {platform.python_version()}, Twisted {twisted.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--paths", default="/version,/-/healthy")
    parser.add_argument("--modes", default="keep-alive,close")
    parser.add_argument("--json", type=Path, help="also write every run here")
    parser.add_argument(
        "--security",
        choices=("off", "on"),
        default="off",
        help="on: Basic logins against a bcrypt account on both servers (/version only)",
    )
    parser.add_argument(
        "--browser",
        action="store_true",
        help="send a browser's request headers (but Accept-Encoding) with every request",
    )
    parser.add_argument(
        "--peer-access-log",
        action="store_true",
        help="let twisted.web write its access log to a file (the bars are set against a "
        "peer without one)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another source tree of twistedspy (e.g. `git archive main`, unpacked) to load "
        "beside this one in the same rounds: before and after, side by side",
    )
    args = parser.parse_args()
    secure = args.security == "on"
    paths = ["/version"] if secure else args.paths.split(",")
    modes = args.modes.split(",")
    if os.cpu_count() is None or os.cpu_count() < 2:  # type: ignore[operator]
        raise SystemExit("needs two CPUs: one for the servers, one for wrk")

    with tempfile.TemporaryDirectory(prefix="spybench-") as tmp:
        work = Path(tmp)
        (work / "spy").mkdir()
        (work / "web").mkdir()
        accounts, headers = write_accounts(work) if secure else (None, {})
        spy_port, web_port = free_port(), free_port()
        spy = start_twistedspy(
            spy_port, work / "spy", connections=args.connections, accounts=accounts
        )
        peer = baseline = None
        try:
            servers = {"twistedspy": (spy.pid, spy_port)}
            if args.baseline is not None:
                (work / "baseline").mkdir()
                base_port = free_port()
                baseline = start_twistedspy(
                    base_port,
                    work / "baseline",
                    connections=args.connections,
                    tree=args.baseline,
                    accounts=accounts,
                )
                servers[BASELINE] = (baseline.pid, base_port)
            pages = {path: fetch(spy_port, path, headers) for path in paths}
            peer = start_peer(
                web_port,
                work / "web",
                pages,
                accounts=accounts,
                headers=headers,
                access_log=args.peer_access_log,
            )
            servers["twisted.web"] = (peer.pid, web_port)
            print(
                machine()
                + (", Security on, Basic logins" if secure else "")
                + (", peer with its access log" if args.peer_access_log else ", peer unlogged")
                + (", browser headers" if args.browser else "")
            )
            # Pages are fetched above without them: the same bytes, whatever was asked.
            load_headers = {**headers, **(BROWSER_HEADERS if args.browser else {})}
            for path, (kind, body) in pages.items():
                print(f"{path}: {len(body)} bytes, {kind}")
            # Warm up both (imports, caches, the thread pool) before anything is measured.
            for pid, port in servers.values():
                for path in paths:
                    load(
                        pid,
                        port,
                        path,
                        close=False,
                        duration=2,
                        connections=args.connections,
                        headers=load_headers,
                    )
            results: dict[tuple[str, str, str], list[Load]] = {}
            for round_no in range(args.rounds):
                for path in paths:
                    for mode in modes:
                        order = list(servers) if round_no % 2 == 0 else list(servers)[::-1]
                        for name in order:
                            pid, port = servers[name]
                            result = load(
                                pid,
                                port,
                                path,
                                close=mode == "close",
                                duration=args.duration,
                                connections=args.connections,
                                headers=load_headers,
                            )
                            results.setdefault((path, mode, name), []).append(result)
                            print(
                                f"round {round_no + 1} {path} {mode:10} {name:11} "
                                f"{result.rps:9.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                                f"p99 {result.p99_ms:6.2f} ms  {result.cpu_us:6.1f} us CPU/req"
                                + (f"  ERRORS {result.errors}" if result.errors else ""),
                                flush=True,
                            )
            report(results, paths, modes, list(servers))
            if args.json:
                rows = [
                    {"path": p, "mode": m, "server": s, "round": i + 1, **asdict(r)}
                    for (p, m, s), runs in results.items()
                    for i, r in enumerate(runs)
                ]
                args.json.write_text(json.dumps(rows, indent=1))
        finally:
            for proc in (spy, baseline, peer):
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=15)


def report(
    results: dict[tuple[str, str, str], list[Load]],
    paths: list[str],
    modes: list[str],
    names: list[str],
) -> None:
    print()
    print("| path | mode | server | req/s | p50 ms | p99 ms | CPU µs/req |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for path in paths:
        for mode in modes:
            for name in names:
                runs = results[(path, mode, name)]
                print(
                    f"| `{path}` | {mode} | {name} "
                    f"| {statistics.median(r.rps for r in runs):.0f} "
                    f"| {statistics.median(r.p50_ms for r in runs):.2f} "
                    f"| {statistics.median(r.p99_ms for r in runs):.2f} "
                    f"| {statistics.median(r.cpu_us for r in runs):.1f} |"
                )
    print()
    print("Ratios twistedspy / twisted.web, per round, then the median:")
    print()
    print("| path | mode | CPU/req per round | CPU/req median | req/s median | bar | met |")
    print("| --- | --- | --- | ---: | ---: | ---: | --- |")
    for path in paths:
        for mode in modes:
            spy, web = results[(path, mode, "twistedspy")], results[(path, mode, "twisted.web")]
            cpu = [s.cpu_us / w.cpu_us for s, w in zip(spy, web, strict=True)]
            rps = [s.rps / w.rps for s, w in zip(spy, web, strict=True)]
            median = statistics.median(cpu)
            bar = BAR.get((path, mode), 1.0)
            print(
                f"| `{path}` | {mode} | {' '.join(f'{r:.2f}' for r in cpu)} "
                f"| {median:.2f} | {statistics.median(rps):.2f} | ≤ {bar:.2f} "
                f"| {'yes' if median <= bar else 'no'} |"
            )
    if BASELINE in names:
        print()
        print(f"Ratios twistedspy / {BASELINE}, per round, then the median:")
        print()
        print("| path | mode | CPU/req per round | CPU/req median | req/s median |")
        print("| --- | --- | --- | ---: | ---: |")
        for path in paths:
            for mode in modes:
                now, then = results[(path, mode, "twistedspy")], results[(path, mode, BASELINE)]
                cpu = [n.cpu_us / t.cpu_us for n, t in zip(now, then, strict=True)]
                rps = [n.rps / t.rps for n, t in zip(now, then, strict=True)]
                print(
                    f"| `{path}` | {mode} | {' '.join(f'{r:.2f}' for r in cpu)} "
                    f"| {statistics.median(cpu):.2f} | {statistics.median(rps):.2f} |"
                )
    errors = sum(r.errors for runs in results.values() for r in runs)
    if errors:
        print(f"\n{errors} requests failed (non-2xx or socket errors): figures are suspect")


if __name__ == "__main__":
    main()
