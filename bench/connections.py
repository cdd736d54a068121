"""Opening many idle keep-alive connections: twistedspy beside a bare Twisted responder.

Each round starts every server fresh, pinned to CPU 0 (`taskset -c 0`), with this client
on CPU 1, and opens N connections to it on loopback, a window of them at a time: each
connects, sends `GET /-/healthy`, reads the whole answer, and then stays open, idle. It
reports, per server:

- the seconds from the first connect to the last answer (accept time);
- the server's resident memory (`VmRSS`, summed over its process tree: twistedspy's
  processes page runs in a child process) grown while the N connections are open, per
  connection (the server answered one request on one connection before, so its start-up
  is not counted).

The peers: a bare Twisted `Protocol` that answers every read with fixed bytes (the least a
Twisted server can do), and `twisted.web` (`bench/peer_web.py`). The order of the servers
alternates between rounds; ratios twistedspy / bare responder are taken per round, and
their median reported, as the machine is shared.

Connections come from several loopback addresses (`SOURCES`), as one address is served
only its share of MaxClients at once (docs/architecture.md); twistedspy runs with
MaxClients at twice N and time-outs that outlast the measurement.

Run: PYTHONPATH=. python bench/connections.py [--connections 5000] [--rounds 5]
[--window 200] [--baseline DIR] (--baseline: twistedspy from another source tree too).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.procstat import free_port, rss_kib

REPO = Path(__file__).resolve().parent.parent
SERVER_CPU = "0"
CLIENT_CPU = "1"
SOURCES = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")
#: the bars of the issue: accept time at most twice the bare responder's, and per idle
#: connection at most this many KiB
TIME_BAR = 2.0
KIB_BAR = 1.5

BARE_RESPONDER = r"""
import resource, sys
from twisted.internet import protocol, reactor

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"

