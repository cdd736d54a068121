# -*- test-case-name: tests.test_module_plugins,tests.test_modulesdir -*-
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
from twistedspy.ownership import OwnershipError, unsafe_writers

Plugin = IInfoModule | IModuleFactory
INDEX = "index"
#: the placeholder package that ModulesDir's files are imported into
DROP_IN_PACKAGE = "twistedspy.plugins"
#: Twisted's plugin cache in each plugin folder (twisted.plugin.getCache)
DROPIN_CACHE = "dropin.cache"


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


#: what the plugin scan may import from ModulesDir: modules, packages, compiled modules
_IMPORTABLE = frozenset({".py", ".pyc", ".so"})


def _refuse_unsafe(package: ModuleType, directory: Path) -> tuple[list[LoadError], bool]:
    """
    Keep out of the plugin scan whatever someone other than the server's user or root
    could have written: importing it would run their code as this server's user. A
    module file or package folder refused is left out; the folder itself, its
    `__pycache__` or the plugin cache refused (the cache is a pickle, and loading it
    runs code) leaves out every drop-in: the second value says so.
    """
    if not directory.is_dir():
        return [], False  # nothing to import, as the plugin scan finds
    refused: list[LoadError] = []
    everything = {directory, directory / "__pycache__", directory / DROPIN_CACHE}
    for path in [directory, *sorted(directory.iterdir())]:
        if path not in everything and not (path.is_dir() or path.suffix in _IMPORTABLE):
            continue
        reason = _unsafe_writers_within(path, deep=path != directory)
        if reason is None:
            continue
        if path in everything:
            failure = Failure(OwnershipError(f"{reason}: no drop-in module imported"))
            return [LoadError(str(directory), failure)], True
        refused.append(LoadError(str(path), Failure(OwnershipError(f"{reason}: not imported"))))
        # Imported already, as far as Python knows: the scan finds this empty module.
        stem = path.name.split(".")[0]
        placeholder = sys.modules[f"{DROP_IN_PACKAGE}.{stem}"] = ModuleType(stem)
        setattr(package, stem, placeholder)
    return refused, False


def _unsafe_writers_within(path: Path, *, deep: bool) -> str | None:
    inside = sorted(path.rglob("*")) if deep and path.is_dir() else []
    for candidate in (path, *inside):
        reason = unsafe_writers(candidate)
        if reason is not None:
            return f"{candidate} is {reason}"
    return None


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
        refused, everything = _refuse_unsafe(package, directory)
        if on_error is not None:
            for error in refused:
                on_error(error)
        if everything:
            return found
        cache = directory / DROPIN_CACHE
        if refused:
            # The plugin cache holds what a refused file offered when it was last read,
            # and the scan would use that without reading the file (twisted.plugin).
            cache.unlink(missing_ok=True)
        catcher = FailureCatcher()
        globalLogPublisher.addObserver(catcher)
        try:
            plugins = _plugins_in(package)
        finally:
            globalLogPublisher.removeObserver(catcher)
        if refused:
            # Nor is the empty entry the scan made for it kept: mended, it is read again.
            cache.unlink(missing_ok=True)
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
