# -*- test-case-name: tests.test_fuzz_regressions -*-
"""
Every input the parser fuzzer ever found (fuzz/crashes/), and its seed corpus
(fuzz/corpus/), replayed through the same check the fuzzer applies: only HTTPErrors
escape, and whole, byte-by-byte and cut-up feeding agree.
"""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.fuzzing import CORPUS, CRASHES, Disagreement, check, cuts_for, feed, split
from twistedspy.http import BadRequest, Request


def inputs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.endswith(".md"))


class RegressionTests(SynchronousTestCase):
    def test_every_crash_ever_found(self) -> None:
        for path in inputs(CRASHES):
            with self.subTest(crash=path.name):
                check(path.read_bytes())

    def test_seed_corpus(self) -> None:
        seeds = inputs(CORPUS)
        self.assertGreater(len(seeds), 30)
        outcomes = [feed([path.read_bytes()]) for path in seeds]
        # The seeds hold both kinds, so the fuzzer starts from both sides of every check.
        self.assertTrue(any(error is None for _, error in outcomes))
        self.assertTrue(any(error is not None for _, error in outcomes))
        for path in seeds:
            with self.subTest(seed=path.name):
                check(path.read_bytes())


class CheckTests(SynchronousTestCase):
    """The check itself can fail: a harness that cannot fail proves nothing."""

    def test_pipeline_parses_to_its_requests(self) -> None:
        data = (CORPUS / "pipeline").read_bytes()
        requests, error = feed([data])
        self.assertIsNone(error)
        self.assertEqual([r.method for r in requests], ["GET", "HEAD", "POST", "GET"])
        self.assertIsInstance(requests[0], Request)

    def test_error_class_is_reported(self) -> None:
        self.assertEqual(feed([b"GET / HTTP/1.1\r\n\r\n"]), ((), BadRequest))

    def test_disagreement_is_caught(self) -> None:
        from twistedspy.http import parser as http_parser

        original = http_parser.RequestParser.feed

        def forgetful(self: http_parser.RequestParser, data: bytes) -> list[Request]:
            # A parser that loses a request when it arrives in one piece with another.
            done = original(self, data)
            return done[:1]

        http_parser.RequestParser.feed = forgetful  # type: ignore[method-assign]
        self.addCleanup(setattr, http_parser.RequestParser, "feed", original)
        with self.assertRaises(Disagreement):
            check((CORPUS / "pipeline").read_bytes())

    def test_cuts_stay_inside_the_input(self) -> None:
        data = (CORPUS / "post-body").read_bytes()
        cuts = cuts_for(data)
        self.assertTrue(all(0 <= cut <= len(data) for cut in cuts))
        self.assertEqual(b"".join(split(data, cuts)), data)
