# -*- test-case-name: tests.test_ownership -*-
"""Files the server imports or writes must be its own: drop-in modules, LogDir, MessageFile."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.trial.unittest import SkipTest, TestCase

from tests.daemons import TWISTD, run_to_exit
from tests.servers import start_server
from tests.test_modulesdir import HELLO
from twistedspy.ownership import OwnershipError
from twistedspy.service import StartupError, makeService
from twistedspy.settings import Settings

#: a user that owns nothing of ours (nobody, on Debian)
OTHER_UID = 65534

GREET = HELLO.replace('"hello"', '"greet"').replace("hello = Hello()", "greet = Hello()")


def owned_by_other(path: Path) -> Path:
    """`path`, given to another user: only root can do that."""
    if os.geteuid() != 0:
        raise SkipTest("only root can give a file to another user")
    os.chown(path, OTHER_UID, OTHER_UID)
    return path


class DropInTests(TestCase):
    def setUp(self) -> None:
        self.moddir = Path(self.mktemp()).resolve()
        self.moddir.mkdir(parents=True)
        self.moddir.chmod(0o755)
        (self.moddir / "hello.py").write_text(HELLO)
        (self.moddir / "greet.py").write_text(GREET)
        for path in self.moddir.iterdir():
            path.chmod(0o644)

    def served(self) -> tuple[set[str], str]:
        server = start_server(self, modules_dir=self.moddir)
        # Each refusal is journalled as a module failure, which also reaches the test log.
        self.flushLoggedErrors(OwnershipError)
        return set(server.service.modules), server.journal_text()

    def test_safe_files_are_imported(self) -> None:
        modules, journal = self.served()
        self.assertLessEqual({"hello", "greet"}, modules)
        self.assertNotIn("module-error", journal)

    def test_world_writable_file_refused_the_others_served(self) -> None:
        self.served()  # Twisted's plugin cache now knows greet.py
        (self.moddir / "greet.py").chmod(0o666)
        modules, journal = self.served()
        self.assertIn("hello", modules)
        self.assertNotIn("greet", modules)
        self.assertRegex(
            journal, rf"module-error file={self.moddir}/greet.py .*writable by others.*left out"
        )
        self.assertEqual(journal.count("module-error"), 1)
        # Mended (chmod leaves the file's mtime, which Twisted's plugin cache goes by):
        # served at the next start.
        (self.moddir / "greet.py").chmod(0o644)
        modules, _ = self.served()
        self.assertIn("greet", modules)

    def test_group_writable_folder_refuses_every_drop_in(self) -> None:
        self.moddir.chmod(0o775)
        modules, journal = self.served()
        self.assertFalse({"hello", "greet"} & modules)
        self.assertIn("version", modules)  # the built-in modules are still served
        self.assertRegex(journal, rf"module-error file={self.moddir} .*writable by its group")

    def test_file_of_another_user_refused(self) -> None:
        owned_by_other(self.moddir / "greet.py")
        modules, journal = self.served()
        self.assertNotIn("greet", modules)
        self.assertIn("hello", modules)
        self.assertIn(f"owned by uid {OTHER_UID}", journal)

    def test_world_writable_pycache_refuses_every_drop_in(self) -> None:
        cache = self.moddir / "__pycache__"
        cache.mkdir(exist_ok=True)
        cache.chmod(0o777)
        modules, _ = self.served()
        self.assertFalse({"hello", "greet"} & modules)


class SymlinkTests(TestCase):
    def setUp(self) -> None:
        self.folder = Path(self.mktemp()).resolve()
        self.folder.mkdir(parents=True)

    def test_log_dir_symlink_into_another_owners_space_refused(self) -> None:
        foreign = self.folder / "theirs-logs"
        foreign.mkdir()
        owned_by_other(foreign)
        link = self.folder / "logs"
        link.symlink_to(foreign)
        settings = Settings(port=0, log_dir=link, message_file=self.folder / "m.jsonl")
        error = self.assertRaises(StartupError, makeService, settings)
        self.assertIn(f"LogDir {link} is a symlink into another owner's space", str(error))
        self.assertEqual(list(foreign.iterdir()), [])
        done = run_to_exit(
            [*TWISTD, "-n", "--pidfile=", "spy", "-p", "0", "--log-dir", str(link)],
            cwd=self.folder,
        )
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("is a symlink into another owner's space", done.stderr)
        self.assertNotIn("Traceback", done.stderr + done.stdout)

    def test_message_file_symlink_into_another_owners_space_refused(self) -> None:
        foreign = self.folder / "theirs-messages"
        foreign.mkdir()
        owned_by_other(foreign)
        link = self.folder / "messages.jsonl"
        link.symlink_to(foreign / "messages.jsonl")
        settings = Settings(port=0, log_dir=self.folder / "logs", message_file=link)
        error = self.assertRaises(StartupError, makeService, settings)
        self.assertIn(f"MessageFile {link} is a symlink into another owner's space", str(error))

    def test_symlink_into_own_space_is_followed_once_at_start(self) -> None:
        mine = self.folder / "mine"
        mine.mkdir()
        link = self.folder / "logs"
        link.symlink_to(mine)
        server = start_server(self, log_dir=link)
        self.assertEqual(server.log_dir, mine)
        self.assertTrue(list(mine.glob("*.log")))
