"""The built-in module plugins: discoverable, each providing its interfaces."""

from __future__ import annotations

from twisted.plugin import getPlugins
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

import twisted.plugins
from tests.contexts import module_context
from twistedspy.interfaces import IInfoModule, IModuleFactory


class PluginTests(TestCase):
    def test_data_modules_are_plugins(self) -> None:
        factories = list(getPlugins(IModuleFactory, twisted.plugins))
        names = [f.name for f in factories]
        self.assertEqual(len(names), len(set(names)))
        self.assertTrue({"processes", "meminfo", "diskfree", "network"} <= set(names))
        for factory in factories:
            verifyObject(IModuleFactory, factory)
            if factory.name in {"processes", "meminfo", "diskfree", "network"}:
                module = factory.build(module_context())
                verifyObject(IInfoModule, module)
                self.assertEqual(module.name, factory.name)
