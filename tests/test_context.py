# -*- test-case-name: tests.test_context -*-
"""What the service hands to modules: the runner that keeps GIL-heavy work one at a time."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from twistedspy.context import OneAtATime


class OneAtATimeTests(TestCase):
    def test_calls_wait_for_the_one_before(self) -> None:
        started: list[str] = []
        gates: list[Deferred[None]] = []

        def run_blocking(f: Any, /, *args: Any, **kwargs: Any) -> Deferred[Any]:
            started.append(args[0])
            gate: Deferred[None] = Deferred()
            gates.append(gate)
            return gate.addCallback(lambda _: f(*args, **kwargs))

        runner = OneAtATime(run_blocking)
        first = runner(str.upper, "a")
        second = runner(str.upper, "b")
        self.assertEqual(started, ["a"])
        gates[0].callback(None)
        self.assertEqual(self.successResultOf(first), "A")
        self.assertEqual(started, ["a", "b"])
        gates[1].callback(None)
        self.assertEqual(self.successResultOf(second), "B")

    def test_a_failure_does_not_block_the_next(self) -> None:
        def run_blocking(f: Any, /, *args: Any, **kwargs: Any) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            d.callback(None)
            return d.addCallback(lambda _: f(*args, **kwargs))

        runner = OneAtATime(run_blocking)
        failed = runner(int, "not a number")
        self.failureResultOf(failed, ValueError)
        self.assertEqual(self.successResultOf(runner(int, "7")), 7)
