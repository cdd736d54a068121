# -*- test-case-name: tests.test_memo -*-
"""BoundedMemo: results kept for small repeated keys, never more than the bound."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twistedspy.memo import BoundedMemo


class BoundedMemoTests(SynchronousTestCase):
    def test_kept_within_the_bounds(self) -> None:
        calls: list[str] = []

        def shout(text: str) -> str:
            calls.append(text)
            return text.upper()

        memo = BoundedMemo(shout, entries=2, longest=3, size=len)
        self.assertEqual(
            [memo("ab"), memo("ab"), memo("long"), memo("long")], ["AB"] * 2 + ["LONG"] * 2
        )
        self.assertEqual(calls, ["ab", "long", "long"])  # too long to keep
        memo("cd")
        self.assertEqual(set(memo.known), {"ab", "cd"})
        memo("ef")  # full: everything forgotten, then this kept
        self.assertEqual(memo.known, {"ef": "EF"})

    def test_false_results_are_kept(self) -> None:
        calls: list[str] = []

        def is_empty(text: str) -> bool:
            calls.append(text)
            return not text

        memo = BoundedMemo(is_empty, entries=8, longest=8, size=len)
        self.assertEqual([memo("x"), memo("x")], [False, False])
        self.assertEqual(calls, ["x"])
