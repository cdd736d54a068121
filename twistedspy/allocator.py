# -*- test-case-name: tests.test_allocator -*-
"""
glibc malloc set for a long-running server of Python threads: one arena, big buffers in
mappings of their own, and (from the environment) no per-thread caches.

Why each, and what the soaks measured, is in docs/operations.md ("Memory and the
allocator"). What the user sets in the environment wins; other C libraries are left alone.
NO_THREAD_CACHE is the GLIBC_TUNABLES entry that only the environment at a process's start
can set (`with_no_thread_cache` adds it to one).
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
