# -*- test-case-name: tests.test_watchdog -*-
"""The stall watchdog, driven by a Clock: what it journals, counts, and tells health."""

from __future__ import annotations

import time

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
