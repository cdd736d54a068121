# -*- test-case-name: tests.test_watchdog -*-
"""Noticing a blocked reactor: a module or a bug that runs on it for too long.

While the reactor runs one piece of code, every client waits. A heartbeat every
`BEAT` seconds notes when it ran; a beat that comes more than `STALL` seconds late means
the reactor was kept from its timers that long. The journal then gets one
`reactor-stall` event with the duration and, when the dispatcher had just called a
module on the reactor for that long, the module's name; `/metrics` counts stalls, and
`/-/healthy` answers 503 for a while after one (docs/architecture.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from twisted.internet.task import LoopingCall
from twisted.logger import Logger, LogLevel

from twistedspy.events import record

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

P = ParamSpec("P")
T = TypeVar("T")

#: seconds the reactor may be kept busy before it counts as stalled
STALL = 0.25
#: seconds between heartbeats: a stall is measured to within this much
BEAT = 0.05


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
        self._heartbeat = LoopingCall(self._beat)
        self._heartbeat.clock = clock
        self._last_beat = now()
        self._last_call: _Call | None = None
        #: the latest stall, for the health check
        self.latest: Stall | None = None

    def start(self) -> None:
        self._last_beat = self._now()
        self._heartbeat.start(BEAT, now=False)

    def stop(self) -> None:
        if self._heartbeat.running:
            self._heartbeat.stop()

    def timed(self, module: str, f: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call `f` (a module's method, on the reactor) and note how long it ran."""
        began = self._now()
        try:
            return f(*args, **kwargs)
        finally:
            self._last_call = _Call(module, began, self._now())

    def _beat(self) -> None:
        now = self._now()
        late = now - self._last_beat - BEAT
        self._last_beat = now
        module = None
        call = self._last_call
        if call is not None and call.ended > now - BEAT - late:
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
