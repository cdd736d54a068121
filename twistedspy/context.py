"""What a module factory is given when the service builds its module."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ParamSpec, Protocol, TypeVar

from twisted.internet.defer import Deferred, DeferredLock
from twisted.logger import Logger

from twistedspy.settings import Settings

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from twistedspy.interfaces import IInfoModule

P = ParamSpec("P")
T = TypeVar("T")


class BlockingRunner(Protocol):
    """Runs blocking work in the service's bounded thread pool, off the reactor."""

    def __call__(self, f: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Deferred[T]: ...


class OneAtATime:
    """A BlockingRunner that runs its calls in another runner, one after the other."""

    def __init__(self, run_blocking: BlockingRunner) -> None:
        self._run_blocking = run_blocking
        self._lock = DeferredLock()

    def __call__(self, f: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        return self._lock.run(self._run_blocking, f, *args, **kwargs)


@dataclass(frozen=True, slots=True)
class ModuleContext:
    settings: Settings
    reactor: IReactorTime
    run_blocking: BlockingRunner
    #: the modules the service serves, for the index (filled once all are built)
    served: Callable[[], Sequence[IInfoModule]]
    log: Logger
    #: for pure-Python work that holds the GIL (sorting and building a big report): in
    #: the pool, but one call at a time, so that the reactor competes with at most one
    #: such thread for the GIL and small pages stay quick while big ones are built
    run_computation: BlockingRunner | None = None
