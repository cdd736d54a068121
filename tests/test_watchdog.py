# -*- test-case-name: tests.test_watchdog -*-
"""The stall watchdog, driven by a Clock: what it journals, counts, and tells health."""

from __future__ import annotations

import time
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from tests.test_accounts import EventList
from twistedspy.watchdog import BEAT, IDLE, RESTING_BEAT, STALL, StallWatchdog


class StallWatchdogTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.events = EventList()
        self.counted = 0
        self.watchdog = StallWatchdog(
            self.clock, Logger(observer=self.events), self.count, now=self.clock.seconds
        )
        self.watchdog.start()
        self.addCleanup(self.watchdog.stop)

    def count(self) -> None:
        self.counted += 1

    def stalls(self) -> list[dict[str, object]]:
        return [dict(e["spy_fields"]) for e in self.events if e["spy_event"] == "reactor-stall"]

    def idle(self, seconds: float) -> None:
        for _ in range(round(seconds / BEAT)):
            self.clock.advance(BEAT)

    def test_a_minute_idle_is_no_stall(self) -> None:
        self.idle(60)
        self.assertEqual((self.stalls(), self.counted), ([], 0))
        self.assertIsNone(self.watchdog.check(10)())

    def test_a_module_blocking_the_reactor_is_one_stall_with_its_name(self) -> None:
        self.idle(1)

        def blocking() -> str:
            # Time passes, and no timer fires meanwhile: the reactor is held.
            self.clock.rightNow += 0.6
            return "page"

        self.assertEqual(self.watchdog.timed("blocker", blocking), "page")
        self.idle(1)
        self.assertEqual(self.stalls(), [{"seconds": "0.600", "module": "blocker"}])
        self.assertEqual(self.counted, 1)
        self.assertEqual(self.watchdog.check(10)(), "the reactor was blocked for 0.60 s, 1 s ago")
        self.idle(10)
        self.assertIsNone(self.watchdog.check(10)())

    def test_a_late_beat_without_a_module_is_a_stall_of_unknown_cause(self) -> None:
        self.clock.advance(BEAT)
        self.clock.rightNow += 1.0
        self.clock.advance(BEAT)
        (stall,) = self.stalls()
        self.assertEqual(stall["module"], "-")
        self.assertAlmostEqual(float(str(stall["seconds"])), 1.0, places=3)

    def test_a_quick_module_call_is_no_stall(self) -> None:
        self.watchdog.timed("quick", time.sleep, 0)
        self.clock.rightNow += STALL / 2
        self.idle(1)
        self.assertEqual(self.stalls(), [])

    def recorded_delays(self) -> list[float]:
        """The delays the heartbeat asks the clock for, from now on."""
        asked: list[float] = []
        call_later = self.clock.callLater

        def recording(delay: float, f: Callable[..., object], /, *args: object) -> IDelayedCall:
            asked.append(delay)
            return call_later(delay, f, *args)

        self.clock.callLater = recording  # type: ignore[method-assign, assignment]
        return asked

    def test_the_heartbeat_rests_while_nobody_asks_and_wakes_for_a_request(self) -> None:
        """An idle server wakes once a second, not twenty times (docs/performance.md)."""
        delays = self.recorded_delays()
        self.idle(1)
        self.assertEqual(delays[-1], BEAT)
        self.idle(IDLE + 1)
        self.assertEqual(delays[-1], RESTING_BEAT)
        self.watchdog.wake()
        self.assertEqual(delays[-1], BEAT)
        self.idle(IDLE / 2)
        self.watchdog.wake()
        self.idle(IDLE / 2 + 1)
        self.assertEqual(delays[-1], BEAT)  # asked within IDLE: still awake
        self.idle(IDLE)
        self.assertEqual(delays[-1], RESTING_BEAT)
        self.assertEqual(self.stalls(), [])

    def test_a_stall_while_resting_is_seen_to_within_a_resting_beat(self) -> None:
        self.idle(IDLE + 1)
        self.clock.rightNow += 3.0
        self.clock.advance(0)
        (stall,) = self.stalls()
        self.assertGreaterEqual(float(str(stall["seconds"])), 3.0 - RESTING_BEAT)

    def test_a_stall_just_after_waking_is_measured_as_before(self) -> None:
        self.idle(IDLE + 1)
        self.watchdog.wake()
        self.clock.rightNow += 0.6
        self.clock.advance(0)
        (stall,) = self.stalls()
        self.assertAlmostEqual(float(str(stall["seconds"])), 0.6 - BEAT, places=3)
