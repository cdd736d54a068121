"""SharedCollection and SingleFlight: one run in flight, each caller detached on its own."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from twistedspy.inflight import SharedCollection, SingleFlight


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


class SingleFlightTests(TestCase):
    def setUp(self) -> None:
        self.flight: SingleFlight[str] = SingleFlight()
        self.runs: list[tuple[str, Deferred[str]]] = []

    def start(self, key: str) -> Deferred[str]:
        def run() -> Deferred[str]:
            self.runs.append((key, Deferred()))
            return self.runs[-1][1]

        return self.flight(key, run)

    def test_same_key_shares_other_keys_wait_their_turn(self) -> None:
        a1, b, a2 = self.start("a"), self.start("b"), self.start("a")
        self.assertEqual([k for k, _ in self.runs], ["a"])
        self.runs[0][1].callback("A")
        self.assertEqual((self.successResultOf(a1), self.successResultOf(a2)), ("A", "A"))
        self.assertEqual([k for k, _ in self.runs], ["a", "b"])
        self.assertNoResult(b)
        self.runs[1][1].callback("B")
        self.assertEqual(self.successResultOf(b), "B")
        self.assertFalse(self.flight.running)

    def test_a_waiting_run_whose_callers_gave_up_never_starts(self) -> None:
        self.start("hung")
        given_up = [self.start(f"k{n}") for n in range(50)]
        for waiter in given_up:
            waiter.cancel()
            self.failureResultOf(waiter)
        self.assertEqual(len(self.runs), 1)  # one run in flight, however many ask
        self.runs[0][1].callback("late")
        self.assertEqual(len(self.runs), 1)
        self.assertFalse(self.flight.running)

    def test_a_caller_asking_again_from_its_callback(self) -> None:
        # Delivering a result may start the next run from within a waiter's callback;
        # that run is then the one in flight, and is not started twice.
        first = self.start("a")
        again: list[Deferred[str]] = []
        first.addCallback(lambda _: again.append(self.start("a")))
        self.runs[0][1].callback("A")
        self.assertEqual([k for k, _ in self.runs], ["a", "a"])
        self.runs[1][1].callback("A2")
        self.assertEqual(self.successResultOf(again[0]), "A2")
