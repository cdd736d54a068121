# -*- test-case-name: tests.test_contract -*-
"""The module contract over real sockets: a module that blocks, hangs, raises or stalls
the reactor costs only its own requests (docs/writing-modules.md)."""

from __future__ import annotations

import base64
import contextlib
import signal
import threading
import time
from pathlib import Path

import bcrypt
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.daemons import STUCK_PLUGIN, TWISTD, SpyProcess
from tests.servers import Reply, fetch, start_server
from twistedspy.interfaces import IInfoModule, IReactorSafe
from twistedspy.query import Query
from twistedspy.report import Page, Report

#: What a person allows a page to take while the reactor is free: a generous bound for
#: a page that takes a few milliseconds (issue: each "in under 100 ms").
QUICK = 0.1
BUILT_IN_PAGES = ("/version", "/cpu", "/index", "/-/healthy")


def timed_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[Reply, float]:
    began = time.monotonic()
    reply = fetch(port, "GET", path, headers or {})
    return reply, time.monotonic() - began


def concurrent_gets(
    port: int, path: str, count: int, headers: dict[str, str]
) -> list[tuple[int, float]]:
    """`count` GETs at once, each on its own connection: (status, seconds) of each."""
    results: list[tuple[int, float]] = []
    lock = threading.Lock()

    def one() -> None:
        reply, seconds = timed_get(port, path, headers)
        with lock:
            results.append((reply.status, seconds))

    threads = [threading.Thread(target=one, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


class DropInProcessTests(TestCase):
    """A real twistd with a plain drop-in module that blocks its thread."""

    def setUp(self) -> None:
        self.folder = Path(self.mktemp()).resolve()
        self.moddir = self.folder / "modules"
        self.moddir.mkdir(parents=True)
        (self.moddir / "spy_stuck.py").write_text(STUCK_PLUGIN)
        self.started = self.folder / "started"

    def spawn(self, *options: str) -> SpyProcess:
        log_dir = self.folder / "logs"
        argv = [*TWISTD, "-n", "--pidfile=", "spy", "-p", "0", "--log-dir", str(log_dir)]
        running = SpyProcess.start(
            [*argv, "-m", str(self.moddir), *options],
            self.folder,
            log_dir,
            SPY_TEST_STARTED=str(self.started),
        )
        self.addCleanup(running.kill)
        return running

    def sleeping_request(self, running: SpyProcess, path: str) -> list[tuple[Reply, float]]:
        """Ask `path` in a thread and return once the module has begun; the list gets
        the reply and its time."""
        answered: list[tuple[Reply, float]] = []

        def ask() -> None:
            # OSError: the server stopped under it, the SIGINT test's case.
            with contextlib.suppress(OSError):
                answered.append(timed_get(running.port, path))

        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        deadline = time.monotonic() + 30
        while not self.started.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertTrue(self.started.exists(), running.output_text())
        self.addCleanup(asking.join, 30)
        return answered

    def test_a_sleeping_module_costs_only_its_own_request(self) -> None:
        running = self.spawn("--module-timeout=2")
        answered = self.sleeping_request(running, "/stuck?s=8")
        times = {}
        for path in BUILT_IN_PAGES:
            reply, seconds = timed_get(running.port, path)
            self.assertEqual(reply.status, 200, path)
            times[path] = seconds
        for path, seconds in times.items():
            self.assertLess(seconds, QUICK, f"{path} took {seconds:.3f} s: {times}")
        # The sleeper itself gets 504 at its deadline, not 200 when it wakes.
        deadline = time.monotonic() + 10
        while not answered and time.monotonic() < deadline:
            time.sleep(0.05)
        reply, seconds = answered[0]
        self.assertEqual(reply.status, 504)
        self.assertLess(seconds, 2 + 1)

    def test_sigint_while_a_module_thread_is_stuck(self) -> None:
        # A Python thread cannot be killed: the stop must not wait for it (it is a daemon
        # thread in a pool that is left, not joined).
        running = self.spawn("--module-timeout=600")
        self.sleeping_request(running, "/stuck")
        began = time.monotonic()
        running.signal(signal.SIGINT)
        self.assertIn(running.wait(), (0, -signal.SIGINT), running.output_text())
        stopped = time.monotonic() - began
        # The response under way gets the grace period (5 s), then its connection closes.
        self.assertLess(stopped, 5 + 3, running.output_text())
        self.assertIn(" info stop ", running.journal())

    def test_pages_made_and_an_idle_spell_raise_no_stall(self) -> None:
        # The watchdog is driven by a Clock in tests.test_watchdog; here by the real
        # reactor, its heartbeat beating while pages are made.
        running = self.spawn()
        for path in ("/", "/cpu", "/processes", "/metrics"):
            timed_get(running.port, path)
        time.sleep(3)
        reply, _ = timed_get(running.port, "/metrics")
        self.assertIn(b"twistedspy_reactor_stalls_total 0.0", reply.body)
        self.assertNotIn("reactor-stall", running.journal())


@implementer(IInfoModule)
class Hung:
    """A plain module whose collection never returns (until the test ends)."""

    name = "hung"
    title = "Hung"
    description = "Never answers."

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def collect(self, query: Query) -> Page:
        self.calls += 1
        self.release.wait(60)
        return Report(title="Released")


@implementer(IInfoModule)
class WrongType:
    name = "wrong"
    title = "Wrong"
    description = "Returns a string."

    def collect(self, query: Query) -> Page:
        return "not a report"  # type: ignore[return-value]


@implementer(IInfoModule, IReactorSafe)
class Blocker:
    """Declares itself reactor-safe, then blocks the reactor: the watchdog's case."""

    name = "blocker"
    title = "Blocker"
    description = "Blocks the reactor."

    def collect(self, query: Query) -> Page:
        time.sleep(0.5)
        return Report(title="Blocked")


def accounts(folder: Path, **users: str) -> Path:
    path = folder / "accounts"
    lines = [
        f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(5)).decode()}\n" for u, p in users.items()
    ]
    path.write_text("".join(lines))
    return path


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class InProcessTests(TestCase):
    async def test_fifty_requests_to_a_hung_module_hold_one_thread(self) -> None:
        folder = Path(self.mktemp())
        folder.mkdir()
        server = start_server(
            self,
            module_timeout=2.0,
            security=True,
            account_file=accounts(folder, alice="a-password", bob="b-password"),
            # All fifty come from 127.0.0.1: serve them at once, not a quarter at a time.
            max_clients_per_address=64,
        )
        hung = Hung()
        self.addCleanup(hung.release.set)
        server.service.modules["hung"] = hung
        alice = basic("alice", "a-password")
        # Logged in once, alice's next logins come from the checker's cache: fifty bcrypt
        # checks at once from one address would be throttled as a guessing attack.
        self.assertEqual(
            (await deferToThread(timed_get, server.port, "/cpu", alice))[0].status, 200
        )
        waiting = deferToThread(concurrent_gets, server.port, "/hung", 50, alice)
        await deferLater(reactor, 0.5, lambda: None)
        self.assertEqual((hung.calls, server.service.pools.modules.load().busy), (1, 1))
        # Built-in pages keep answering, a first login is checked, health is fine.
        for path in ("/version", "/cpu", "/meminfo", "/index", "/processes"):
            reply, seconds = await deferToThread(timed_get, server.port, path, alice)
            self.assertEqual(reply.status, 200, path)
        reply, seconds = await deferToThread(
            timed_get, server.port, "/version", basic("bob", "b-password")
        )
        self.assertEqual(reply.status, 200)
        self.assertLess(seconds, 1.0)
        reply, _ = await deferToThread(timed_get, server.port, "/-/healthy")
        self.assertEqual(reply.status, 200)
        results = await waiting
        self.assertEqual(sorted({status for status, _ in results}), [504], results)
        self.assertEqual(len(results), 50)
        self.assertLess(max(seconds for _, seconds in results), 2.0 + 1.0)
        self.assertEqual(hung.calls, 1)

    async def test_wrong_return_type_is_500_with_the_reason_in_the_journal(self) -> None:
        server = start_server(self)
        server.service.modules["wrong"] = WrongType()
        reply = await server.request("GET", "/wrong")
        self.assertEqual(reply.status, 500)
        self.assertNotIn(b"not a report", reply.body)
        self.assertIn("TypeError: module 'wrong' returned str", server.journal_text())
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)

    async def test_a_module_blocking_the_reactor_is_journalled_counted_and_unhealthy(
        self,
    ) -> None:
        server = start_server(self)
        server.service.modules["blocker"] = Blocker()
        self.assertEqual((await server.request("GET", "/blocker")).status, 200)
        await deferLater(reactor, 0.2, lambda: None)  # the journal written
        self.assertRegex(
            server.journal_text(), r" warn reactor-stall seconds=0\.[5-9]\d\d module=blocker\n"
        )
        metrics = await server.request("GET", "/metrics")
        self.assertIn(b"twistedspy_reactor_stalls_total 1.0", metrics.body)
        health = await server.request("GET", "/-/healthy")
        self.assertEqual(health.status, 503)
        self.assertRegex(health.body, rb"^twistedspy cannot serve pages: the reactor was blocked")
