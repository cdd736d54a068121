# -*- test-case-name: tests.test_exporter_readers -*-
"""The kernel clock's discipline, from adjtimex(2) (no file holds it), and the clock
sources under /sys/devices/system/clocksource."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass
from typing import Final

from twistedspy.procfs import SYS, read_text

#: adjtimex(2) answers TIME_ERROR when the clock is not synchronised
TIME_ERROR: Final = 5
#: adjtimex(2) status bit: offset and jitter are in nanoseconds, not microseconds
STA_NANO: Final = 0x2000


class _Timeval(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long))


class Timex(ctypes.Structure):
    """`struct timex` of <sys/timex.h>; ctypes lays the padding out as the C compiler does."""

    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    )


@dataclass(frozen=True, slots=True)
class ClockDiscipline:
    """adjtimex(2)'s answer in SI units, as node_exporter's timex collector converts it."""

    synchronised: bool
    offset_seconds: float
    frequency_ratio: float
    maxerror_seconds: float
    esterror_seconds: float
    status: int
    constant: int
    tick_seconds: float
    pps_frequency_hertz: float
    pps_jitter_seconds: float
    pps_shift_seconds: int
    pps_stability_hertz: float
    pps_jitter_count: int
    pps_calibration_count: int
    pps_error_count: int
    pps_stability_exceeded_count: int
    tai_offset_seconds: int


#: adjtimex(2) NOTES: freq, ppsfreq and stabil are ppm with a 16-bit fraction
_PPM16: Final = 1_000_000 * 65536


def discipline(state: int, t: Timex) -> ClockDiscipline:
    """Convert adjtimex(2)'s return value and struct (a pure function, for tests)."""
    divisor = 1e9 if t.status & STA_NANO else 1e6
    return ClockDiscipline(
        synchronised=state != TIME_ERROR,
        offset_seconds=t.offset / divisor,
        frequency_ratio=1 + t.freq / _PPM16,
        maxerror_seconds=t.maxerror / 1e6,
        esterror_seconds=t.esterror / 1e6,
        status=t.status,
        constant=t.constant,
        tick_seconds=t.tick / 1e6,
        pps_frequency_hertz=t.ppsfreq / _PPM16,
        pps_jitter_seconds=t.jitter / divisor,
        pps_shift_seconds=t.shift,
        pps_stability_hertz=t.stabil / _PPM16,
        pps_jitter_count=t.jitcnt,
        pps_calibration_count=t.calcnt,
        pps_error_count=t.errcnt,
        pps_stability_exceeded_count=t.stbcnt,
        tai_offset_seconds=t.tai,
    )


_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def read_clock_discipline() -> ClockDiscipline:
    """adjtimex(2) with modes 0: reads the kernel's state, changes nothing."""
    t = Timex()
    state = _LIBC.adjtimex(ctypes.byref(t))
    if state < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return discipline(state, t)


@dataclass(frozen=True, slots=True)
class ClockSources:
    #: the clocksource device's number (`clocksource0` is 0)
    device: str
    available: tuple[str, ...]
    current: str


def read_clock_sources(sys: str = SYS) -> tuple[ClockSources, ...]:
    """Each /sys/devices/system/clocksource/clocksourceN: what it offers and uses."""
    base = f"{sys}/devices/system/clocksource"
    found = []
    for name in sorted(os.listdir(base)):  # noqa: PTH208 - plain strings, as read_text takes
        if not name.startswith("clocksource"):
            continue
        path = f"{base}/{name}"
        found.append(
            ClockSources(
                name.removeprefix("clocksource"),
                tuple(read_text(f"{path}/available_clocksource").split()),
                read_text(f"{path}/current_clocksource").strip(),
            )
        )
    return tuple(found)
