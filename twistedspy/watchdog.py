# -*- test-case-name: tests.test_watchdog -*-
"""Noticing a blocked reactor: a module or a bug that runs on it for too long.

While the reactor runs one piece of code, every client waits. A heartbeat every
`BEAT` seconds notes when it ran; a beat that comes more than `STALL` seconds late means
the reactor was kept from its timers that long. After `IDLE` seconds without a request
the heartbeat rests, beating every `RESTING_BEAT` seconds, until the next request wakes
it: every beat wakes the reactor, which costs CPU while idle and between scrapes alike
(docs/performance.md); a stall while nobody asks is still seen if it holds the reactor
past a resting beat's time. The journal then gets one `reactor-stall` event with the
duration and, when the dispatcher had just called a module on the reactor for that
long, the module's name; `/metrics` counts stalls, and `/-/healthy` answers 503 for a
while after one (docs/architecture.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from twisted.logger import Logger, LogLevel

from twistedspy.events import record

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

P = ParamSpec("P")
T = TypeVar("T")

#: seconds the reactor may be kept busy before it counts as stalled
STALL = 0.25
#: seconds between heartbeats while requests come: a stall is measured to within this
#: much, and one longer than STALL + BEAT is always seen
BEAT = 0.1
#: seconds without a request after which the heartbeat rests
IDLE = 10.0
#: seconds between heartbeats while it rests
RESTING_BEAT = 1.0


@dataclass(frozen=True, slots=True)
class Stall:
    """One time the reactor was blocked."""

    #: when it ended, by the watchdog's clock
    ended: float
    seconds: float
    #: the module the dispatcher was running on the reactor, if it was one
    module: str | None


@dataclass(frozen=True, slots=True)
class _Call:
    module: str
    began: float
    ended: float


class StallWatchdog:
    """The heartbeat, and the record of what the dispatcher last ran on the reactor."""

    def __init__(
        self,
        clock: IReactorTime,
        log: Logger,
        on_stall: Callable[[], object] = lambda: None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._on_stall = on_stall
        # monotonic, not the reactor's wall clock: a clock set back or forward by NTP
        # is not a stall
        self._now = now
        self._clock = clock
        self._pending: IDelayedCall | None = None
        #: when the pending beat is due, and the interval it was scheduled with
        self._due = now()
        self._interval = BEAT
        #: whether a request has come since the last beat, and when one last came
        self._asked = False
        self._last_request = now()
        self._last_call: _Call | None = None
        #: the latest stall, for the health check
        self.latest: Stall | None = None

    def start(self) -> None:
        self._last_request = self._now()
        self._schedule(BEAT)

    def stop(self) -> None:
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None

    def wake(self) -> None:
        """A request has come (the dispatcher says so for each): beat often again."""
        self._asked = True
        if self._interval != BEAT and self._pending is not None:
            self._pending.cancel()
            self._schedule(BEAT)

    def _schedule(self, interval: float) -> None:
        self._interval = interval
        self._due = self._now() + interval
        self._pending = self._clock.callLater(interval, self._beat)

    def timed(self, module: str, f: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call `f` (a module's method, on the reactor) and note how long it ran."""
        began = self._now()
        try:
            return f(*args, **kwargs)
        finally:
            self._last_call = _Call(module, began, self._now())

    def _beat(self) -> None:
        now = self._now()
        late = now - self._due
        previous = self._due - self._interval
        if self._asked:
            self._asked, self._last_request = False, now
        self._schedule(RESTING_BEAT if now - self._last_request > IDLE else BEAT)
        module = None
        call = self._last_call
        if call is not None and call.ended > previous:
            # The call ran since the previous beat: if it ran long, it was the stall.
            ran = call.ended - call.began
            if ran > STALL:
                module, late = call.module, max(late, ran)
        if late <= STALL:
            return
        self.latest = Stall(now, late, module)
        self._on_stall()
        record(
            self._log,
            "reactor-stall",
            LogLevel.warn,
            seconds=f"{late:.3f}",
            module=module or "-",
        )

    def check(self, memory: float) -> Callable[[], str | None]:
        """A health check: unhealthy for `memory` seconds after a stall."""

        def recent_stall() -> str | None:
            stall = self.latest
            if stall is None:
                return None
            ago = self._now() - stall.ended
            if ago > memory:
                return None
            return f"the reactor was blocked for {stall.seconds:.2f} s, {ago:.0f} s ago"

        return recent_stall
