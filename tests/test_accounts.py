"""The accounts file: htpasswd's own output, every malformed line, hot reload."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import bcrypt
from twisted.logger import ILogObserver, LogEvent, Logger
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.support import require_tool
from twistedspy.accounts import Account, AccountsError, AccountsFile, parse_accounts

# bcrypt.hashpw(b"wonderland", gensalt(4)): cheap to check in tests
ALICE_HASH = b"$2b$04$gIgYtaATVM4T.OtPPwgBJe2HeGY1yCN/Flb3Zrwx65tgHLu4roeNi"  # wonderland
GOOD = "alice:" + ALICE_HASH.decode()


@implementer(ILogObserver)
class EventList(list[LogEvent]):
    """Collects the events a Logger emits."""

    def __call__(self, event: LogEvent) -> None:
        self.append(event)


def journal() -> tuple[Logger, EventList]:
    events = EventList()
    return Logger(observer=events), events


def hashed(password: bytes, cost: int = 4) -> bytes:
    return bcrypt.hashpw(password, bcrypt.gensalt(cost))


class HtpasswdTests(TestCase):
    def test_htpasswd_bcrypt_file_verifies(self) -> None:
        """A file made by `htpasswd -B` is read, and its $2y$ hashes check with bcrypt."""
        htpasswd = require_tool("htpasswd")
        path = Path(self.mktemp())
        subprocess.run(
            [htpasswd, "-B", "-C", "4", "-c", "-b", str(path), "alice", "s3cret"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [htpasswd, "-B", "-C", "4", "-b", str(path), "bob", "hunter2"],
            check=True,
            capture_output=True,
        )
        accounts = AccountsFile(path)
        alice = accounts.lookup("alice")
        bob = accounts.lookup("bob")
        assert alice is not None and bob is not None
        self.assertTrue(alice.hash.startswith(b"$2y$04$"))
        self.assertTrue(bcrypt.checkpw(b"s3cret", alice.hash))
        self.assertTrue(bcrypt.checkpw(b"hunter2", bob.hash))
        self.assertFalse(bcrypt.checkpw(b"hunter2", alice.hash))
        self.assertIsNone(accounts.lookup("carol"))
        self.assertEqual(accounts.highest_cost(), 4)

    def test_htpasswd_other_hashes_refused(self) -> None:
        """MD5, SHA-1, crypt and plaintext as htpasswd writes them all stop start-up."""
        htpasswd = require_tool("htpasswd")
        for flag, kind in [
            ("-m", "MD5"),
            ("-s", "SHA-1"),
            ("-d", "DES crypt"),
            ("-p", "not a bcrypt hash"),
        ]:
            path = Path(self.mktemp())
            path.write_text(GOOD + "\n")
            subprocess.run(
                [htpasswd, flag, "-b", str(path), "bob", "hunter2"],
                check=True,
                capture_output=True,
            )
            with self.assertRaises(AccountsError) as caught:
                AccountsFile(path)
            message = str(caught.exception)
            self.assertTrue(message.startswith(f"{path}:2: user 'bob': "), message)
            self.assertIn(kind, message)
            self.assertNotIn("hunter2", message)


class ParseTests(TestCase):
    def test_comments_and_blank_lines(self) -> None:
        text = f"# who may look\n\n   \n{GOOD}\r\n  # indented comment\nbob:{GOOD[6:]}\n"
        accounts = parse_accounts(text, source="accounts")
        self.assertEqual(sorted(accounts), ["alice", "bob"])
        self.assertEqual(accounts["alice"], Account("alice", ALICE_HASH))

    def test_all_bcrypt_prefixes(self) -> None:
        for prefix in ["2a", "2b", "2y"]:
            line = f"u:${prefix}" + GOOD[9:]
            self.assertEqual(
                parse_accounts(line, source="a")["u"].hash[:4], f"${prefix}$".encode()
            )

    def test_malformed_lines_name_source_and_line(self) -> None:
        tail = GOOD[6:]
        cases = [
            ("no colon", "alice", "not a 'user:hash' line"),
            ("empty user", ":" + tail, "empty user name"),
            (
                "duplicate",
                GOOD.replace("alice", "bob") + "\n#x\n" + GOOD.replace("alice", "bob"),
                "user 'bob': listed twice",
            ),
            ("plaintext", "bob:hunter2", "user 'bob': not a bcrypt hash (htpasswd -B writes one)"),
            ("empty hash", "bob:", "not a bcrypt hash"),
            ("md5", "bob:$apr1$abcdefgh$0123456789abcdefghijkl", "MD5"),
            ("sha", "bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "SHA-1"),
            ("crypt", "bob:rl0uE1jHe1ZLs", "DES crypt"),
            ("sha512-crypt", "bob:$6$salt$" + "x" * 86, "SHA-crypt"),
            ("bcrypt cost too low", "bob:$2b$03$" + tail[7:], "malformed bcrypt"),
            ("bcrypt truncated", "bob:" + tail[:-1], "malformed bcrypt"),
            ("bcrypt unknown variant", "bob:$2x$" + tail[4:], "malformed bcrypt"),
            ("bcrypt bad alphabet", "bob:" + tail[:-1] + "!", "malformed bcrypt"),
            ("spaces round user", " bob :" + tail, "spaces around the user name"),
            ("extra field", GOOD.replace("alice", "bob") + ":extra", "bcrypt"),
        ]
        for name, bad, why in cases:
            text = f"# accounts\n{GOOD}\n{bad}\n"
            with self.assertRaises(AccountsError, msg=name) as caught:
                parse_accounts(text, source="accounts")
            message = str(caught.exception)
            line = 5 if name == "duplicate" else 3
            self.assertTrue(message.startswith(f"accounts:{line}: "), f"{name}: {message}")
            self.assertIn(why, message, name)

    def test_message_format(self) -> None:
        with self.assertRaises(AccountsError) as caught:
            parse_accounts("\n\nbob:hunter2\n", source="accounts")
        self.assertEqual(
            str(caught.exception),
            "accounts:3: user 'bob': not a bcrypt hash (htpasswd -B writes one)",
        )


class AccountsFileTests(TestCase):
    def setUp(self) -> None:
        self.path = Path(self.mktemp())
        self.path.write_text(GOOD + "\n")

    def test_missing_file(self) -> None:
        with self.assertRaises(AccountsError) as caught:
            AccountsFile(Path(self.mktemp()))
        self.assertIn("cannot read the accounts file", str(caught.exception))

    def test_unreadable_file(self) -> None:
        directory = Path(self.mktemp())
        directory.mkdir()
        with self.assertRaises(AccountsError):
            AccountsFile(directory)

    def test_not_utf8(self) -> None:
        self.path.write_bytes(b"\xff\xfe:x\n")
        with self.assertRaises(AccountsError) as caught:
            AccountsFile(self.path)
        self.assertIn("UTF-8", str(caught.exception))

    def test_malformed_file_at_start(self) -> None:
        self.path.write_text(GOOD + "\nbob:hunter2\n")
        with self.assertRaises(AccountsError) as caught:
            AccountsFile(self.path)
        self.assertTrue(str(caught.exception).startswith(f"{self.path}:2: "))

    def test_replaced_file_is_reread(self) -> None:
        """An atomic replace (as twistedspy-passwd does) is seen by the next lookup."""
        log, events = journal()
        accounts = AccountsFile(self.path, log=log)
        self.assertIsNone(accounts.lookup("bob"))
        bob_hash = hashed(b"hunter2")
        new = self.path.with_name("new")
        new.write_text(f"{GOOD}\nbob:{bob_hash.decode()}\n")
        new.replace(self.path)
        self.assertEqual(accounts.lookup("bob"), Account("bob", bob_hash))
        self.assertEqual([e["spy_fields"]["outcome"] for e in events], ["reloaded"])

    def test_edit_in_place_same_size_is_reread(self) -> None:
        """Same inode and size: the mtime alone tells the change."""
        accounts = AccountsFile(self.path)
        other = hashed(b"other")
        before = self.path.stat()
        self.path.write_text("alice:" + other.decode() + "\n")
        self.assertEqual(self.path.stat().st_size, before.st_size)
        # coarse file-system timestamps may not move between two quick writes; a real
        # edit comes later than that, so set the time the way it would be
        os.utime(self.path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
        account = accounts.lookup("alice")
        assert account is not None
        self.assertEqual(account.hash, other)

    def test_unchanged_file_is_not_reread(self) -> None:
        log, events = journal()
        accounts = AccountsFile(self.path, log=log)
        for _ in range(3):
            self.assertIsNotNone(accounts.lookup("alice"))
        self.assertEqual(events, [])

    def test_broken_rewrite_locks_everyone_out(self) -> None:
        """A user removed in the same edit that adds an $apr1$ line is out at once."""
        log, events = journal()
        bob_hash = hashed(b"hunter2")
        self.path.write_text(f"{GOOD}\nbob:{bob_hash.decode()}\n")
        accounts = AccountsFile(self.path, log=log)
        self.assertIsNone(accounts.health_problem())
        self.path.write_text(f"{GOOD}\ncarol:$apr1$abcdefgh$0123456789abcdefghijkl\n")
        for _ in range(3):
            self.assertIsNone(accounts.lookup("bob"))
            self.assertIsNone(accounts.lookup("alice"))
        self.assertEqual(
            accounts.health_problem(),
            "the accounts file cannot be read whole; every login is refused",
        )
        # journalled once, as an error naming the line, never the rejected secret
        self.assertEqual(len(events), 1)
        fields = events[0]["spy_fields"]
        self.assertEqual(events[0]["spy_event"], "accounts")
        self.assertEqual(events[0]["log_level"].name, "error")
        self.assertEqual(fields["outcome"], "everyone locked out until the file is fixed")
        self.assertIn(f"{self.path}:2:", fields["error"])
        # and fixed again: read at once, without bob
        self.path.write_text(f"{GOOD}\n#\n")
        self.assertEqual(accounts.lookup("alice"), Account("alice", ALICE_HASH))
        self.assertIsNone(accounts.lookup("bob"))
        self.assertIsNone(accounts.health_problem())
        self.assertEqual(events[-1]["spy_fields"]["outcome"], "reloaded")

    def test_deleted_file_locks_everyone_out(self) -> None:
        log, events = journal()
        accounts = AccountsFile(self.path, log=log)
        self.path.unlink()
        self.assertIsNone(accounts.lookup("alice"))
        self.assertIsNone(accounts.lookup("alice"))
        self.assertIsNotNone(accounts.health_problem())
        self.assertEqual(len(events), 1)
        self.assertIn("cannot read", events[0]["spy_fields"]["error"])
        # put back: read again
        self.path.write_text(GOOD + "\n")
        self.assertIsNotNone(accounts.lookup("alice"))
        self.assertIsNone(accounts.health_problem())

    def test_generation_moves_with_every_change(self) -> None:
        accounts = AccountsFile(self.path)
        first = accounts.generation()
        self.assertEqual(accounts.generation(), first)
        status = self.path.stat()
        os.utime(self.path, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))
        touched = accounts.generation()
        self.assertNotEqual(touched, first)
        self.path.unlink()
        removed = accounts.generation()
        self.assertNotIn(removed, (first, touched))
        self.assertEqual(accounts.generation(), removed)
        self.path.write_text(GOOD + "\n")
        self.assertNotIn(accounts.generation(), (first, touched, removed))

    def test_highest_cost(self) -> None:
        lines = [f"u{n}:{hashed(b'x', cost).decode()}" for n, cost in enumerate([4, 5, 5, 6])]
        self.path.write_text("\n".join(lines))
        accounts = AccountsFile(self.path)
        self.assertEqual(accounts.highest_cost(), 6)
        # a lock-out keeps the cost of the last accounts read whole
        self.path.write_text("bob:hunter2\n")
        self.assertIsNone(accounts.lookup("u0"))
        self.assertEqual(accounts.highest_cost(), 6)
        self.path.write_text("# nobody yet\n")
        self.assertEqual(AccountsFile(self.path).highest_cost(), 12)
