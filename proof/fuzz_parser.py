# -*- test-case-name: tests.test_fuzz_regressions -*-
"""
Coverage-guided fuzzing of the sans-IO request parser (atheris, libFuzzer underneath).

One input is one byte stream as a client might send it. It is fed three ways: whole,
one byte at a time, and cut at a few places chosen by its own bytes, through
`receive_data` and `next_event` (by way of `feed`): the entry point the connection uses.
The parser must either return Requests or raise an `HTTPError`; anything else is a
crash. And the three feedings must agree: the same Requests, or the same class of error.

    python -m proof.fuzz_parser -max_total_time=60        # what `make proof` runs

New inputs libFuzzer finds go to a scratch directory, never into `fuzz/corpus/` (the
seeds kept in the repository); crashes are written to `fuzz/crashes/`, which
`tests/test_fuzz_regressions.py` replays for ever after.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

from twistedspy.http import grammar
from twistedspy.http import parser as http_parser
from twistedspy.http.parser import HTTPError, Request

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
CRASHES = ROOT / "fuzz" / "crashes"
DICTIONARY = ROOT / "fuzz" / "http.dict"

Outcome = tuple[tuple[Request, ...], type[HTTPError] | None]


class Disagreement(AssertionError):
    """Two ways of feeding the same bytes gave different results."""


def feed(pieces: list[bytes]) -> Outcome:
    """The requests the pieces complete, and the class of the error that ended them."""
    # Looked up at each call: main() reloads the module with coverage instrumentation.
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
    if whole != bytewise or whole != pieces:
        raise Disagreement(f"whole {whole!r}\nbytewise {bytewise!r}\npieces {pieces!r}")


def main(argv: list[str]) -> None:
    import atheris  # only the fuzzer needs it, not the regression tests

    # The parser is already imported (check() needs it): load it again, instrumented.
    # (atheris.instrument_all() would do too, but takes half a minute over the stdlib.)
    with atheris.instrument_imports(include=["twistedspy"]):
        importlib.reload(grammar)
        importlib.reload(http_parser)
    CRASHES.mkdir(exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="twistedspy-fuzz-")
    # libFuzzer writes what it finds into the first corpus directory: a scratch one, so
    # the seeds in the repository stay as they are. Crash inputs go to fuzz/crashes/.
    args = [
        argv[0],
        f"-artifact_prefix={CRASHES}/",
        f"-dict={DICTIONARY}",
        # Room for the seeds that go past the 8 KiB line limit.
        "-max_len=10000",
        *argv[1:],
        scratch,
        str(CORPUS),
    ]
    atheris.Setup(args, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
