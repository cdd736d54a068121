# -*- test-case-name: tests.test_procfs -*-
"""/proc/sys/kernel (proc(5)): the kernel's settings that the version facts name."""

from __future__ import annotations

from twistedspy.procfs import PROC, read_text


def read_domainname(proc: str = PROC) -> str:
    """The NIS domain name, what uname(2) calls `domainname` (`(none)` when unset)."""
    return read_text(f"{proc}/sys/kernel/domainname").strip()
