"""The peer for bench/processes.py: the /processes page as `twisted.web` + psutil + Jinja2.

This is how such a page is usually written: a `Resource` that lists the processes with
psutil and renders a Jinja2 table inline, on the reactor thread. It serves `/processes`
and a trivial `/version`, so the benchmark can measure both pages on either server.
Run: python bench/peer_processes.py PORT
"""

from __future__ import annotations

import platform
import sys
import time

import psutil
from jinja2 import Environment
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

PAGE = Environment(autoescape=True).from_string(
    """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Processes</title></head><body>
<h1>Processes</h1>
<table><thead><tr><th>PID</th><th>Name</th><th>State</th><th>User</th><th>Group</th>
<th>RSS</th><th>CPU</th><th>Threads</th><th>Started</th><th>Command</th></tr></thead>
<tbody>
{% for p in processes %}<tr><td>{{ p.pid }}</td><td>{{ p.name }}</td><td>{{ p.status }}</td>
<td>{{ p.username }}</td><td>{{ p.gids.effective if p.gids else "" }}</td>
<td>{{ p.memory_info.rss if p.memory_info else "" }}</td><td>{{ p.cpu_percent }}</td>
<td>{{ p.num_threads }}</td><td>{{ p.create_time }}</td>
<td>{{ (p.cmdline or [])|join(" ") }}</td></tr>
{% endfor %}</tbody></table></body></html>
"""
)
ATTRS = [
    "pid", "name", "status", "username", "gids", "memory_info", "cpu_percent",
    "num_threads", "create_time", "cmdline",
]  # fmt: skip


class ProcessesPage(Resource):
    isLeaf = True  # noqa: N815 - twisted.web's name

    def render_GET(self, request: Request) -> bytes:  # noqa: N802 - twisted.web's name
        processes = [p.info for p in psutil.process_iter(attrs=ATTRS)]
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return PAGE.render(processes=processes).encode("utf-8")


class VersionPage(Resource):
    isLeaf = True  # noqa: N815 - twisted.web's name

    def render_GET(self, request: Request) -> bytes:  # noqa: N802 - twisted.web's name
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return f"{platform.platform()} up since {time.ctime(psutil.boot_time())}\n".encode()


def main() -> None:
    root = Resource()
    root.putChild(b"processes", ProcessesPage())
    root.putChild(b"version", VersionPage())
    reactor.listenTCP(int(sys.argv[1]), Site(root), interface="127.0.0.1")  # type: ignore[arg-type]
    reactor.run()


if __name__ == "__main__":
    main()
