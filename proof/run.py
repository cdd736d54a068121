# -*- test-case-name: tests.test_fuzz_regressions -*-
"""
`make proof`: the parser fuzzer, the network fuzz, hostile clients, machine faults and
the soak, in that order, then ONE table (the case, what was done, the figure, pass/fail)
with the date and the machine. Under 15 minutes on two cores; loopback only.

    python -m proof.run [--quick]

The table is also written to proof/last-run.md, for the README's "Proof under fire".
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from proof import faults, hostile, soak
from proof.table import Row, machine, markdown, today
from tests.fuzzing import CRASHES

ROOT = Path(__file__).resolve().parent.parent
NETWORK_FUZZ = "tests/test_network_fuzz.py"
EXAMPLES_VARIABLE = "TWISTEDSPY_NET_FUZZ_EXAMPLES"


def fuzz_parser(seconds: int) -> Row:
    before = set(CRASHES.iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "proof.fuzz_parser", f"-max_total_time={seconds}"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    runs = re.search(r"Done (\d+) runs in (\d+) second", result.stderr)
    coverage = re.findall(r"cov: (\d+) ft: (\d+)", result.stderr)
    new = sorted(p.name for p in set(CRASHES.iterdir()) - before)
    figure = (
        f"{int(runs[1]):,} inputs in {runs[2]} s, coverage {coverage[-1][0]} edges /"
        f" {coverage[-1][1]} features; crashes: {len(new) or 'none'}"
        if runs and coverage
        else f"fuzzer ended with status {result.returncode}: {result.stderr[-300:]!r}"
    )
    if new:
        figure += f" (kept in fuzz/crashes/: {', '.join(new)})"
    return Row(
        "parser fuzzing (atheris)",
        f"coverage-guided, {seconds} s from the {len(list((ROOT / 'fuzz/corpus').iterdir()))}"
        " seeds in fuzz/corpus/; fed whole, byte by byte and in pieces",
        figure,
        result.returncode == 0 and not new and runs is not None,
    )


def network_fuzz(examples: int) -> Row:
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_network_fuzz.py",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TWISTEDSPY_NET_FUZZ_EXAMPLES": str(examples)},
        capture_output=True,
        text=True,
        check=False,
    )
    figure = (
        "every answer a status of docs/architecture.md, no connection left open, /version 200"
        if result.returncode == 0
        else result.stdout[-400:]
    )
    return Row(
        "network fuzz (hypothesis)",
        f"{examples} generated streams of 1 to 3 clients: valid requests, junk, partial lines,"
        " huge headers, random chunks; half-close or hang up",
        f"{figure} ({time.monotonic() - started:.0f} s)",
        result.returncode == 0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small numbers, a few minutes")
    quick = parser.parse_args().quick
    started = time.monotonic()
    rows: list[Row] = []
    steps: list[tuple[str, Callable[[], list[Row]]]] = [
        ("fuzzing the parser", lambda: [fuzz_parser(10 if quick else 60)]),
        ("network fuzz", lambda: [network_fuzz(50 if quick else 500)]),
        ("hostile clients", lambda: hostile.run(quick)),
        ("machine faults", lambda: faults.run(quick)),
        ("soak", lambda: soak.run(60.0 if quick else 600.0)),
    ]
    for name, step in steps:
        print(f"proof: {name} ...", file=sys.stderr, flush=True)
        rows += step()
    minutes = (time.monotonic() - started) / 60
    table = (
        f"Run on {today()} on {machine()}; `make proof` took {minutes:.1f} min.\n\n"
        + markdown(rows)
    )
    (ROOT / "proof" / "last-run.md").write_text(table)
    print(table)
    failed = [row.case for row in rows if not row.passed]
    if failed:
        print(f"proof: FAILED: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
