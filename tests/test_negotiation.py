# -*- test-case-name: tests.test_negotiation -*-
"""Weights in Accept-style headers (RFC 9110 §12.4.2)."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from twistedspy.dispatch import _json_preferred, accepts_json
from twistedspy.http.negotiation import qualities
from twistedspy.http.parser import Request, RequestParser
from twistedspy.http.response import _gzip_allowed, accepts_gzip


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


class MalformedWeightTests(TestCase):
    """A weight outside RFC 9110 §12.4.2's qvalue grammar leaves its item out."""

    def test_malformed_weights_are_not_acceptable(self) -> None:
        for weight in ("1..", "..", ".", "1.0.0", "2", "0.1234", "1.5", "-0", "1e0", "", "0x1"):
            with self.subTest(weight=weight):
                self.assertEqual(qualities(f"gzip;q={weight}, br"), {"br": 1.0})
                self.assertFalse(accepts_gzip(f"gzip;q={weight}"))

    def test_well_formed_weights(self) -> None:
        for weight, value in (("0", 0.0), ("0.", 0.0), ("0.125", 0.125), ("1.000", 1.0)):
            with self.subTest(weight=weight):
                self.assertEqual(qualities(f"gzip;q={weight}"), {"gzip": value})


def request_with(accept: str) -> Request:
    """A request carrying this Accept value."""
    [request] = RequestParser().feed(
        f"GET / HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n\r\n".encode()
    )
    return request


class JudgedOnceTests(TestCase):
    """Each Accept and Accept-Encoding value is weighed once (docs/performance.md)."""

    def test_the_same_answers_as_weighing_each_time_and_a_bounded_memory(self) -> None:
        # Far more distinct values than are kept, each asked twice: every answer as the
        # weights say, whether it was kept or not.
        for n in range(300):
            encodings = [f"gzip;q={n % 2}", f"br;q=0.{n}", f"x{n}"]
            accept_encoding = ", ".join(encodings[n % 3 :] + encodings[: n % 3])
            weights = qualities(accept_encoding)
            wanted = max(weights.get("gzip", 0.0), 0.0) > 0
            accept = f"text/html;q=0.{n % 10}, application/json;q=0.{(n * 7) % 10}, x/{n}"
            html, json = (n % 10) / 10, (n * 7 % 10) / 10
            request = request_with(accept)
            for _ in range(2):
                self.assertEqual(accepts_gzip(accept_encoding), wanted, accept_encoding)
                self.assertEqual(accepts_json(request), json > html, accept)
        self.assertLessEqual(len(_gzip_allowed.known), 64)
        self.assertLessEqual(len(_json_preferred.known), 64)

    def test_no_header_is_no(self) -> None:
        self.assertFalse(accepts_gzip(None))
        self.assertFalse(accepts_gzip(""))
        self.assertFalse(accepts_json(request_with("")))
