# -*- test-case-name: tests.test_module_plugins -*-
"""The module plugins: discoverable, each providing its interfaces, as a third party's too."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

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
            module = factory.build(module_context())
            verifyObject(IInfoModule, module)
            self.assertEqual(module.name, factory.name)


REPOSITORY = Path(__file__).resolve().parent.parent

#: docs/writing-modules.md's example, verbatim: a third party's module must work exactly as
#: written.
HELLO = (Path(__file__).resolve().parent / "fixtures" / "hello.py.txt").read_text()

RENDER_HELLO = """
from twistedspy.registry import discover
from twistedspy.render import Renderer
from twistedspy.report import PageContext
from twistedspy.query import Query
plugin = discover()["hello"]
report = plugin.collect(Query((("who", "<x>"),)))
print(Renderer("h").json("hello", report, PageContext("h", [], 0)).body.decode())
"""


class ThirdPartyTests(TestCase):
    def test_docs_show_the_example_verbatim(self) -> None:
        guide = (REPOSITORY / "docs" / "writing-modules.md").read_text()
        match = re.search(r"```python\n(# hello.py\n.*?)```", guide, re.S)
        assert match is not None
        self.assertEqual(match.group(1), HELLO)

    def test_hello_in_a_plugin_package(self) -> None:
        """hello.py dropped into a `twisted/plugins/` folder on sys.path is found and served."""
        root = Path(self.mktemp()).resolve()
        (root / "twisted" / "plugins").mkdir(parents=True)
        (root / "twisted" / "plugins" / "hello.py").write_text(HELLO)
        environment = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{REPOSITORY}"}
        result = subprocess.run(
            [sys.executable, "-c", RENDER_HELLO],
            env=environment,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        document = json.loads(result.stdout)
        self.assertEqual(document["tables"][0]["rows"], [["<x>"]])
