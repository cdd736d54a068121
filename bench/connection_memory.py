"""What one idle keep-alive connection holds in Python objects, by the line that made them.

Serves in this process, on loopback, twistedspy's connection (`HTTPFactory`, answering
every request with a short fixed page) or a bare Twisted `Protocol` that answers with
fixed bytes; a child process opens N connections, each answered once and then left idle
(`bench/connections.py`'s client). `tracemalloc` snapshots before and after give the
bytes per connection still held, by source line, largest first.

Run: PYTHONPATH=. python bench/connection_memory.py [--connections 5000] [--bare] [--top 15]
"""

from __future__ import annotations

import argparse
import gc
import resource
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

from twisted.internet import protocol, threads
from twisted.internet import reactor as global_reactor
from twisted.logger import Logger, LogPublisher

from twistedspy.http.parser import HTTPError, Request
from twistedspy.http.protocol import HTTPFactory
from twistedspy.http.response import Outcome, Response

reactor: Any = global_reactor
REPO = Path(__file__).resolve().parent.parent
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
CLIENT = """
import sys
from bench.connections import open_idle, raise_file_limit
raise_file_limit(int(sys.argv[2]) + 100)
seconds, sockets = open_idle(int(sys.argv[1]), int(sys.argv[2]), 200)
print(len(sockets), flush=True)
sys.stdin.read()
"""


class FixedSite:
    """Every request answered with the same short page."""

    def connection_login(self) -> object:
        return None

    def respond(self, request: Request, client: str, kept: object = None) -> Outcome:
        return Outcome(Response(200, b"ok\n", "text/plain"))

    def error_response(self, error: HTTPError) -> Response:
        return Response(error.status, error.message.encode(), "text/plain", close=True)

    def journal_path(self, request: Request) -> str:
        return request.path


class Answer(protocol.Protocol):
    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(ANSWER)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--bare", action="store_true", help="the bare responder instead")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    count = args.connections
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    factory: protocol.Factory
    if args.bare:
        factory = protocol.Factory.forProtocol(Answer)
    else:
        factory = HTTPFactory(
            FixedSite(),
            reactor,
            max_clients=2 * count,
            request_timeout=10,
            request_line_timeout=600,
            keepalive_timeout=600,
            log=Logger(observer=LogPublisher()),
        )
    port = reactor.listenTCP(0, factory, backlog=4096, interface="127.0.0.1")
    if isinstance(factory, HTTPFactory):
        factory.add_port(port)
    snapshots: list[tracemalloc.Snapshot] = []

    def start() -> None:
        gc.collect()
        snapshots.append(tracemalloc.take_snapshot())
        client = subprocess.Popen(
            [sys.executable, "-c", CLIENT, str(port.getHost().port), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={"PYTHONPATH": str(REPO)},
        )
        assert client.stdout is not None and client.stdin is not None
        stdout, stdin = client.stdout, client.stdin

        def opened(_: str) -> None:
            gc.collect()
            snapshots.append(tracemalloc.take_snapshot())
            stdin.close()
            client.wait()
            reactor.stop()

        threads.deferToThread(stdout.readline).addCallback(opened)

    tracemalloc.start(1)
    reactor.callLater(0.5, start)
    reactor.run()
    before, after = snapshots
    stats = after.compare_to(before, "lineno")
    total = sum(stat.size_diff for stat in stats)
    print(f"{'bare responder' if args.bare else 'twistedspy'}: {total / count:.0f} B a connection")
    for stat in stats[: args.top]:
        frame = stat.traceback[0]
        print(f"{stat.size_diff / count:8.1f} B {frame.filename}:{frame.lineno}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
