"""/sockets beside `ss -tulpn`, and the /diskio and /pressure pages' latency.

Starts N extra sleeping processes (default 1000), each holding a socket (so that every
/proc/PID/fd holds something to look at, as on a server), and a twistedspy server on a
loopback port. Then, ROUNDS times each and by medians:
- `ss -tulpn` (wall time of the whole command, as a user waits for it);
- the /sockets page over HTTP (client wall time), the owners it remembered kept, as a
  running server keeps them;
- the /sockets collection alone in this process with nothing remembered (a full walk
  of /proc/PID/fd each time: the bound when every listener is new), no page rendered;
- the /diskio and /pressure pages over HTTP (p50 and p90).
Prints a table and the ratios to ss.

Run: PYTHONPATH=. python bench/saturation.py [N]
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import ParamSpec, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.logger import Logger

from bench.metrics import get, running
from bench.procstat import free_port
from twistedspy.context import ModuleContext
from twistedspy.modules.sockets import SocketOwners, SocketsModule
from twistedspy.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")

ROUNDS = 30
HOLDER = "import socket, time; s = socket.socket(); time.sleep(300)"


def times_ms(f: Callable[[], object], rounds: int = ROUNDS) -> list[float]:
    f()  # warm
    found = []
    for _ in range(rounds):
        started = time.perf_counter()
        f()
        found.append((time.perf_counter() - started) * 1000)
    return sorted(found)


def p(found: list[float], share: float) -> float:
    return found[min(len(found) - 1, int(share * len(found)))]


def sockets_module() -> SocketsModule:
    context = ModuleContext(Settings(), Clock(), succeed_now, lambda: (), Logger())
    return SocketsModule(context)


def succeed_now(f: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Deferred[R]:
    return succeed(f(*args, **kwargs))


def cold_sockets_collection(module: SocketsModule) -> None:
    """What the page's collection costs with nothing remembered: a full owner walk."""
    module.owners = SocketOwners()
    module.view()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    # sleep(1) holding three fds, and a tenth of them Python with a socket: ~ a server's mix
    children = [
        subprocess.Popen([sys.executable, "-c", HOLDER] if i % 10 == 0 else ["sleep", "300"])
        for i in range(count)
    ]
    listener = socket.create_server(("127.0.0.1", 0))  # one listener of our own
    folder = Path(tempfile.mkdtemp(prefix="twistedspy-bench-"))
    try:
        time.sleep(2)  # the Python children have started
        port = free_port()
        spy = [sys.executable, "-m", "twistedspy.cli", f"--port={port}",
               f"--log-dir={folder}/logs", f"--message-file={folder}/m.jsonl"]  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        with running(spy, f"{base}/-/healthy"):
            rows = [
                (
                    "ss -tulpn",
                    times_ms(
                        lambda: subprocess.run(["ss", "-tulpn"], check=True, capture_output=True)
                    ),
                ),
                ("/sockets page (HTTP)", times_ms(lambda: get(f"{base}/sockets"))),
                (
                    "/sockets collection, full walk",
                    times_ms(partial(cold_sockets_collection, sockets_module())),
                ),
                ("/diskio page (HTTP)", times_ms(lambda: get(f"{base}/diskio"))),
                ("/pressure page (HTTP)", times_ms(lambda: get(f"{base}/pressure"))),
            ]
        processes = sum(1 for e in Path("/proc").iterdir() if e.name.isdigit())
        print(f"processes: {processes}, rounds: {ROUNDS}, CPUs: {os.cpu_count()}")
        print(f"{'':34} {'p50 ms':>8} {'p90 ms':>8} {'p50 / ss':>9}")
        ss = statistics.median(rows[0][1])
        for label, found in rows:
            median = statistics.median(found)
            print(f"{label:34} {median:8.1f} {p(found, 0.9):8.1f} {median / ss:9.2f}")
    finally:
        listener.close()
        for child in children:
            child.kill()
        for child in children:
            child.wait()


if __name__ == "__main__":
    main()
