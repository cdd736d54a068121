"""Shared test support: the external tools real-world tests drive, a dispatcher on a Clock."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping

from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import SkipTest

from twistedspy.auth import Gatekeeper
from twistedspy.context import BlockingRunner
from twistedspy.dispatch import Dispatcher
from twistedspy.interfaces import IInfoModule
from twistedspy.render import Renderer
from twistedspy.settings import Settings


def require_tool(name: str) -> str:
    """
    The path of an external program, or skip the test saying which is missing.

    Under CI=true a missing tool fails instead: CI installs every tool, so a skip there
    would hide a broken set-up.
    """
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed"
        if os.environ.get("CI") == "true":
            raise AssertionError(message + " (CI must install it)")
        raise SkipTest(message)
    return path


def clocked_dispatcher(
    settings: Settings,
    modules: Callable[[], Mapping[str, IInfoModule]],
    gatekeeper: Gatekeeper,
    clock: Clock,
    run_collection: BlockingRunner,
    run_computation: BlockingRunner | None = None,
) -> Dispatcher:
    """A Dispatcher as the service builds one, with time and pools in the test's hands."""
    return Dispatcher(
        settings=settings,
        modules=modules,
        gatekeeper=gatekeeper,
        renderer=Renderer("h"),
        clock=clock,
        log=Logger(),
        run_collection=run_collection,
        run_computation=run_computation,
    )
