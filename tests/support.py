"""Shared test support: the external tools real-world tests drive, golden files, and a
dispatcher on a Clock."""

from __future__ import annotations

import difflib
import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import SkipTest, TestCase

from twistedspy.auth import Gatekeeper
from twistedspy.context import BlockingRunner
from twistedspy.dispatch import Dispatcher
from twistedspy.interfaces import IInfoModule
from twistedspy.render import Renderer
from twistedspy.settings import Settings

#: the tests' fixture files, among them a /proc and a /sys tree of a machine
FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: the fixture trees as the procfs readers take their root: a string
PROC = str(FIXTURES / "proc")
SYS = str(FIXTURES / "sys")

#: promtool's findings node_exporter gets too: its meminfo and netstat names keep the
#: kernel's case, its entropy figures are in bits; kept, so that dashboards work
NODE_EXPORTER_LINT = re.compile(
    r"node_(memory|netstat)_\w+ metric names should be written in 'snake_case' not 'camelCase'"
    r'|node_entropy_\w+_bits use base unit "bytes" instead of "bits"'
)


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


def check_golden(case: TestCase, path: Path, body: bytes) -> None:
    """
    `body` must equal the golden file `path` byte for byte, or the test fails with the
    difference; `UPDATE_GOLDEN=1` rewrites the file on purpose instead.
    """
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_bytes(body)
    if not path.exists():
        case.fail(f"{path} is missing; UPDATE_GOLDEN=1 writes it")
    expected = path.read_bytes()
    if body != expected:
        diff = difflib.unified_diff(
            expected.decode().splitlines(), body.decode().splitlines(), str(path), "now",
            lineterm="",
        )  # fmt: skip
        case.fail("\n".join(diff) + "\n(UPDATE_GOLDEN=1 rewrites it on purpose)")


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
