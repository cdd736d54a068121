# -*- test-case-name: tests.test_inflight -*-
"""One collection in flight per module, shared by every request that wants it.

`Deferred.addTimeout` fires on time but cannot stop a worker thread (TWISTED-NOTES,
"psutil and threads"), so a module must never start a second collection while one is
still running: concurrent callers wait on the same run instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

T = TypeVar("T")


class SharedCollection(Generic[T]):
    """
    Calls `start` when nobody is waiting for a result yet; joins the run in flight
    otherwise.

    Each caller gets its own Deferred: cancelling or timing one out detaches only
    that caller, never the shared run the others wait for.
    """

    def __init__(self, start: Callable[[], Deferred[T]]) -> None:
        self._start = start
        self._waiters: list[Deferred[T]] | None = None

    @property
    def running(self) -> bool:
        """Whether a collection is in flight now."""
        return self._waiters is not None

    def __call__(self) -> Deferred[T]:
        waiter: Deferred[T] = Deferred()
        if self._waiters is not None:
            self._waiters.append(waiter)
            return waiter
        self._waiters = [waiter]
        try:
            running = self._start()
        except Exception:
            running = fail()
        running.addBoth(self._finished)
        return waiter

    def _finished(self, result: T | Failure) -> None:
        waiters, self._waiters = self._waiters or [], None
        for waiter in waiters:
            if waiter.called:  # cancelled or timed out by its caller
                continue
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
        # Returning None consumes a failure nobody waits for any more.
