"""Compare one /processes collection with `ps -eo pid,comm,stat,user,group,rss`.

Starts N extra `sleep` children (default 1000), then times each side several times
and prints the medians. Run: PYTHONPATH=. python bench/processes_speed.py [N]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import psutil  # type: ignore[import-untyped, unused-ignore]

from twistedspy.modules.processes import CpuTracker, ProcessQuery, process_cells, select_rows
from twistedspy.procfs.processes import ProcfsProcessSource
from twistedspy.query import Query


def median_ms(f: object, rounds: int = 15) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        f()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    children = [subprocess.Popen(["sleep", "300"]) for _ in range(count)]
    try:
        source = ProcfsProcessSource()
        tracker = CpuTracker()
        wanted = ProcessQuery.parse(Query())

        def ours() -> None:
            rows = tracker.rows(source())
            [process_cells(r) for r in select_rows(rows, wanted)]

        def ps() -> None:
            subprocess.run(
                ["ps", "-eo", "pid,comm,stat,user,group,rss"], check=True, capture_output=True
            )

        def with_psutil() -> None:
            attrs = [
                "pid",
                "name",
                "status",
                "username",
                "gids",
                "memory_info",
                "cpu_times",
                "num_threads",
                "create_time",
                "cmdline",
            ]
            list(psutil.process_iter(attrs=attrs))

        print(f"processes: {len(source().processes)}")
        print(f"ps:         {median_ms(ps):6.1f} ms")
        print(f"procfs:     {median_ms(ours):6.1f} ms")
        print(f"psutil:     {median_ms(with_psutil):6.1f} ms")
    finally:
        for child in children:
            child.kill()
        for child in children:
            child.wait()


if __name__ == "__main__":
    main()
