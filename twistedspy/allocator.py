# -*- test-case-name: tests.test_allocator -*-
"""
glibc malloc set for a long-running server of Python threads: one arena, and big
buffers in mappings of their own.

glibc gives each thread that allocates an arena of its own (up to eight per CPU), and an
arena keeps what the largest work it has done needed. The worker pool's eight threads
take turns at the same work (reading /proc, building and rendering pages), so each arena
grows, slowly and by chance, to its own copy of those peaks; under the GIL only one of
them allocates at a time anyway. One arena for all (M_ARENA_MAX = 1) keeps one copy.
glibc also raises its mmap threshold to the largest block freed, after which big answers
(a page of a thousand processes, its JSON) are carved out of the arenas and leave holes
there; a fixed threshold (M_MMAP_THRESHOLD at glibc's own starting 128 KiB) gives each
its own mapping, returned whole when freed. In the ten-minute soak (proof/soak.py) this
ended 2.6 MiB lower, and RSS grew 38 KiB/min after the warm-up instead of 71 to 78.

What the user tells glibc in the environment (MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_,
GLIBC_TUNABLES) is left to win; other C libraries are left alone.

One more setting can only be made before the process starts: glibc keeps up to seven
freed blocks of each small size in a cache per thread (tcache), which the nine threads
(the reactor's and the pool's eight) fill slowly and by chance, to some 2 MiB at most,
never given back: in the soak, RSS still grew some 50 KiB/min after the warm-up with it,
and 2 without. pymalloc already keeps the small Python objects, and the soak ran as fast
without it. NO_THREAD_CACHE is the GLIBC_TUNABLES entry that turns it off, set by the
systemd units in contrib/ and by `make run` (`with_no_thread_cache` adds it to an
environment).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

#: mallopt(3) parameters, from glibc's malloc.h
M_MMAP_THRESHOLD: Final = -3
M_ARENA_MAX: Final = -8


@dataclass(frozen=True)
class Setting:
    name: str
    parameter: int
    value: int
    #: the environment variable, and the GLIBC_TUNABLES entry, by which a user sets it
    variable: str
    tunable: str

    def chosen_by_user(self, environ: Mapping[str, str]) -> bool:
        return self.variable in environ or self.tunable in environ.get("GLIBC_TUNABLES", "")


SETTINGS: Final = (
    Setting("M_ARENA_MAX", M_ARENA_MAX, 1, "MALLOC_ARENA_MAX", "glibc.malloc.arena_max"),
    Setting(
        "M_MMAP_THRESHOLD",
        M_MMAP_THRESHOLD,
        128 * 1024,
        "MALLOC_MMAP_THRESHOLD_",
        "glibc.malloc.mmap_threshold",
    ),
)


#: glibc's per-thread cache off; a GLIBC_TUNABLES entry, read only at the process's start
NO_THREAD_CACHE: Final = "glibc.malloc.tcache_count=0"


def with_no_thread_cache(environ: Mapping[str, str]) -> dict[str, str]:
    """
    `environ` for a server process: NO_THREAD_CACHE added to its GLIBC_TUNABLES, unless
    those already set the cache's size.
    """
    tunables = environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.tcache_count" in tunables:
        return dict(environ)
    return {**environ, "GLIBC_TUNABLES": ":".join(filter(None, [tunables, NO_THREAD_CACHE]))}


def tune_malloc(environ: Mapping[str, str] | None = None) -> list[str]:
    """
    Apply SETTINGS, before the worker threads start; returns what was set (nothing with
    another C library, nor what the environment already decides).
    """
    environ = os.environ if environ is None else environ
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: musl's mallopt does nothing
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return []
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    applied = []
    for setting in SETTINGS:
        if not setting.chosen_by_user(environ) and mallopt(setting.parameter, setting.value) == 1:
            applied.append(f"{setting.name}={setting.value}")
    return applied
