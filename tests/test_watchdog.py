# -*- test-case-name: tests.test_watchdog -*-
"""The stall watchdog, driven by a Clock: what it journals, counts, and tells health."""

from __future__ import annotations

import time
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from tests.test_accounts import EventList
from twistedspy.watchdog import BEAT, STALL, StallWatchdog


class StallWatchdogTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.events = EventList()
        self.counted = 0
        self.watchdog = StallWatchdog(
            self.clock, Logger(observer=self.events), self.count, now=self.clock.seconds
        )
        self.addCleanup(self.watchdog.stop)

    def count(self) -> None:
        self.counted += 1

    def stalls(self) -> list[dict[str, object]]:
        return [dict(e["spy_fields"]) for e in self.events if e["spy_event"] == "reactor-stall"]

    def run_for(self, seconds: float) -> None:
        """The reactor runs freely: its timers fire on time."""
        for _ in range(round(seconds / BEAT)):
            self.clock.advance(BEAT)

    def held(self, seconds: float) -> None:
        """The reactor is held: time passes, and no timer fires meanwhile."""
        self.clock.rightNow += seconds

    def pending(self) -> Deferred[str]:
        """A request taken whose answer is not ready yet."""
        answer: Deferred[str] = Deferred()
        self.assertIs(self.watchdog.answered(self.watchdog.asked(), answer), answer)
        return answer

    def test_an_idle_server_is_not_woken_at_all(self) -> None:
        """No request in flight, no timer: an idle server costs no CPU (docs/performance.md)."""
        self.run_for(60)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual((self.stalls(), self.counted), ([], 0))
        self.assertIsNone(self.watchdog.check(10)())

    def test_the_heartbeat_beats_while_an_answer_is_pending_and_stops_with_the_last(self) -> None:
        first, second = self.pending(), self.pending()
        (beat,) = self.clock.getDelayedCalls()
        self.assertAlmostEqual(beat.getTime(), BEAT)
        self.run_for(1)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        first.callback("page")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)  # the second still waits
        second.callback("page")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.stalls(), [])

    def test_a_module_blocking_the_reactor_is_one_stall_with_its_name(self) -> None:
        answer = self.pending()

        def blocking() -> str:
            self.held(0.6)
            return "page"

        self.assertEqual(self.watchdog.timed("blocker", blocking), "page")
        self.run_for(1)  # the beat that the module made late does not count it again
        answer.callback("page")
        self.assertEqual(self.stalls(), [{"seconds": "0.600", "module": "blocker"}])
        self.assertEqual(self.counted, 1)
        self.assertEqual(self.watchdog.check(10)(), "the reactor was blocked for 0.60 s, 1 s ago")
        self.run_for(10)
        self.assertIsNone(self.watchdog.check(10)())

    def test_a_late_beat_without_a_module_is_a_stall_of_unknown_cause(self) -> None:
        answer = self.pending()
        self.clock.advance(BEAT)
        self.held(1.0)
        self.clock.advance(0)
        answer.callback("page")
        (stall,) = self.stalls()
        self.assertEqual(stall["module"], "-")
        # measured from when the next beat was due: to within a beat
        self.assertAlmostEqual(float(str(stall["seconds"])), 1.0 - BEAT, places=3)

    def test_a_stall_just_before_the_last_answer_is_judged_with_it(self) -> None:
        """The answer came on the turn the held reactor ran first, before the late beat."""
        answer = self.pending()
        self.held(0.6)
        answer.callback("page")
        (stall,) = self.stalls()
        self.assertAlmostEqual(float(str(stall["seconds"])), 0.6 - BEAT, places=3)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_an_answer_made_at_once_is_timed_whole(self) -> None:
        asked_at = self.watchdog.asked()
        self.held(0.4)
        self.assertEqual(self.watchdog.answered(asked_at, "page"), "page")
        (stall,) = self.stalls()
        self.assertAlmostEqual(float(str(stall["seconds"])), 0.4, places=3)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_an_answer_made_at_once_around_a_blocking_module_is_one_stall(self) -> None:
        asked_at = self.watchdog.asked()
        self.watchdog.timed("blocker", self.held, 0.6)
        self.watchdog.answered(asked_at, "page")
        self.assertEqual(self.stalls(), [{"seconds": "0.600", "module": "blocker"}])

    def test_quick_work_is_no_stall(self) -> None:
        self.watchdog.timed("quick", time.sleep, 0)
        asked_at = self.watchdog.asked()
        self.held(STALL / 2)
        self.watchdog.answered(asked_at, "page")
        answer = self.pending()
        self.run_for(1)
        self.held(STALL / 2)
        answer.callback("page")
        self.assertEqual(self.stalls(), [])

    def test_a_failed_answer_ends_the_watch_too(self) -> None:
        answer = self.pending()
        answer.addErrback(lambda _: None)
        answer.errback(RuntimeError("the page failed"))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_time_held_before_a_pending_answer_is_returned_is_a_stall(self) -> None:
        """The synchronous part of a request whose answer is still to come counts too."""
        asked_at = self.watchdog.asked()
        self.held(1.0)
        answer: Deferred[str] = Deferred()
        self.watchdog.answered(asked_at, answer)
        self.run_for(1)
        answer.callback("page")
        (stall,) = self.stalls()
        self.assertAlmostEqual(float(str(stall["seconds"])), 1.0, places=3)

    def test_an_answer_waiting_on_another_is_still_pending(self) -> None:
        """A Deferred fired but paused on an inner one is not ready yet."""
        inner: Deferred[str] = Deferred()
        answer: Deferred[str] = Deferred()
        answer.addCallback(lambda _: inner)
        answer.callback("outer")
        self.watchdog.answered(self.watchdog.asked(), answer)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        inner.callback("page")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_answers_after_the_stop_are_not_watched(self) -> None:
        """A stopping server's last answers may take their grace period: no stall."""
        answer = self.pending()
        self.clock.advance(BEAT / 2)
        self.watchdog.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.run_for(2)
        answer.callback("page")
        later = self.pending()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        later.callback("page")
        self.assertEqual((self.stalls(), self.counted), ([], 0))

    def test_a_failing_stall_count_does_not_spoil_the_answer(self) -> None:
        def failing() -> None:
            raise RuntimeError("the count failed")

        watchdog = StallWatchdog(
            self.clock, Logger(observer=self.events), failing, now=self.clock.seconds
        )
        answer: Deferred[str] = Deferred()
        watchdog.answered(watchdog.asked(), answer)
        self.held(1.0)
        answer.callback("page")
        self.assertEqual(self.successResultOf(answer), "page")
        (failed,) = [e for e in self.events if "log_failure" in e]
        self.assertTrue(failed["log_failure"].check(RuntimeError))

    def recorded_delays(self) -> list[float]:
        """The delays the heartbeat asks the clock for, from now on."""
        asked: list[float] = []
        call_later = self.clock.callLater

        def recording(delay: float, f: Callable[..., object], /, *args: object) -> IDelayedCall:
            asked.append(delay)
            return call_later(delay, f, *args)

        self.clock.callLater = recording  # type: ignore[method-assign, assignment]
        return asked

    def test_a_request_a_second_answered_at_once_costs_no_timer(self) -> None:
        """A scrape a second of a cached page wakes the reactor for nothing else."""
        delays = self.recorded_delays()
        for _ in range(15):
            self.watchdog.answered(self.watchdog.asked(), "page")
            self.run_for(1)
        self.assertEqual(delays, [])
