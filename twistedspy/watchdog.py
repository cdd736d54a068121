# -*- test-case-name: tests.test_watchdog -*-
"""Noticing a blocked reactor: a module or a bug that runs on it for too long.

While the reactor runs one piece of code, every client waits. The watchdog watches while
a client does: from the moment the dispatcher takes a request until its answer is ready.
What runs on the reactor until the dispatcher returns the answer is timed whole (all of
a cached page, the first steps of one still to come); while answers are pending, a
heartbeat every `BEAT` seconds notes when it ran, and a beat more than `STALL` seconds
late means the reactor was kept from its timers that long; a beat due but not yet run
when the last answer is ready is judged then. Every module method the dispatcher calls
on the reactor is timed too, which names the module.

With no request in flight nothing beats, so a server between scrapes (or idle) is not
woken at all: each wake-up costs CPU (docs/performance.md). A stall then delays no answer
being made; what it delays is the next request, still in the kernel's queue, which the
watchdog does not see (docs/architecture.md).

A stall gets one `reactor-stall` event in the journal with the duration and, when it was
a module's call, the module's name; `/metrics` counts stalls, and `/-/healthy` answers
503 for a while after one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from twisted.internet.defer import Deferred
from twisted.logger import Logger, LogLevel

from twistedspy.events import record

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

P = ParamSpec("P")
T = TypeVar("T")

#: seconds the reactor may be kept busy before it counts as stalled
STALL = 0.25
#: seconds between heartbeats while an answer is pending: a stall is measured to within
#: this much, and one longer than STALL + BEAT is always seen
BEAT = 0.1


@dataclass(frozen=True, slots=True)
class Stall:
    """One time the reactor was blocked."""

    #: when it ended, by the watchdog's clock
    ended: float
    seconds: float
    #: the module the dispatcher was running on the reactor, if it was one
    module: str | None


class StallWatchdog:
    """The heartbeat while answers are pending, and the timing of module calls."""

    def __init__(
        self,
        clock: IReactorTime,
        log: Logger,
        on_stall: Callable[[], object] = lambda: None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._on_stall = on_stall
        # Lateness by the monotonic clock (the beat itself is a reactor timer, by the wall
        # clock: docs/architecture.md says what a clock set back does).
        self._now = now
        self._clock = clock
        #: requests taken whose answers are not ready yet
        self._pending_answers = 0
        self._beat_call: IDelayedCall | None = None
        #: when the next beat is due
        self._due = 0.0
        #: the end of the latest stall counted: none is counted twice (a module call's,
        #: say, again by the late beat or the slow answer around it)
        self._counted_until = 0.0
        #: the latest stall, for the health check
        self.latest: Stall | None = None
        #: stopped with the server: the answers still being made are not watched
        self._stopped = False

    def stop(self) -> None:
        """No more watching: the last answers of a stopping server may be slow by design."""
        self._stopped = True
        if self._beat_call is not None and self._beat_call.active():
            self._beat_call.cancel()
        self._beat_call = None

    def asked(self) -> float:
        """A request is taken: returns the moment, for `answered`."""
        return self._now()

    def answered(self, asked_at: float, answer: T) -> T:
        """
        `answer` to the request taken at `asked_at`: what ran on the reactor until now is
        timed whole, and a Deferred still to fire is then watched by the heartbeat until
        it does. Returns `answer`.
        """
        if self._now() - asked_at > STALL:
            self._judge(asked_at, None)
        if self._stopped or not isinstance(answer, Deferred):
            return answer
        if answer.called and not answer.paused:
            return answer  # ready
        self._pending_answers += 1
        if self._pending_answers == 1:
            self._schedule()

        def ready(result: object) -> object:
            self._pending_answers -= 1
            if self._pending_answers == 0:
                try:
                    self._beat()
                except Exception:
                    # The answer is not the watchdog's to spoil.
                    self._log.failure("the stall watchdog failed")
            return result

        answer.addBoth(ready)
        return answer

    def _schedule(self) -> None:
        self._due = self._now() + BEAT
        self._beat_call = self._clock.callLater(BEAT, self._beat)

    def _beat(self) -> None:
        """A beat: on time or late; then the next one, while answers are pending."""
        if self._stopped:
            return
        if self._beat_call is not None and self._beat_call.active():
            self._beat_call.cancel()  # the last answer came first: judged now
        self._beat_call = None
        self._judge(self._due, None)
        if self._pending_answers:
            self._schedule()

    def timed(self, module: str, f: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call `f` (a module's method, on the reactor) and note how long it ran."""
        began = self._now()
        try:
            return f(*args, **kwargs)
        finally:
            self._judge(began, module)

    def _judge(self, since: float, module: str | None) -> None:
        """A stall if the reactor has been held since `since` for more than STALL."""
        now = self._now()
        late = now - max(since, self._counted_until)
        if late <= STALL:
            return
        self._counted_until = now
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
