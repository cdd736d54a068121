# -*- test-case-name: tests.test_packaging -*-
"""The package as users install it: a wheel and an editable install in fresh venvs.

Twisted finds plugins by scanning `twisted/plugins/` folders on `sys.path`, which some
packaging set-ups silently break (docs/architecture.md, "Packaging twisted/plugins"):
these tests install the project the two ways people do and ask Twisted itself what it finds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

from twisted.trial.unittest import TestCase

REPOSITORY = Path(__file__).resolve().parent.parent
BUILT_IN = ["diskfree", "index", "meminfo", "network", "processes", "version"]

FIND_PLUGINS = """
import json, twistedspy
from twisted.plugin import getPlugins
from twistedspy.interfaces import IInfoModule, IModuleFactory
plugins = [*getPlugins(IModuleFactory), *getPlugins(IInfoModule)]
names = sorted({p.name for p in plugins})
print(json.dumps({"names": names, "file": twistedspy.__file__}))
"""
TWISTD_HELP = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


class PackagingTests(TestCase):
    def make_venv(self) -> Path:
        """A fresh venv that borrows this one's dependencies, but not twistedspy itself."""
        folder = Path(self.mktemp()).resolve()
        venv.EnvBuilder(with_pip=True).create(folder)
        python = folder / "bin" / "python"
        purelib = run(
            python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=folder
        ).stdout.strip()
        # A path added by a .pth file is not itself scanned for .pth files, so an editable
        # twistedspy in the borrowed site-packages cannot leak into this venv.
        Path(purelib, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        return python

    def assert_installed(self, python: Path, *, expected_root: Path) -> None:
        elsewhere = python.parent.parent
        found = run(python, "-c", FIND_PLUGINS, cwd=elsewhere)
        self.assertEqual(found.returncode, 0, found.stderr)
        result = __import__("json").loads(found.stdout)
        self.assertEqual([n for n in result["names"] if n in BUILT_IN], BUILT_IN)
        self.assertTrue(
            Path(result["file"]).resolve().is_relative_to(expected_root), result["file"]
        )
        twistd = run(python, "-c", TWISTD_HELP, "spy", "--help", cwd=elsewhere)
        self.assertEqual(twistd.returncode, 0, twistd.stderr)
        self.assertIn("--max-clients", twistd.stdout)

    def test_wheel(self) -> None:
        out = Path(self.mktemp()).resolve()
        built = run(
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-w",
            out,
            REPOSITORY,
            cwd=REPOSITORY,
        )
        self.assertEqual(built.returncode, 0, built.stderr)
        (wheel,) = out.glob("twistedspy-*.whl")
        names = zipfile.ZipFile(wheel).namelist()
        self.assertIn("twisted/plugins/spy_core.py", names)
        self.assertIn("twisted/plugins/spy_twistd.py", names)
        self.assertNotIn("twisted/plugins/__init__.py", names)
        self.assertFalse([n for n in names if n.endswith("dropin.cache")])
        self.assertIn("twistedspy/templates/layout.html", names)
        self.assertIn("twistedspy/static/spy.js", names)

        python = self.make_venv()
        installed = run(python, "-m", "pip", "install", "--no-deps", wheel, cwd=out)
        self.assertEqual(installed.returncode, 0, installed.stderr)
        self.assert_installed(python, expected_root=python.parent.parent)

    def test_editable(self) -> None:
        python = self.make_venv()
        installed = run(
            python, "-m", "pip", "install", "--no-deps", "-e", REPOSITORY, cwd=REPOSITORY
        )
        self.assertEqual(installed.returncode, 0, installed.stderr)
        self.assert_installed(python, expected_root=REPOSITORY)
