"""System calls per process: twistedspy's /proc scan beside `ps -eo pid,comm,stat,user,group,rss`.

With N extra sleeping processes (default 1000), counts with `strace -c -f`:
- `ps -eo pid,comm,stat,user,group,rss`, once;
- a Python that imports the reader and scans 1 time, and one that scans 1 + K times: the
  difference divided by K is what one scan after the first costs (the first reads every
  command line; the following ones keep those of processes that have not run);
- the same for the first scan alone, against a Python that scans none.
Each divided by the number of processes. Run: PYTHONPATH=. python bench/processes_syscalls.py [N]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.processes import PS, sleepers

SCANS = """
import sys
from twistedspy.procfs.processes import ProcfsProcessSource
source = ProcfsProcessSource()
for _ in range(int(sys.argv[1])):
    source()
"""


def counted(argv: list[str]) -> Counter[str]:
    """Calls by system call name, from `strace -c -f`'s summary table."""
    strace = shutil.which("strace")
    if strace is None:
        raise SystemExit("strace is needed (apt-get install strace)")
    with tempfile.NamedTemporaryFile(prefix="strace-", suffix=".txt") as out:
        subprocess.run([strace, "-c", "-f", "-o", out.name, *argv], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        calls: Counter[str] = Counter()
        for line in Path(out.name).read_text().splitlines():
            fields = line.split()
            # % time, seconds, usecs/call, calls, [errors,] syscall
            if len(fields) >= 5 and fields[3].isdigit() and fields[-1] != "total":
                calls[fields[-1]] += int(fields[3])
        return calls


def processes() -> int:
    return sum(1 for entry in Path("/proc").iterdir() if entry.name.isdigit())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=1000, help="extra sleepers")
    parser.add_argument("--scans", type=int, default=10, help="K: scans after the first")
    args = parser.parse_args()
    python = [sys.executable, "-c", SCANS]
    with sleepers(args.count):
        total = processes()
        ps = counted(PS)
        none = counted([*python, "0"])
        first = counted([*python, "1"])
        more = counted([*python, str(1 + args.scans)])
    scan_first = first - none
    scan_next = Counter({k: (more[k] - first[k]) / args.scans for k in more | first})
    rows = [("ps -eo pid,comm,stat,user,group,rss", ps), ("twistedspy, first scan", scan_first),
            ("twistedspy, each later scan", scan_next)]  # fmt: skip
    names = ["openat", "read", "close", "newfstatat", "getdents64"]
    print(f"{total} processes; system calls per process")
    print(f"{'':38}" + "".join(f"{n:>11}" for n in [*names, "all"]))
    for label, calls in rows:
        cells = [calls[n] / total for n in names] + [sum(calls.values()) / total]
        print(f"{label:38}" + "".join(f"{c:11.2f}" for c in cells))
    ours, theirs = sum(scan_next.values()), sum(ps.values())
    print(f"bar: a later scan makes no more calls per process than ps: "
          f"{'met' if ours <= theirs else 'MISSED'}")  # fmt: skip
    return 0 if ours <= theirs else 1


if __name__ == "__main__":
    sys.exit(main())
