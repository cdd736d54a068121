# -*- test-case-name: tests.test_registry -*-
"""Finding the info modules (Twisted plugins) and building the ones a service serves."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from twisted.plugin import getPlugins

from twistedspy.context import ModuleContext
from twistedspy.interfaces import IInfoModule, IModuleFactory

Plugin = IInfoModule | IModuleFactory
INDEX = "index"


def _plugins_in(package: ModuleType | None) -> list[Plugin]:
    found: list[Plugin] = list(getPlugins(IModuleFactory, package))
    found.extend(getPlugins(IInfoModule, package))
    return found


def discover(modules_dir: Path | None = None) -> dict[str, Plugin]:
    """
    Every module plugin by name: the installed ones (`twisted/plugins/`), then those of
    ModulesDir, which replace an installed one of the same name (SPEC §1).
    """
    found: dict[str, Plugin] = {}
    for plugin in _plugins_in(None):
        found.setdefault(plugin.name, plugin)
    if modules_dir is not None:
        package = importlib.import_module("twistedspy.plugins")
        directory = str(modules_dir.resolve())
        if directory not in package.__path__:
            package.__path__.append(directory)
        for plugin in _plugins_in(package):
            found[plugin.name] = plugin
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
