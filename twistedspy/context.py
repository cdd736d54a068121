"""What a module factory is given when the service builds its module."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ParamSpec, Protocol, TypeVar

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from twistedspy.http.stats import RequestStats
from twistedspy.settings import Settings

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from twistedspy.interfaces import IInfoModule

P = ParamSpec("P")
T = TypeVar("T")


class BlockingRunner(Protocol):
    """Runs blocking work in the service's bounded thread pool, off the reactor."""

    def __call__(self, f: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Deferred[T]: ...


@dataclass(frozen=True, slots=True)
class ModuleContext:
    settings: Settings
    reactor: IReactorTime
    run_blocking: BlockingRunner
    #: the modules the service serves, for the index (filled once all are built)
    served: Callable[[], Sequence[IInfoModule]]
    log: Logger
    #: the service's own request counts, which the metrics module exposes
    requests: RequestStats | None = None
