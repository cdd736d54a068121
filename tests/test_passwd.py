"""twistedspy-passwd: the file it writes is what the server and htpasswd read."""

from __future__ import annotations

import getpass
import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import bcrypt
from twisted.trial.unittest import TestCase

from tests.support import require_tool
from twistedspy import passwd
from twistedspy.accounts import AccountsFile, parse_accounts


class PasswdTests(TestCase):
    def setUp(self) -> None:
        self.path = Path(self.mktemp())
        self.stderr = io.StringIO()
        self.patch(sys, "stderr", self.stderr)

    def run_stdin(self, user: str, text: str, *more: str) -> int:
        self.patch(sys, "stdin", io.StringIO(text))
        return passwd.main([str(self.path), user, "--stdin", "--cost", "4", *more])

    def hash_of(self, user: str) -> bytes:
        account = AccountsFile(self.path).lookup(user)
        assert account is not None
        return account.hash

    def test_stdin_creates_file_0600(self) -> None:
        old_umask = os.umask(0o022)
        self.addCleanup(os.umask, old_umask)
        self.assertEqual(self.run_stdin("alice", "s3cret pass\n"), 0)
        self.assertEqual(stat.S_IMODE(self.path.stat().st_mode), 0o600)
        hashed = self.hash_of("alice")
        self.assertTrue(hashed.startswith(b"$2b$04$"))
        self.assertTrue(bcrypt.checkpw(b"s3cret pass", hashed))
        self.assertFalse(bcrypt.checkpw(b"s3cret pass\n", hashed))
        self.assertIn("added alice", self.stderr.getvalue())
        # no temporary file left beside it
        self.assertEqual(list(self.path.parent.iterdir()), [self.path])

    def test_default_cost_is_12(self) -> None:
        self.patch(sys, "stdin", io.StringIO("pw\n"))
        self.assertEqual(passwd.main([str(self.path), "alice", "--stdin"]), 0)
        self.assertEqual(self.hash_of("alice")[:7], b"$2b$12$")

    def test_replace_keeps_other_lines(self) -> None:
        bob = bcrypt.hashpw(b"bob's", bcrypt.gensalt(4)).decode()
        self.path.write_text(f"# team\nbob:{bob}\n\nalice:{bob}\n# end\n")
        self.path.chmod(0o640)
        self.assertEqual(self.run_stdin("alice", "new one\n"), 0)
        lines = self.path.read_text().splitlines()
        self.assertEqual(lines[:3], ["# team", f"bob:{bob}", ""])
        self.assertTrue(lines[3].startswith("alice:$2b$04$"))
        self.assertEqual(lines[4:], ["# end"])
        self.assertTrue(bcrypt.checkpw(b"new one", self.hash_of("alice")))
        self.assertIn("updated alice", self.stderr.getvalue())
        # an administrator's group-readable mode is kept, not reset
        self.assertEqual(stat.S_IMODE(self.path.stat().st_mode), 0o640)
        self.assertEqual(self.run_stdin("carol", "third\n"), 0)
        self.assertEqual(
            sorted(parse_accounts(self.path.read_text(), source="x")), ["alice", "bob", "carol"]
        )

    def test_htpasswd_verifies_the_result(self) -> None:
        htpasswd = require_tool("htpasswd")
        self.assertEqual(self.run_stdin("alice", "s3cret\n"), 0)
        checked = subprocess.run(
            [htpasswd, "-v", "-b", str(self.path), "alice", "s3cret"],
            capture_output=True,
            check=False,
        )
        self.assertEqual(checked.returncode, 0, checked.stderr)

    def test_prompts_twice(self) -> None:
        answers = iter(["same", "same"])
        prompts: list[str] = []

        def fake_getpass(prompt: str = "") -> str:
            prompts.append(prompt)
            return next(answers)

        self.patch(getpass, "getpass", fake_getpass)
        self.assertEqual(passwd.main([str(self.path), "alice", "--cost", "4"]), 0)
        self.assertEqual(len(prompts), 2)
        self.assertTrue(bcrypt.checkpw(b"same", self.hash_of("alice")))

    def test_prompts_differ(self) -> None:
        answers = iter(["one", "two"])
        self.patch(getpass, "getpass", lambda prompt="": next(answers))
        self.assertEqual(passwd.main([str(self.path), "alice", "--cost", "4"]), 1)
        self.assertIn("differ", self.stderr.getvalue())
        self.assertFalse(self.path.exists())

    def test_refused(self) -> None:
        cases = [
            ("alice", "\n", "empty password"),
            ("alice", "", "empty password"),
            ("alice", "é" * 37 + "\n", "too long"),
            ("", "pw\n", "empty"),
            ("a:b", "pw\n", "':'"),
            ("a\nb", "pw\n", "line break"),
            (" alice", "pw\n", "spaces"),
            ("#alice", "pw\n", "comment"),
        ]
        for user, text, why in cases:
            self.stderr.truncate(0)
            self.assertEqual(self.run_stdin(user, text), 1, (user, text))
            self.assertIn(why, self.stderr.getvalue(), (user, text))
            self.assertFalse(self.path.exists())

    def test_exactly_72_bytes_accepted(self) -> None:
        self.assertEqual(self.run_stdin("alice", "p" * 72 + "\n"), 0)

    def test_broken_file_is_left_alone(self) -> None:
        self.path.write_text("bob:hunter2\n")
        self.assertEqual(self.run_stdin("alice", "pw\n"), 1)
        self.assertIn(f"{self.path}:1:", self.stderr.getvalue())
        self.assertNotIn("hunter2", self.stderr.getvalue())
        self.assertEqual(self.path.read_text(), "bob:hunter2\n")

    def test_cost_range(self) -> None:
        for cost in ["3", "16", "x"]:
            self.patch(sys, "stdin", io.StringIO("pw\n"))
            with self.assertRaises(SystemExit) as caught:
                passwd.main([str(self.path), "alice", "--stdin", "--cost", cost])
            self.assertEqual(caught.exception.code, 2)

    def test_runs_as_a_module(self) -> None:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "twistedspy.passwd",
                "--stdin",
                "--cost",
                "4",
                str(self.path),
                "alice",
            ],
            input="from the pipe\n",
            check=False,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(bcrypt.checkpw(b"from the pipe", self.hash_of("alice")))
