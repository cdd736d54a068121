# -*- test-case-name: tests.test_procfs -*-
"""/proc/self/mounts (proc(5), fstab(5) fields): what is mounted where."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from twistedspy.procfs import PROC, read_text


@dataclass(frozen=True, slots=True)
class Mount:
    device: str
    mount_point: str
    fs_type: str


_OCTAL: Final = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    # getmntent(3): space, tab, newline and backslash are written as \040, \011, \012, \134
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str) -> tuple[Mount, ...]:
    """Parse /proc/self/mounts (fstab(5) fields: device, mount point, type, ...)."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append(Mount(*(_unescape(f) for f in fields[:3])))
    return tuple(mounts)


def read_mounts(proc: str = PROC) -> tuple[Mount, ...]:
    """This process's view of the mounts (its mount namespace)."""
    return parse_mounts(read_text(f"{proc}/self/mounts"))
