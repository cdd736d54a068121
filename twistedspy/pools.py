# -*- test-case-name: tests.test_pools -*-
"""Bounded worker threads, one pool for each kind of blocking work.

Password checks, module collection and the rendering of big pages each get a pool of
their own, so that no kind can starve another: a module hung in a stale mount holds
collection threads only, and a flood of logins queues behind bcrypt without delaying a
page. Each pool knows how long its threads have been held, which is how `/-/healthy`
tells a pool saturated by hung work (docs/architecture.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorFromThreads

P = ParamSpec("P")
T = TypeVar("T")


def _daemon_thread(**kwargs: Any) -> threading.Thread:
    # A worker stuck in a hung mount must not keep the process alive after a clean stop.
    return threading.Thread(daemon=True, **kwargs)


@dataclass(frozen=True, slots=True)
class PoolLoad:
    """A pool's threads at one moment."""

    size: int
    busy: int
    #: seconds the longest-running call has run, 0 when none runs
    oldest: float
    #: seconds every thread has been held at least (0 unless all are busy)
    saturated_for: float


class WorkPool:
    """
    A `ThreadPool` of at most `size` daemon threads, as a `BlockingRunner`.

    A call whose Deferred was cancelled (timed out) before a thread took it is skipped:
    nobody waits for it, and the thread is free for work somebody does wait for.
    """

    def __init__(
        self,
        reactor: IReactorFromThreads,
        name: str,
        size: int,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.size = size
        self._reactor = reactor
        self._now = now
        self._pool = ThreadPool(minthreads=0, maxthreads=size, name=f"twistedspy-{name}")
        self._pool.threadFactory = _daemon_thread  # type: ignore[assignment]
        #: when each running call began (the key is private to the call); worker
        #: threads write it, the reactor reads it: hence the lock
        self._started: dict[object, float] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        self._pool.start()

    def stop(self) -> None:
        """Stop the threads, unless one is stuck: it cannot be joined, and as a daemon
        thread it does not hold the process's exit (docs/architecture.md, shutting down)."""
        if not self._pool.working:
            self._pool.stop()

    def __call__(self, f: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        cancelled = threading.Event()
        result: Deferred[T] = Deferred(lambda _: cancelled.set())

        def work() -> T:
            if cancelled.is_set():
                raise CancelledError("nobody waits for this call any more")
            token = object()
            with self._lock:
                self._started[token] = self._now()
            try:
                return f(*args, **kwargs)
            finally:
                with self._lock:
                    del self._started[token]

        def done(ok: bool, value: T | Failure) -> None:
            self._reactor.callFromThread(_deliver, result, ok, value)

        self._pool.callInThreadWithCallback(done, work)
        return result

    def saturated_for(self) -> float:
        """Seconds every thread has been held at least; 0 unless all are busy."""
        if len(self._started) < self.size:
            # The common case, without the lock: a health check on every probe.
            return 0.0
        return self.load().saturated_for

    def load(self) -> PoolLoad:
        with self._lock:
            starts = list(self._started.values())
        now = self._now()
        ages = [now - started for started in starts]
        oldest = max(ages, default=0.0)
        saturated = min(ages) if len(ages) >= self.size else 0.0
        return PoolLoad(self.size, len(ages), oldest, saturated)


def _deliver(result: Deferred[T], ok: bool, value: T | Failure) -> None:
    if result.called:  # cancelled or timed out while the thread ran
        return
    if isinstance(value, Failure) and not ok:
        result.errback(value)
    else:
        result.callback(cast("T", value))


def saturation_check(pool: WorkPool, limit: float) -> Callable[[], str | None]:
    """
    A health check: the reason `pool` cannot take work, once every one of its threads
    has been held for more than `limit` seconds (hung work, not a busy moment).
    """

    def check() -> str | None:
        held = pool.saturated_for()
        if held <= limit:
            return None
        busy = f"all {pool.size} {pool.name} threads have been busy for {held:.0f} s"
        return f"{busy} (over {limit:g} s)"

    return check
