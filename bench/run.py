"""`make bench`: every benchmark in bench/, with its defaults, one after the other.

The HTTP benchmark (twistedspy against twisted.web under wrk) takes about seven minutes
with its defaults; arguments given here are passed on to it, e.g.
`python bench/run.py --rounds 2 --duration 3` for a quick look.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def main() -> int:
    env = dict(os.environ, PYTHONPATH=str(BENCH.parent))
    print("== bench/http_bench.py", flush=True)
    status = subprocess.call(
        [sys.executable, str(BENCH / "http_bench.py"), *sys.argv[1:]], env=env
    )
    print("\n== bench/processes_speed.py 300", flush=True)
    status |= subprocess.call([sys.executable, str(BENCH / "processes_speed.py"), "300"], env=env)
    print("\n== bench/saturation.py 1000", flush=True)
    status |= subprocess.call([sys.executable, str(BENCH / "saturation.py"), "1000"], env=env)
    return status


if __name__ == "__main__":
    sys.exit(main())
