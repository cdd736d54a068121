# -*- test-case-name: tests.test_faults -*-
"""
Faults of the machine, small and real: a journal that can no longer be written (a full
disk, a file-size limit), an accounts file replaced with garbage while running, a plugin
file that fails to import. What the user sees, what the journal says, and that nothing
else stops. (`proof/faults.py` runs the whole list under `make proof`.)
"""

from __future__ import annotations

import io
import os
import resource
import shutil
import stat
import tempfile
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from tests.daemons import start_cli
from twistedspy.journal import JournalObserver, open_journal


def limit_file_size(limit: int) -> None:
    # setrlimit(2): a write past the limit fails with EFBIG (Python ignores SIGXFSZ).
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def fill_disk_at(path: Path) -> None:
    """
    The disk fills under `path`: /dev/full's own device in its place (the journal opens
    no symlink), so that every write there fails with ENOSPC.
    """
    path.unlink()
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 7))
    except PermissionError:
        raise SkipTest("making a device node needs root (CAP_MKNOD)") from None


class JournalDiskFullTests(SynchronousTestCase):
    def event(self, n: int) -> dict[str, object]:
        return {"spy_event": "request", "spy_fields": {"n": n}, "log_level": None}

    def test_full_disk_drops_and_counts_then_recovers(self) -> None:
        folder = Path(self.mktemp())
        stderr = io.StringIO()
        journal = open_journal(folder, "short")
        journal._stderr = stderr
        assert journal.path is not None
        real = journal.path
        # The disk fills: every write to the journal now fails with ENOSPC (/dev/full).
        journal.close()
        journal = JournalObserver(folder, "short", stderr=stderr)
        fill_disk_at(real)
        from twisted.logger import LogLevel

        for n in range(5):
            journal({"spy_event": "request", "spy_fields": {"n": n}, "log_level": LogLevel.info})
        self.assertEqual(journal.dropped, 5)
        self.assertEqual(stderr.getvalue().count("cannot write the journal"), 1)
        self.assertIn("No space left on device", stderr.getvalue())
        # Space again: the next event is written, after a line saying what was lost.
        real.unlink()
        journal({"spy_event": "request", "spy_fields": {"n": 5}, "log_level": LogLevel.info})
        text = real.read_text()
        self.assertIn("warn journal-gap dropped=5 total_dropped=5", text)
        self.assertIn("request n=5", text)
        self.assertEqual(stderr.getvalue().count("cannot write the journal"), 1)
        journal.close()

    def test_full_disk_in_batches_counts_every_event(self) -> None:
        from twisted.internet.task import Clock
        from twisted.logger import LogLevel

        folder = Path(self.mktemp())
        stderr = io.StringIO()
        journal = open_journal(folder, "short")
        assert journal.path is not None
        real = journal.path
        journal.close()
        reactor = Clock()
        journal = JournalObserver(folder, "short", stderr=stderr, clock=reactor)
        fill_disk_at(real)
        for turn in range(2):
            for n in range(5):
                journal(
                    {"spy_event": "request", "spy_fields": {"n": n}, "log_level": LogLevel.info}
                )
            reactor.advance(0)
            self.assertEqual(journal.dropped, 5 * (turn + 1))
        self.assertEqual(stderr.getvalue().count("cannot write the journal"), 1)
        real.unlink()
        journal({"spy_event": "request", "spy_fields": {"n": 10}, "log_level": LogLevel.info})
        reactor.advance(0)
        text = real.read_text()
        self.assertIn("warn journal-gap dropped=10 total_dropped=10", text)
        self.assertIn("request n=10", text)
        journal.close()


class ServerFaultTests(TestCase):
    def test_journal_past_the_file_size_limit_keeps_serving(self) -> None:
        folder = Path(tempfile.mkdtemp(prefix="twistedspy-faults-"))
        self.addCleanup(shutil.rmtree, folder, True)
        server = start_cli(folder, preexec_fn=lambda: limit_file_size(32 * 1024))
        self.addCleanup(server.stop)
        statuses = {server.get("/version") for _ in range(400)}
        self.assertEqual(statuses, {200})
        journal = server.journal()
        # The journal stopped at the limit, whole lines only up to there.
        self.assertLessEqual(len(journal.encode()), 32 * 1024)
        self.assertIn(" request ", journal)
        server.stop()
        # Told once, in twistd's log (where twistd sends what is written to stderr).
        told = server.output_text()
        self.assertEqual(told.count("cannot write the journal"), 1, told)
        self.assertIn("File too large", told)
