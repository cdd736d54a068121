"""Child processes that tests start, and waiting until the kernel shows them asleep."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from twisted.trial.unittest import TestCase


def start_child(case: TestCase, argv: list[str]) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(argv)

    def stop() -> None:
        child.kill()
        child.wait()

    case.addCleanup(stop)
    return child


def wait_until_sleeping(pid: int, argv0: str) -> None:
    """Until the child has exec'd into `argv0` and sleeps (at most about 10 s)."""
    for _ in range(2000):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except FileNotFoundError:
            break
        if cmdline.split(b"\0")[0] == argv0.encode() and stat.rsplit(b") ", 1)[1][:1] == b"S":
            return
        time.sleep(0.005)
    raise AssertionError(f"process {pid} never slept as {argv0!r}")
