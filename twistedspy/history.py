# -*- test-case-name: tests.test_cpu -*-
"""Recent history for a page: a sample taken every few seconds into a bounded ring.

The ring keeps points, not readings: a `Recorder` turns each reading, with the one
before it, into the few numbers the page's sparklines draw (an `array` of floats, NaN
where there is none), and keeps only the last two readings whole. A cpu sample then
costs 80 bytes and 8 a CPU instead of some 500 bytes a CPU: ten minutes of cpu and
network history fit in 28 KiB on two CPUs instead of 315 (tests/test_cpu.py measures
it), and on a hundred CPUs in 120 KiB instead of some 6 MiB.

A `Sampler` belongs to a module that is also a Twisted `Service`; the SpyService starts
and stops every built module that provides `IService`, so the `LoopingCall` runs exactly
while the server does. Each module keeps its own sampler: modules are separate plugins
that can each be left out (`Modules =`), and a timer wake-up every five seconds costs
next to nothing (bench/metrics.py measures the whole sampling cost).
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

T = TypeVar("T")
R = TypeVar("R")

#: seconds between two samples
SAMPLE_INTERVAL: Final = 5.0
#: how far back the history reaches, in seconds
HISTORY_SECONDS: Final = 600.0


class Sampler(Generic[T]):
    """
    Calls `read` every `interval` seconds on the reactor and keeps the last `keep`
    results. `read` must be quick and must not block: it runs on the reactor thread
    (the callers read small /proc files that the kernel builds from memory).
    """

    def __init__(
        self,
        read: Callable[[], T],
        clock: IReactorTime,
        log: Logger,
        interval: float = SAMPLE_INTERVAL,
        keep: int = round(HISTORY_SECONDS / SAMPLE_INTERVAL),
    ) -> None:
        self._read = read
        self._log = log
        self.interval = interval
        self.samples: deque[T] = deque(maxlen=keep)
        self._loop = LoopingCall(self.take)
        self._loop.clock = clock

    @property
    def running(self) -> bool:
        return self._loop.running

    def take(self) -> None:
        """One sample now; a failure is journalled and the next tick tries again."""
        try:
            self.samples.append(self._read())
        except Exception:
            self._log.failure("history sample failed")

    def start(self) -> None:
        # now=True: the first sample at start, so the first page already has a base.
        self._loop.start(self.interval, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()


class Recorder(Generic[R]):
    """
    A Sampler's `read`: takes a reading with `read`, keeps the last two whole (a page
    measures its current rates against them), and returns `point(previous, reading)`,
    what the ring keeps.
    """

    def __init__(
        self, read: Callable[[], R], point: Callable[[R | None, R], array[float]]
    ) -> None:
        self._read = read
        self._point = point
        #: the last two readings, oldest first
        self.latest: deque[R] = deque(maxlen=2)

    def __call__(self) -> array[float]:
        reading = self._read()
        point = self._point(self.latest[-1] if self.latest else None, reading)
        self.latest.append(reading)
        return point


def column(points: Iterable[array[float]], index: int) -> list[float]:
    """One quantity across the points, leaving out the points that have none."""
    return [p[index] for p in points if index < len(p) and not math.isnan(p[index])]


class SampledModule(Service):
    """A module whose sampler runs while the service it belongs to runs."""

    sampler: Sampler[Any]

    @override
    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self.sampler.start()

    @override
    def stopService(self) -> None:
        self.sampler.stop()
        super().stopService()  # type: ignore[no-untyped-call]


class PolledModule(Service):
    """
    A module that, while the service it belongs to runs, calls `poll` every `interval`
    seconds for work that runs in a thread (a process scan, statvfs). The LoopingCall
    waits for the Deferred `poll` returns, so polls never overlap; a failure is
    journalled and the next tick tries again. The first poll comes one interval after
    the start: a server stopped at once leaves no thread behind.
    """

    def __init__(self, clock: IReactorTime, log: Logger, interval: float, what: str) -> None:
        self.interval = interval
        self._poll_log = log
        self._poll_what = what
        self._poll_loop = LoopingCall(self._poll_once)
        self._poll_loop.clock = clock

    def poll(self) -> Deferred[Any]:
        raise NotImplementedError

    def _poll_once(self) -> Deferred[None]:
        def failed(failure: Failure) -> None:
            self._poll_log.failure(f"{self._poll_what} failed", failure)

        return self.poll().addCallbacks(lambda _: None, failed)

    @override
    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._poll_loop.start(self.interval, now=False)

    @override
    def stopService(self) -> None:
        if self._poll_loop.running:
            self._poll_loop.stop()
        super().stopService()  # type: ignore[no-untyped-call]
