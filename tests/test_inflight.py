"""Tests for SharedCollection: one run in flight, each caller detached on its own."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from twistedspy.modules.inflight import SharedCollection


class SharedCollectionTests(TestCase):
    def test_one_run_for_concurrent_callers(self) -> None:
        runs: list[Deferred[int]] = []

        def start() -> Deferred[int]:
            runs.append(Deferred())
            return runs[-1]

        shared = SharedCollection(start)
        a, b, c = shared(), shared(), shared()
        self.assertEqual(len(runs), 1)
        self.assertTrue(shared.running)
        b.cancel()
        self.failureResultOf(b)
        runs[0].callback(7)
        self.assertEqual((self.successResultOf(a), self.successResultOf(c)), (7, 7))
        self.assertFalse(shared.running)
        shared()
        self.assertEqual(len(runs), 2)  # a new request after the run starts a new one

    def test_failure_reaches_every_caller(self) -> None:
        run: Deferred[int] = Deferred()
        shared = SharedCollection(lambda: run)
        a, b = shared(), shared()
        run.errback(RuntimeError("boom"))
        self.failureResultOf(a, RuntimeError)
        self.failureResultOf(b, RuntimeError)

    def test_synchronous_exception(self) -> None:
        def start() -> Deferred[int]:
            raise RuntimeError("boom")

        shared = SharedCollection(start)
        self.failureResultOf(shared(), RuntimeError)
        self.assertFalse(shared.running)
