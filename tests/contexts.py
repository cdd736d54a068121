"""Module test support: a ModuleContext on the real reactor's thread pool, and a typed
way to collect a module's Report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from twistedspy.context import ModuleContext
from twistedspy.interfaces import IInfoModule
from twistedspy.query import Query
from twistedspy.report import Report
from twistedspy.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")


def run_in_thread(f: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
    return deferToThread(f, *args, **kwargs)


def module_context(settings: Settings | None = None) -> ModuleContext:
    def served() -> Sequence[IInfoModule]:
        return ()

    return ModuleContext(
        settings=settings if settings is not None else Settings(),
        reactor=reactor,
        run_blocking=run_in_thread,
        served=served,
        log=Logger(),
    )


async def collect_report(module: IInfoModule, query: Query | None = None) -> Report:
    """What `module.collect` gives, checked to be a Report."""
    page = await Deferred.fromCoroutine(_settle(module.collect(query or Query())))
    assert isinstance(page, Report), page
    return page


async def _settle(result: object) -> object:
    if isinstance(result, Deferred):
        return await result
    return result
