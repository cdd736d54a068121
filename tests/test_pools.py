# -*- test-case-name: tests.test_pools -*-
"""WorkPool: bounded threads that know how long they have been held."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, cast

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from twistedspy.pools import WorkPool, saturation_check

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorFromThreads


class WorkPoolTests(TestCase):
    def setUp(self) -> None:
        self.now = 100.0
        self.pool = WorkPool(
            cast("IReactorFromThreads", reactor), "module", 2, now=lambda: self.now
        )
        self.pool.start()
        self.release = threading.Event()
        # Threads blocked on the event end before the pool stops.
        self.addCleanup(self.pool.stop)
        self.addCleanup(self.release.set)

    def held(self, started: threading.Event) -> str:
        started.set()
        self.release.wait(30)
        return "released"

    async def start_held(self) -> Deferred[str]:
        started = threading.Event()
        running = self.pool(self.held, started)
        while not started.is_set():
            await deferLater(reactor, 0.01, lambda: None)
        return running

    async def test_runs_in_a_thread_and_answers_on_the_reactor(self) -> None:
        self.assertNotEqual(await self.pool(threading.get_ident), threading.get_ident())
        with self.assertRaises(ZeroDivisionError):
            await self.pool(divmod, 1, 0)

    async def test_saturated_only_once_every_thread_is_held_past_the_limit(self) -> None:
        check = saturation_check(self.pool, 10.0)
        first = await self.start_held()
        self.now += 30
        self.assertIsNone(check())  # one thread of two: a page still gets the other
        second = await self.start_held()
        self.now += 9
        self.assertIsNone(check())  # both held, but the second for 9 s only
        self.now += 2
        self.assertEqual(check(), "all 2 module threads have been busy for 11 s (over 10 s)")
        self.assertEqual(self.pool.load().oldest, 41)
        self.release.set()
        self.assertEqual([await first, await second], ["released", "released"])
        self.assertIsNone(check())
        self.assertEqual(self.pool.load().busy, 0)

    async def test_a_call_cancelled_before_it_starts_never_runs(self) -> None:
        held = [await self.start_held(), await self.start_held()]
        ran: list[int] = []
        waiting = self.pool(ran.append, 1)
        waiting.cancel()
        with self.assertRaises(CancelledError):
            await waiting
        self.release.set()
        for running in held:
            await running
        await self.pool(ran.append, 2)
        self.assertEqual(ran, [2])
