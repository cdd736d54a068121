"""pytest set-up shared by every test module."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """
    Run trial TestCases before pytest-twisted tests: once pytest-twisted has started the
    global reactor, later trial cases in the same run fail with a dirty reactor.
    """
    from twisted.trial.unittest import SynchronousTestCase

    def uses_pytest_twisted(item: pytest.Item) -> bool:
        owner = getattr(item, "cls", None)
        return not (owner is not None and issubclass(owner, SynchronousTestCase))

    items.sort(key=uses_pytest_twisted)
