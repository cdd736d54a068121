# -*- test-case-name: tests.test_inflight -*-
"""One run in flight at a time, shared by every caller that wants the same thing.

`Deferred.addTimeout` fires on time but cannot stop a worker thread (a Python thread
cannot be killed), so the same work must never be started again while one run of it is
still going: a hung collection would take one more thread with every request. Callers
that want the same result wait on the run in flight; callers that want something else
from the same source wait their turn.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

T = TypeVar("T")


@dataclass(slots=True)
class _Run(Generic[T]):
    start: Callable[[], Deferred[T]]
    waiters: list[Deferred[T]] = field(default_factory=list)

    def abandoned(self) -> bool:
        """Whether every caller has given up (cancelled or timed out) already."""
        return all(waiter.called for waiter in self.waiters)


class SingleFlight(Generic[T]):
    """
    Runs at most one `start` at a time; callers with the same key share a run.

    A caller whose key is running or waiting joins that run; any other key waits, in
    arrival order, until the run in flight has finished. Each caller gets its own
    Deferred: cancelling or timing one out detaches only that caller, never the run the
    others wait for, and a waiting run whose callers have all given up is never started.
    """

    def __init__(self) -> None:
        #: the run in flight first, then the waiting ones in arrival order
        self._runs: dict[Hashable, _Run[T]] = {}
        self._busy = False

    @property
    def running(self) -> bool:
        """Whether a run is in flight now."""
        return self._busy

    def __call__(self, key: Hashable, start: Callable[[], Deferred[T]]) -> Deferred[T]:
        waiter: Deferred[T] = Deferred()
        run = self._runs.get(key)
        if run is None:
            run = self._runs[key] = _Run(start)
        run.waiters.append(waiter)
        self._start_next()
        return waiter

    def _start_next(self) -> None:
        # A waiter's callback may have started a run already (it asked again).
        while self._runs and not self._busy:
            key, run = next(iter(self._runs.items()))
            if run.abandoned():
                del self._runs[key]
                continue
            self._busy = True
            try:
                running = run.start()
            except Exception:
                running = fail()
            running.addBoth(self._finished, key)
            return

    def _finished(self, result: T | Failure, key: Hashable) -> None:
        run = self._runs.pop(key)
        self._busy = False
        for waiter in run.waiters:
            if waiter.called:  # cancelled or timed out by its caller
                continue
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
        self._start_next()
        # Returning None consumes a failure nobody waits for any more.


class SharedCollection(Generic[T]):
    """
    Calls `start` when no run is in flight; joins the run in flight otherwise.

    The one-key case of `SingleFlight`, for a module's own source (one file read shared
    by the requests that arrive while it runs).
    """

    def __init__(self, start: Callable[[], Deferred[T]]) -> None:
        self._start = start
        self._flight: SingleFlight[T] = SingleFlight()

    @property
    def running(self) -> bool:
        """Whether a collection is in flight now."""
        return self._flight.running

    def __call__(self) -> Deferred[T]:
        return self._flight(None, self._start)
