# -*- test-case-name: tests.test_modulesdir -*-
"""ModulesDir: drop-in module files, replacing built-ins, broken files, `Modules=`."""

from __future__ import annotations

import json
from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.daemons import CLI, TWISTD, SpyProcess, drop_in_source, run_to_exit
from tests.servers import fetch, start_server
from tests.support import FIXTURES
from twistedspy.service import StartupError, makeService
from twistedspy.settings import Settings

#: docs/writing-modules.md's example, verbatim: "this exact file must work"
HELLO = (FIXTURES / "hello.py.txt").read_text()

REPLACED_VERSION = drop_in_source(
    "version",
    'return Report(title="Site version", tables=[Table(title="v", columns=["v"], rows=[["7"]])])',
    title="Site version",
    description="The version as this site tells it.",
)
SYNTAX_ERROR = "def broken(:\n    pass\n"
RAISES = 'import os\n\nraise ImportError("needs libfrobnicate")\n'


class ModulesDirTests(TestCase):
    def setUp(self) -> None:
        self.moddir = Path(self.mktemp()).resolve()
        self.moddir.mkdir(parents=True)

    def drop(self, name: str, text: str) -> Path:
        path = self.moddir / name
        path.write_text(text)
        return path

    async def test_spec_hello_serves(self) -> None:
        self.drop("hello.py", HELLO)
        server = start_server(self, modules_dir=self.moddir)
        reply = await server.request("GET", "/hello?who=x&format=json")
        self.assertEqual(reply.status, 200)
        document = json.loads(reply.body)
        self.assertEqual(document["module"], "hello")
        self.assertEqual(document["tables"][0]["rows"], [["x"]])
        page = await server.request("GET", "/hello?who=Ada%20Lovelace")
        self.assertEqual(page.status, 200)
        self.assertIn(b"<td>Ada Lovelace</td>", page.body)
        index = await server.request("GET", "/")
        self.assertIn(b"Greets whoever asks.", index.body)

    async def test_same_name_replaces_a_built_in(self) -> None:
        self.drop("spy_my_version.py", REPLACED_VERSION)
        server = start_server(self, modules_dir=self.moddir)
        reply = await server.request("GET", "/version?format=json")
        self.assertEqual(json.loads(reply.body)["title"], "Site version")
        self.assertEqual(list(server.service.modules).count("version"), 1)

    async def test_second_service_forgets_the_first_directory(self) -> None:
        self.drop("spy_my_version.py", REPLACED_VERSION)
        start_server(self, modules_dir=self.moddir)
        other = start_server(self)
        reply = await other.request("GET", "/version?format=json")
        self.assertEqual(json.loads(reply.body)["title"], "Version")

    async def test_broken_files_are_journalled_and_left_out(self) -> None:
        self.drop("hello.py", HELLO)
        bad_syntax = self.drop("bad_syntax.py", SYNTAX_ERROR)
        raising = self.drop("needs_lib.py", RAISES)
        server = start_server(self, modules_dir=self.moddir)
        self.flushLoggedErrors(SyntaxError, ImportError)
        self.assertEqual((await server.request("GET", "/hello?who=x")).status, 200)
        self.assertEqual((await server.request("GET", "/version")).status, 200)
        journal = server.journal_text()
        errors = [line for line in journal.splitlines() if " module-error " in line]
        self.assertEqual(len(errors), 2, journal)
        syntax_line = next(line for line in errors if str(bad_syntax) in line)
        self.assertRegex(syntax_line, r"^\S+ critical module-error ")
        self.assertIn('error="invalid syntax (bad_syntax.py, line 1)"', syntax_line)
        self.assertIn('outcome="left out"', syntax_line)
        raising_line = next(line for line in errors if str(raising) in line)
        self.assertIn('error="needs libfrobnicate"', raising_line)
        # Each with its traceback, on the indented lines after it.
        self.assertIn("  builtins.SyntaxError: invalid syntax", journal)
        self.assertIn(f'  File "{raising}", line 3, in <module>', journal)
        self.assertIn("  builtins.ImportError: needs libfrobnicate", journal)
        self.assertNotIn(" twisted ", journal)

    async def test_modules_narrows_the_set(self) -> None:
        self.drop("hello.py", HELLO)
        server = start_server(self, modules_dir=self.moddir, modules=("hello",))
        self.assertEqual(list(server.service.modules), ["index", "hello"])
        self.assertEqual((await server.request("GET", "/hello")).status, 200)
        self.assertEqual((await server.request("GET", "/version")).status, 404)
        self.assertEqual((await server.request("GET", "/")).status, 200)

    def test_unknown_module_name_stops_start_up(self) -> None:
        folder = Path(self.mktemp())
        settings = Settings(port=0, log_dir=folder / "logs", modules=("version", "nonesuch"))
        error = self.assertRaises(StartupError, makeService, settings)
        self.assertEqual(str(error), "Modules: no such module: nonesuch")


class EntryPointTests(TestCase):
    """The same, through `twistd spy` and the `twistedspy` script."""

    def setUp(self) -> None:
        self.folder = Path(self.mktemp()).resolve()
        self.moddir = self.folder / "modules"
        self.moddir.mkdir(parents=True)
        self.log_dir = self.folder / "logs"

    def test_twistd_spy_with_hello_and_a_broken_file(self) -> None:
        (self.moddir / "hello.py").write_text(HELLO)
        broken = self.moddir / "bad_syntax.py"
        broken.write_text(SYNTAX_ERROR)
        running = SpyProcess.start(
            [*TWISTD, "-n", "--pidfile=", "spy", "-p", "0", "--log-dir", str(self.log_dir),
             "-m", str(self.moddir)],
            self.folder,
            self.log_dir,
        )  # fmt: skip
        self.addCleanup(running.kill)
        reply = fetch(running.port, "GET", "/hello?who=x&format=json", {})
        self.assertEqual(json.loads(reply.body)["tables"][0]["rows"], [["x"]])
        self.assertEqual(fetch(running.port, "GET", "/version", {}).status, 200)
        running.stop()
        journal = running.journal()
        self.assertRegex(journal, rf" critical module-error file={broken} ")
        self.assertIn("  builtins.SyntaxError: invalid syntax", journal)
        self.assertRegex(journal, r" info start .*modules=\S*hello")

    def test_script_refuses_unknown_module(self) -> None:
        done = run_to_exit(
            [*CLI, "-p", "0", "--log-dir", str(self.log_dir), "--modules", "version,nonesuch"],
            cwd=self.folder,
        )
        self.assertNotEqual(done.returncode, 0)
        self.assertEqual(done.stderr, "twistedspy: Modules: no such module: nonesuch\n")
        self.assertNotIn("Traceback", done.stdout)

    def test_tac_refuses_unknown_module(self) -> None:
        conf = self.folder / "spy.conf"
        conf.write_text(f"Port = 0\nLogDir = {self.log_dir}\nModules = nonesuch\n")
        done = run_to_exit(
            [*TWISTD, "--pidfile=", "-ny", str(Path(__file__).parent.parent / "spy.tac")],
            cwd=self.folder,
            TWISTEDSPY_CONFIG=str(conf),
        )
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("twistedspy: Modules: no such module: nonesuch\n", done.stderr)
        self.assertNotIn("Traceback", done.stderr + done.stdout)