class Answer(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(ANSWER)

factory = protocol.Factory.forProtocol(Answer)
reactor.listenTCP(int(sys.argv[1]), factory, backlog=4096, interface="127.0.0.1")
print("ready", flush=True)
reactor.run()
"""

#: raises the file limit, then runs the server named on its command line
WITH_FILES = r"""
import resource, runpy, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
sys.argv = sys.argv[1:]
if sys.argv[0] == "-m":
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def raise_file_limit(needed: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} is below the {needed} needed")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def request_bytes(port: int) -> bytes:
    return f"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


def answered(data: bytes) -> bool:
    """Whether `data` holds one whole response (head and Content-Length bytes of body)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    for line in data[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(data) - end - 4 >= int(value)
    return True


def fetch_once(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request_bytes(port))
        data = b""
        while not answered(data):
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("closed before answering")
            data += chunk


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on {port} exited with {proc.returncode}")
        try:
            fetch_once(port)
        except OSError:
            time.sleep(0.1)
            continue
        return
    raise SystemExit(f"server on {port} did not start")


def open_idle(port: int, count: int, window: int) -> tuple[float, list[socket.socket]]:
    """Open `count` connections, each answered once; the seconds it took, and the sockets."""
    request = request_bytes(port)
    selector = selectors.DefaultSelector()
    done: list[socket.socket] = []
    received: dict[socket.socket, bytes] = {}
    started = 0
    in_flight = 0
    began = time.perf_counter()
    while len(done) < count:
        while in_flight < window and started < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((SOURCES[started % len(SOURCES)], 0))
            s.setblocking(False)
            code = s.connect_ex(("127.0.0.1", port))
            if code not in (0, errno.EINPROGRESS):
                raise SystemExit(f"connect: {os.strerror(code)}")
            selector.register(s, selectors.EVENT_WRITE)
            received[s] = b""
            started += 1
            in_flight += 1
        for key, events in selector.select(timeout=30):
            fileobj = key.fileobj
            assert isinstance(fileobj, socket.socket)
            s = fileobj
            if events & selectors.EVENT_WRITE:
                code = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise SystemExit(f"connect: {os.strerror(code)}")
                s.send(request)
                selector.modify(s, selectors.EVENT_READ)
                continue
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit("a connection was closed before its answer")
            received[s] += chunk
            if answered(received[s]):
                selector.unregister(s)
                del received[s]
                done.append(s)
                in_flight -= 1
    seconds = time.perf_counter() - began
    selector.close()
    return seconds, done


def command_for(name: str, port: int, work: Path, count: int) -> list[str]:
    if name == "bare":
        script = work / "bare.py"
        script.write_text(BARE_RESPONDER)
        return [str(script), str(port)]
    if name == "twisted.web":
        pages = work / "pages.json"
        pages.write_text(json.dumps({"/-/healthy": ["text/plain; charset=utf-8", "ok\n"]}))
        peer = REPO / "bench" / "peer_web.py"
        return [str(peer), str(port), str(pages), str(work / "access.log")]
    journal = work / f"journal-{name}"
    return [
        *("-m", "twistedspy.cli", "--pidfile="),
        *("-p", str(port), "--log-dir", str(journal)),
        *("--max-clients", str(2 * count), "--keepalive-timeout", "600"),
        *("--request-line-timeout", "600"),
    ]


def measure(name: str, count: int, window: int, tree: Path) -> tuple[float, float]:
    """Accept seconds and KiB per idle connection for one fresh server."""
    with tempfile.TemporaryDirectory(prefix="bench-connections-") as tmp:
        work = Path(tmp)
        port = free_port()
        command = command_for(name, port, work, count)
        env_tree = tree if name.startswith("twistedspy") else REPO
        proc = start_tree(command, port, work, name, env_tree)
        try:
            time.sleep(0.5)
            before = rss_kib(proc.pid)
            seconds, sockets = open_idle(port, count, window)
            time.sleep(0.5)
            after = rss_kib(proc.pid)
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited during the run")
            for s in sockets:
                s.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return seconds, (after - before) / count


def start_tree(
    command: list[str], port: int, work: Path, name: str, tree: Path
) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    full = ["taskset", "-c", SERVER_CPU, sys.executable, "-c", WITH_FILES, *command]
    log = (work / f"{name}.out").open("wb")
    proc = subprocess.Popen(full, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_ready(port, proc)
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--window", type=int, default=200, help="connections opening at once")
    parser.add_argument("--baseline", type=Path, help="twistedspy from this source tree too")
    parser.add_argument("--no-web", action="store_true", help="leave twisted.web out")
    args = parser.parse_args()
    raise_file_limit(args.connections + 100)
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    servers: dict[str, Path] = {"twistedspy": REPO, "bare": REPO}
    if not args.no_web:
        servers["twisted.web"] = REPO
    if args.baseline is not None:
        servers["twistedspy-baseline"] = args.baseline.resolve()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
    for round_ in range(args.rounds):
        order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
        for name in order:
            seconds, kib = measure(name, args.connections, args.window, servers[name])
            results[name].append((seconds, kib))
            print(f"round {round_ + 1} {name:20} {seconds:6.2f} s {kib:5.2f} KiB/conn", flush=True)
    print(f"\n{args.connections} connections, {args.rounds} rounds, medians:")
    print("| server | accept s | KiB/connection | accept / bare, per round | median |")
    print("| --- | ---: | ---: | --- | ---: |")
    bare = [seconds for seconds, _ in results["bare"]]
    for name, runs in results.items():
        times = [seconds for seconds, _ in runs]
        ratios = [t / b for t, b in zip(times, bare, strict=True)]
        print(
            f"| {name} | {statistics.median(times):.2f}"
            f" | {statistics.median(k for _, k in runs):.2f}"
            f" | {' '.join(f'{r:.2f}' for r in ratios)} | {statistics.median(ratios):.2f} |"
        )
    spy = results["twistedspy"]
    ratio = statistics.median(s / b for (s, _), b in zip(spy, bare, strict=True))
    kib = statistics.median(k for _, k in spy)
    print(f"\naccept time ≤ {TIME_BAR:g} times bare: {'met' if ratio <= TIME_BAR else 'missed'}")
    print(f"≤ {KIB_BAR:g} KiB per idle connection: {'met' if kib <= KIB_BAR else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
