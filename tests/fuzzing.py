"""
The parser fuzzer's check, shared by `tests/test_fuzz_regressions.py` (which replays every
input ever found) and `proof/fuzz_parser.py` (which runs atheris over it).

One input is one byte stream as a client might send it. It is fed four ways: whole,
one byte at a time, cut at a few places chosen by its own bytes, and whole again (when
heads parsed before may be remembered). The parser must either return Requests or raise
an `HTTPError`; anything else is a crash. And the four feedings must agree: the same
Requests, or the same class of error.
"""

from __future__ import annotations

from pathlib import Path

from twistedspy.http import parser as http_parser
from twistedspy.http.parser import HTTPError, Request

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
CRASHES = ROOT / "fuzz" / "crashes"

Outcome = tuple[tuple[Request, ...], type[HTTPError] | None]


class Disagreement(AssertionError):
    """Two ways of feeding the same bytes gave different results."""


def feed(pieces: list[bytes]) -> Outcome:
    """The requests the pieces complete, and the class of the error that ended them."""
    # Looked up at each call: proof/fuzz_parser.py reloads the module instrumented.
    parser = http_parser.RequestParser()
    done: list[Request] = []
    try:
        for piece in pieces:
            done += parser.feed(piece)
    except http_parser.HTTPError as error:
        # Requests completed in the same feed() call as the error are not returned, so
        # how many came before the error depends on the cutting: compare the error only.
        return (), type(error)
    return tuple(done), None


def cuts_for(data: bytes) -> list[int]:
    """A few cut points derived from the input itself, so libFuzzer can steer them too."""
    if not data:
        return []
    step = data[0] % 7 + 1
    return sorted({(byte * step) % (len(data) + 1) for byte in data[:8]})


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    pieces, start = [], 0
    for cut in cuts:
        pieces.append(data[start:cut])
        start = cut
    pieces.append(data[start:])
    return pieces


def check(data: bytes) -> None:
    """
    Raise if the parser misbehaves on `data`: any exception other than an HTTPError
    escapes as itself, a disagreement between feedings as `Disagreement`.
    """
    whole = feed([data])
    bytewise = feed([data[i : i + 1] for i in range(len(data))])
    pieces = feed(split(data, cuts_for(data)))
    again = feed([data])
    if whole != bytewise or whole != pieces or whole != again:
        raise Disagreement(
            f"whole {whole!r}\nbytewise {bytewise!r}\npieces {pieces!r}\nagain {again!r}"
        )
