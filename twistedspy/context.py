# -*- test-case-name: tests.test_pools -*-
"""What a module factory is given when the service builds its module."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ParamSpec, Protocol, TypeVar

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from twistedspy.settings import Settings

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from twistedspy.interfaces import IInfoModule

P = ParamSpec("P")
T = TypeVar("T")


class BlockingRunner(Protocol):
    """Runs blocking work in one of the service's bounded thread pools, off the reactor."""

    def __call__(self, f: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Deferred[T]: ...


@dataclass(frozen=True, slots=True)
class ModuleContext:
    settings: Settings
    reactor: IReactorTime
    #: the module collection pool, for a module that runs on the reactor (`IReactorSafe`)
    #: and hands its blocking reads to threads itself
    run_blocking: BlockingRunner
    #: the modules the service serves, for the index (filled once all are built)
    served: Callable[[], Sequence[IInfoModule]]
    log: Logger
    #: for pure-Python work that holds the GIL (sorting and building a big report): the
    #: rendering pool, one thread, so that the reactor competes with at most one such
    #: thread for the GIL and small pages stay quick while big ones are built
    run_computation: BlockingRunner | None = None
