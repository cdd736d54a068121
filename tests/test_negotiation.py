# -*- test-case-name: tests.test_negotiation -*-
"""Weights in Accept-style headers (RFC 9110 §12.4.2)."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from twistedspy.http.negotiation import qualities
from twistedspy.http.response import accepts_gzip


class QualitiesTests(TestCase):
    def test_weights(self) -> None:
        self.assertEqual(
            qualities("text/html, application/json;q=0.9, */*;q=0.8"),
            {"text/html": 1.0, "application/json": 0.9, "*/*": 0.8},
        )

    def test_q_after_other_parameters_and_case(self) -> None:
        self.assertEqual(qualities("Text/HTML;level=1;Q=0.5"), {"text/html": 0.5})

    def test_unreadable_items_are_left_out(self) -> None:
        self.assertEqual(qualities("gz ip, ;q=1, br;q=x, deflate;q=., gzip"), {"gzip": 1.0})

    def test_highest_weight_wins(self) -> None:
        self.assertEqual(qualities("gzip;q=0, gzip;q=0.5"), {"gzip": 0.5})


class GzipTests(TestCase):
    def test_accepts_gzip(self) -> None:
        cases = [
            (None, False),
            ("", False),
            ("gzip", True),
            ("br, gzip;q=0.1", True),
            ("gzip;q=0", False),
            ("*", True),
            ("*;q=0", False),
            ("identity", False),
            ("x-gzip", True),
        ]
        for header, expected in cases:
            self.assertEqual(accepts_gzip(header), expected, header)
