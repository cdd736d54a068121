"""The pages over HTTP against the machine's own numbers: a real server, real kernel.

Each test reads the ground truth itself (/proc, statvfs, uname, a child it started)
and asks the server for the same fact over a real socket.
"""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path
from typing import Any

from twisted.trial.unittest import TestCase

from tests.children import start_child, wait_until_sleeping
from tests.servers import Reply, RunningServer, start_server
from twistedspy.procfs.meminfo import parse_meminfo
from twistedspy.procfs.netdev import parse_net_dev

HOSTILE = "<img src=x onerror=alert(1)>"


def rows_of(reply: Reply, table: int | str = 0) -> list[list[Any]]:
    """The rows of one table of a JSON page, by position or by title."""
    tables = json.loads(reply.body)["tables"]
    if isinstance(table, str):
        [found] = [t for t in tables if t["title"] == table]
    else:
        found = tables[table]
    rows: list[list[Any]] = found["rows"]
    return rows


class ProcessesTests(TestCase):
    async def get(self, server: RunningServer, path: str) -> Reply:
        reply: Reply = await server.request("GET", path)
        self.assertEqual(reply.status, 200, reply.body[:300])
        return reply

    async def test_child_appears_with_pid_user_and_state(self) -> None:
        child = start_child(self, ["sleep", "60"])
        wait_until_sleeping(child.pid, "sleep")
        server = start_server(self)
        rows = rows_of(await self.get(server, "/processes?format=json"))
        mine = [row for row in rows if row[0] == child.pid]
        self.assertEqual(len(mine), 1)
        _pid, name, state, user, _group, rss, _cpu, threads, _start, command = mine[0]
        self.assertEqual(
            (name, state, user, threads, command),
            ("sleep", "S", pwd.getpwuid(os.getuid()).pw_name, 1, "sleep 60"),
        )
        self.assertGreater(rss, 0)

    async def test_filters_and_limit(self) -> None:
        child = start_child(self, ["sleep", "60"])
        wait_until_sleeping(child.pid, "sleep")
        server = start_server(self)
        me = pwd.getpwuid(os.getuid()).pw_name
        rows = rows_of(
            await self.get(server, f"/processes?format=json&name=slee&user={me}&sort=pid")
        )
        self.assertIn(child.pid, [row[0] for row in rows])
        self.assertEqual({(row[1], row[3]) for row in rows}, {("sleep", me)})
        limited = rows_of(await self.get(server, "/processes?format=json&sort=pid&limit=2"))
        self.assertEqual(len(limited), 2)
        self.assertLess(limited[0][0], limited[1][0])

    async def test_bad_parameters_say_what_is_allowed(self) -> None:
        server = start_server(self)
        cases = {
            "sort=colour": "sort must be one of pid, name, state, user, group, rss, cpu, "
            "threads, start; got 'colour'",
            "order=sideways": "order must be asc or desc; got 'sideways'",
            "limit=-1": "limit must be a whole number of at least 1; got '-1'",
            "limit=ten": "limit must be a whole number of at least 1; got 'ten'",
        }
        for query, message in cases.items():
            reply = await server.request("GET", f"/processes?format=json&{query}")
            self.assertEqual(reply.status, 400, query)
            self.assertEqual(
                json.loads(reply.body), {"error": {"status": 400, "message": message}}
            )
        page = await server.request("GET", "/processes?sort=%3Cb%3E")
        self.assertEqual(page.status, 400)
        self.assertIn(b"got &#39;&lt;b&gt;&#39;", page.body)

    async def test_hostile_command_line_is_text(self) -> None:
        child = start_child(self, ["bash", "-c", f'exec -a "{HOSTILE}" sleep 30'])
        wait_until_sleeping(child.pid, HOSTILE)
        server = start_server(self)
        rows = rows_of(await self.get(server, "/processes?format=json"))
        (row,) = [row for row in rows if row[0] == child.pid]
        self.assertEqual(row[9], f"{HOSTILE} 30")
        html = (await self.get(server, "/processes?name=sleep&sort=pid&limit=100000")).body
        self.assertIn(b"&lt;img src=x onerror=alert(1)&gt; 30", html)
        self.assertNotIn(b"<img", html)


class MachineTests(TestCase):
    async def test_meminfo_totals_equal_proc_meminfo(self) -> None:
        server = start_server(self)
        reply = await server.request("GET", "/meminfo?format=json")
        truth = parse_meminfo(Path("/proc/meminfo").read_text()).values()
        memory = {row[0]: row[1] for row in rows_of(reply, 0)}
        swap = {row[0]: row[1] for row in rows_of(reply, 1)}
        self.assertEqual(memory["total"], truth["MemTotal"])
        self.assertEqual(swap["total"], truth["SwapTotal"])

    async def test_diskfree_root_equals_statvfs(self) -> None:
        server = start_server(self)
        rows = rows_of(await server.request("GET", "/diskfree?format=json"))
        root = [row for row in rows if row[1] == "/"]
        self.assertTrue(root, rows)
        st = os.statvfs("/")
        # Several mounts at / (one over another): the top one is what statvfs sees.
        self.assertEqual(root[-1][3], st.f_blocks * (st.f_frsize or st.f_bsize))

    async def test_lo_counters_at_least_what_the_kernel_said(self) -> None:
        before = {i.name: i for i in parse_net_dev(Path("/proc/net/dev").read_text())}
        self.assertIn("lo", before)
        server = start_server(self)
        reply = await server.request("GET", "/network?format=json")
        columns = json.loads(reply.body)["tables"][0]["columns"]
        (row,) = [row for row in rows_of(reply) if row[0] == "lo"]
        lo = dict(zip(columns, row, strict=True))
        self.assertGreaterEqual(lo["Received"], before["lo"].rx_bytes)
        self.assertGreaterEqual(lo["Packets in"], before["lo"].rx_packets)
        self.assertGreaterEqual(lo["Sent"], before["lo"].tx_bytes)
        self.assertGreaterEqual(lo["Packets out"], before["lo"].tx_packets)

    async def test_version_shows_kernel_release(self) -> None:
        server = start_server(self)
        reply = await server.request("GET", "/version")
        self.assertEqual(reply.status, 200)
        self.assertIn(os.uname().release.encode(), reply.body)


class IndexTests(TestCase):
    async def test_index_lists_exactly_the_modules_served(self) -> None:
        server = start_server(self, modules=("version",))
        reply = await server.request("GET", "/?format=json")
        modules = rows_of(reply, "Modules")
        self.assertEqual([row[0] for row in modules], ["index", "version"])
        self.assertEqual((await server.request("GET", "/processes")).status, 404)
        page = (await server.request("GET", "/")).body
        self.assertIn(b'href="/version"', page)
        self.assertNotIn(b"/processes", page)

    async def test_index_lists_every_module_by_default(self) -> None:
        server = start_server(self)
        reply = await server.request("GET", "/index?format=json")
        listed = [row[0] for row in rows_of(reply, "Modules")]
        self.assertEqual(listed, list(server.service.modules))
        for name in ("processes", "meminfo", "diskfree", "network", "version"):
            self.assertIn(name, listed)
