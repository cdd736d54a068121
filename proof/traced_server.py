# -*- test-case-name: tests.test_soak -*-
"""
`twistedspy.cli` under tracemalloc, to tell a leak from caches filling: each SIGUSR2
writes a snapshot (25 frames a trace) to the folder named by TWISTEDSPY_SNAPSHOTS, as
NNN.snap, and what pymalloc and glibc malloc hold, as NNN.txt (TWISTEDSPY_TRACE_FRAMES=0:
those figures only). `python -m proof.soak --trace DIR` starts the server this way and
takes one a minute; compare two with
`python -m proof.traced_server DIR/001.snap DIR/009.snap`.
"""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

from tests.allocators import allocator_stats


def dump(folder: Path) -> None:
    """
    Write the next snapshot (the allocations of tracemalloc itself left out), if
    tracing, and the allocators' figures beside it.
    """
    count = sum(1 for _ in folder.glob("*.txt"))
    (folder / f"{count:03d}.txt").write_text(allocator_stats())
    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        snapshot.dump(str(folder / f"{count:03d}.snap"))


def serve() -> int:
    folder = Path(os.environ["TWISTEDSPY_SNAPSHOTS"])
    folder.mkdir(parents=True, exist_ok=True)
    # TWISTEDSPY_TRACE_FRAMES=0: allocator figures only, at full speed (tracemalloc
    # slows the server some thirty times, so it sees that many fewer requests).
    frames = int(os.environ.get("TWISTEDSPY_TRACE_FRAMES", "25"))
    if frames > 0:
        tracemalloc.start(frames)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        dump(folder)

    # SIGUSR2: twistd takes SIGUSR1 for log rotation, the reactor SIGINT/SIGTERM/SIGCHLD.
    signal.signal(signal.SIGUSR2, on_signal)
    # Imported only now: what importing allocates is traced too.
    from twistedspy.cli import main

    return main()


def compare(first: Path, last: Path, top: int = 15) -> None:
    """The allocation sites that grew most between two snapshots, with their stacks."""
    before = tracemalloc.Snapshot.load(str(first))
    after = tracemalloc.Snapshot.load(str(last))
    total_before = sum(s.size for s in before.statistics("filename"))
    total_after = sum(s.size for s in after.statistics("filename"))
    print(f"traced: {total_before / 1024:.0f} KiB -> {total_after / 1024:.0f} KiB")
    for stat in after.compare_to(before, "traceback")[:top]:
        print(f"\n{stat.size_diff / 1024:+.1f} KiB, {stat.count_diff:+d} blocks")
        for line in stat.traceback.format(limit=12, most_recent_first=True):
            print("   ", line)


if __name__ == "__main__":
    if len(sys.argv) == 3:
        compare(Path(sys.argv[1]), Path(sys.argv[2]))
    else:
        sys.exit(serve())
