# -*- test-case-name: tests.test_modulesdir -*-
"""Finding the info modules (Twisted plugins) and building the ones a service serves."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from twisted.logger import ILogObserver, globalLogPublisher
from twisted.plugin import getPlugins
from twisted.python.failure import Failure
from zope.interface import implementer

from twistedspy.context import ModuleContext
from twistedspy.interfaces import IInfoModule, IModuleFactory

Plugin = IInfoModule | IModuleFactory
INDEX = "index"
#: the placeholder package that ModulesDir's files are imported into
DROP_IN_PACKAGE = "twistedspy.plugins"


@dataclass(frozen=True, slots=True)
class LoadError:
    """A ModulesDir file that could not be imported: left out, and journalled."""

    file: str
    failure: Failure


@implementer(ILogObserver)
class FailureCatcher:
    """Keeps the failures logged while it observes."""

    def __init__(self) -> None:
        self.failures: list[Failure] = []

    def __call__(self, event: Mapping[str, Any]) -> None:
        # `log.err()` (twisted.python.log, as the plugin scan uses) names it `failure`.
        failure = event.get("log_failure", event.get("failure"))
        if isinstance(failure, Failure):
            self.failures.append(failure)


def _failed_file(failure: Failure, directory: Path) -> str:
    """The file in `directory` that a load failure came from, or "-" if none is named."""
    value = failure.value
    if isinstance(value, SyntaxError) and value.filename:
        return str(value.filename)
    for frame in reversed(failure.frames):
        name = frame[1]
        if Path(name).parent == directory:
            return str(name)
    return "-"


def _plugins_in(package: ModuleType | None) -> list[Plugin]:
    found: list[Plugin] = list(getPlugins(IModuleFactory, package))
    found.extend(getPlugins(IInfoModule, package))
    return found


def _drop_in_package(directory: Path) -> ModuleType:
    """
    The placeholder package, scanning exactly `directory` (getPlugins needs a real
    package: a bare ModuleType, or one with a made-up `__file__`, finds nothing). Files
    loaded from an earlier ModulesDir are forgotten, so a second service in the same
    process never serves the first one's modules.
    """
    package = importlib.import_module(DROP_IN_PACKAGE)
    own = str(Path(package.__file__ or "").parent)
    package.__path__[:] = [own, str(directory)]
    for name in [n for n in sys.modules if n.startswith(DROP_IN_PACKAGE + ".")]:
        del sys.modules[name]
    return package


def discover(
    modules_dir: Path | None = None,
    on_error: Callable[[LoadError], object] | None = None,
) -> dict[str, Plugin]:
    """
    Every module plugin by name: the installed ones (`twisted/plugins/`), then those of
    ModulesDir, which replace an installed one of the same name (docs/writing-modules.md).

    A ModulesDir file that fails to import is left out and handed to `on_error` with its
    traceback. Twisted's plugin scan only reports such a file through `log.err()`, before
    the journal listens; a temporary observer catches those reports during the scan.
    """
    found: dict[str, Plugin] = {}
    for plugin in _plugins_in(None):
        found.setdefault(plugin.name, plugin)
    if modules_dir is not None:
        directory = modules_dir.resolve()
        package = _drop_in_package(directory)
        catcher = FailureCatcher()
        globalLogPublisher.addObserver(catcher)
        try:
            plugins = _plugins_in(package)
        finally:
            globalLogPublisher.removeObserver(catcher)
        for plugin in plugins:
            found[plugin.name] = plugin
        if on_error is not None:
            # The scan runs once an interface and retries a failed file each time.
            reported: set[str] = set()
            for failure in catcher.failures:
                file = _failed_file(failure, directory)
                if file not in reported:
                    reported.add(file)
                    on_error(LoadError(file, failure))
    return found


def build(
    plugins: dict[str, Plugin], context: ModuleContext, enabled: Iterable[str] | None
) -> dict[str, IInfoModule]:
    """The modules to serve, built, in name order with the index first."""
    wanted = None if enabled is None else {*enabled, INDEX}
    modules: dict[str, IInfoModule] = {}
    for name in sorted(plugins, key=lambda n: (n != INDEX, n)):
        if wanted is not None and name not in wanted:
            continue
        plugin = plugins[name]
        module = plugin.build(context) if IModuleFactory.providedBy(plugin) else plugin
        modules[name] = module
    return modules
