# -*- test-case-name: tests.test_fuzz_regressions -*-
"""
Coverage-guided fuzzing of the sans-IO request parser (atheris, libFuzzer underneath).

The check (tests/fuzzing.py) feeds each input whole, byte by byte and cut up, and fails
on anything but an `HTTPError` or on feedings that disagree.

    python -m proof.fuzz_parser -max_total_time=60        # what `make proof` runs

New inputs libFuzzer finds go to a scratch directory, never into `fuzz/corpus/` (the
seeds kept in the repository); crashes are written to `fuzz/crashes/`, which
`tests/test_fuzz_regressions.py` replays for ever after.
"""

from __future__ import annotations

import importlib
import sys
import tempfile

from tests.fuzzing import CORPUS, CRASHES, check
from twistedspy.http import grammar
from twistedspy.http import parser as http_parser

DICTIONARY = CORPUS.parent / "http.dict"


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
