"""Shared test support: finding the external tools that real-world tests drive."""

from __future__ import annotations

import os
import shutil

from twisted.trial.unittest import SkipTest


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
