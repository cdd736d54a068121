"""Tests for twistedspy.journal: file names, midnight, modes, escaping, tracebacks, errors."""

from __future__ import annotations

import enum
import os
import re
import threading
import time
from pathlib import Path

from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, Logger, LogLevel, formatEvent
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.servers import start_server
from twistedspy.events import (
    VERBOSE_ONLY,
    keeps,
    record,
    record_failure,
    record_fields,
    recorder,
)
from twistedspy.http.protocol import REQUEST_FIELDS
from twistedspy.journal import (
    BATCH_BYTES,
    LEADING_ENTRIES,
    JournalError,
    JournalObserver,
    JournalRoute,
    format_fields,
    format_value,
    journal_file_name,
    open_journal,
)
from twistedspy.settings import LogMode

#: 9 March 2024, 23:59:59 local time, whatever the machine's zone
BEFORE_MIDNIGHT = time.mktime((2024, 3, 9, 23, 59, 59, 0, 0, -1))

LINE = re.compile(
    r"(?P<stamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d) (?P<level>\w+) "
    r"(?P<event>\S+)(?: (?P<fields>.*))?"
)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@implementer(ILogObserver)
class Collected(list[LogEvent]):
    def __call__(self, event: LogEvent) -> None:
        self.append(event)


class JournalTests(TestCase):
    def setUp(self) -> None:
        self.log_dir = Path(self.mktemp()) / "logs"
        self.clock = FakeClock(BEFORE_MIDNIGHT)

    def journal(self, mode: LogMode = "short") -> tuple[JournalObserver, Logger]:
        journal = open_journal(self.log_dir, mode, now=self.clock)
        self.addCleanup(journal.close)
        return journal, Logger(namespace="tests.journal", observer=journal)

    def lines(self, name: str = "09-03-2024.log") -> list[str]:
        return (self.log_dir / name).read_text(encoding="utf-8").splitlines()

    def test_file_name_is_local_date(self) -> None:
        self.assertEqual(journal_file_name(BEFORE_MIDNIGHT), "09-03-2024.log")
        self.assertEqual(journal_file_name(BEFORE_MIDNIGHT + 2), "10-03-2024.log")

    def test_open_creates_folder_and_todays_file(self) -> None:
        journal, _ = self.journal()
        self.assertEqual(journal.path, self.log_dir / "09-03-2024.log")
        assert journal.path is not None
        self.assertTrue(journal.path.is_file())

    def test_line_format(self) -> None:
        _, log = self.journal()
        record(log, "request", client="127.0.0.1", status=200, user=None)
        [line] = self.lines()
        match = LINE.fullmatch(line)
        assert match is not None, line
        self.assertEqual(match["level"], "info")
        self.assertEqual(match["event"], "request")
        self.assertEqual(match["fields"], "client=127.0.0.1 status=200 user=-")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(BEFORE_MIDNIGHT))
        self.assertTrue(match["stamp"].startswith(stamp + ".000"), match["stamp"])
        offset = time.localtime(BEFORE_MIDNIGHT).tm_gmtoff
        sign = "-" if offset < 0 else "+"
        hours, minutes = divmod(abs(offset) // 60, 60)
        self.assertTrue(match["stamp"].endswith(f"{sign}{hours:02}:{minutes:02}"))

    def test_rollover_at_local_midnight(self) -> None:
        _, log = self.journal()
        record(log, "start", port=1)
        self.clock.now += 0.5
        record(log, "late", n=1)
        self.clock.now += 1  # 00:00:00.5 the next day
        record(log, "early", n=2)
        before = [LINE.fullmatch(line)["event"] for line in self.lines()]  # type: ignore[index]
        after = [
            LINE.fullmatch(line)["event"]  # type: ignore[index]
            for line in self.lines("10-03-2024.log")
        ]
        self.assertEqual((before, after), (["start", "late"], ["early"]))
        self.assertIn("T00:00:00.500", self.lines("10-03-2024.log")[0])

    def test_short_mode_leaves_out_verbose_events(self) -> None:
        _, log = self.journal("short")
        for name in sorted(VERBOSE_ONLY):
            record(log, name, client="::1")
        record(log, "request", status=200)
        self.assertEqual([line.split()[2] for line in self.lines()], ["request"])

    def test_verbose_mode_keeps_them(self) -> None:
        _, log = self.journal("verbose")
        for name in sorted(VERBOSE_ONLY):
            record(log, name, client="::1")
        record(log, "request", status=200)
        self.assertEqual(
            [line.split()[2] for line in self.lines()], [*sorted(VERBOSE_ONLY), "request"]
        )

    def test_hostile_values_stay_on_one_line(self) -> None:
        _, log = self.journal()
        hostile = 'a b\nFAKE 2024 info start x=1\r"q"=\\ \u2028\x00'
        record(log, "request", path=hostile, user="bob")
        [line] = self.lines()
        self.assertEqual(
            line.split(" ", 3)[3],
            r'path="a b\nFAKE 2024 info start x=1\r\"q\"=\\ \u2028\x00" user=bob',
        )

    def test_route_keeps_journal_events_from_the_global_log(self) -> None:
        journal, _ = self.journal()
        published: list[dict[str, object]] = []

        def publisher(event: dict[str, object]) -> None:
            # stands for the global publisher, on which the journal also listens
            published.append(event)
            journal(event)

        log = Logger(namespace="tests.journal", observer=JournalRoute(journal, publisher))
        record(log, "request", status=200)
        record(log, "warning", LogLevel.warn, message="as root")
        log.info("not a journal event")
        self.assertEqual([line.split()[2] for line in self.lines()], ["request", "warning"])
        self.assertEqual([event.get("spy_event") for event in published], ["warning", None])
        # twistd's log observer formats the event: the fields read as in the journal.
        self.assertEqual(formatEvent(published[0]), 'warning message="as root"')

    def test_format_value(self) -> None:
        self.assertEqual(format_value(""), '""')
        self.assertEqual(format_value("a=b"), '"a=b"')
        self.assertEqual(format_value(3.5), "3.5")
        self.assertEqual(format_value("caf\u00e9"), "caf\u00e9")
        self.assertEqual(format_value("\U0001f600"), "\U0001f600")
        self.assertEqual(format_value("\t"), r'"\t"')

    def test_fields_format_as_their_values_do(self) -> None:
        # format_fields inlines format_value's common cases: the same text either way.
        class Level(enum.IntEnum):
            HIGH = 3

        class Text(str):
            def __str__(self) -> str:
                return "shown as"

        values: list[object] = [
            "GET", "/a b", "", 'q"', "k=v", "back\\slash", "\x00", "caf\u00e9", "x" * 300,
            0, -3, 2**70, 3.5, 0.1, -0.0, 1e-07, 1e300, float("inf"), float("-inf"),
            float("nan"), True, None, Level.HIGH, Text("plain"), b"raw", ("a", 1),
        ]  # fmt: skip
        for value in values:
            fields = [("a key", value), ("status", value), ("k", 200)]
            expected = " ".join(f"{format_value(k)}={format_value(v)}" for k, v in fields)
            self.assertEqual(format_fields(fields), expected, repr(value))
        self.assertEqual(format_fields([]), "")

    def test_failure_has_its_traceback(self) -> None:
        _, log = self.journal()
        try:
            raise ValueError("broken\nmodule")
        except ValueError:
            record_failure(log, "module-error", module="disks")
        record(log, "after")
        lines = self.lines()
        self.assertRegex(lines[0], r" critical module-error module=disks$")
        body = lines[1:-1]
        self.assertTrue(body, lines)
        self.assertTrue(all(line.startswith("  ") for line in body), body)
        self.assertIn("  Traceback (most recent call last):", body)
        self.assertTrue(any("ValueError: broken" in line for line in body), body)
        self.assertIn("raise ValueError", "\n".join(body))
        self.assertEqual(lines[-1].split()[2], "after")

    def test_twisted_warnings_but_not_chatter(self) -> None:
        _, log = self.journal()
        log.info("Starting factory {f}", f="x")
        log.warn("Couldn't listen on {port}", port=80)
        [line] = self.lines()
        self.assertRegex(
            line,
            r" warn twisted namespace=tests.journal message=\"Couldn't listen on 80\"$",
        )

    def test_close_flushes_and_stops(self) -> None:
        journal, log = self.journal()
        record(log, "stop")
        self.assertEqual(len(self.lines()), 1)  # already on disk before close
        journal.close()
        record(log, "after-close")
        self.assertEqual(len(self.lines()), 1)

    def test_each_event_reaches_the_file_in_one_write(self) -> None:
        _, log = self.journal()
        writes: list[bytes] = []
        real_write = os.write

        def write(fd: int, data: bytes) -> int:
            writes.append(bytes(data))
            return real_write(fd, data)

        self.patch(os, "write", write)
        try:
            raise ValueError("boom")
        except ValueError:
            record_failure(log, "module-error", module="m")
        record(log, "request", status=200)
        self.assertEqual(len(writes), 2)
        self.assertEqual(b"".join(writes).decode().splitlines(), self.lines())
        self.assertIn("ValueError: boom", writes[0].decode())

    def test_repeated_values_format_the_same(self) -> None:
        for value in ("GET", "a b", "", "x" * 1000, 'q"', "\t"):
            self.assertEqual(format_value(value), format_value(value), value)
        self.assertEqual(format_value(None), "-")
        self.assertEqual(format_value(True), "True")
        self.assertEqual(format_value(-3), "-3")
        self.assertEqual(format_value(float("nan")), "nan")
        # Far more distinct values than are remembered: each still formatted right.
        for n in range(10_000):
            self.assertEqual(format_value(f"v {n}"), f'"v {n}"')

    def test_who_keeps_verbose_events(self) -> None:
        short, _ = self.journal("short")
        self.assertFalse(short.keeps("headers"))
        self.assertFalse(short.keeps("connection"))
        self.assertTrue(short.keeps("request"))
        route = JournalRoute(short, lambda event: None)
        self.assertFalse(route.keeps("headers"))
        self.assertFalse(keeps(Logger(observer=route), "headers"))
        verbose = JournalObserver(self.log_dir, "verbose", now=self.clock)
        self.assertTrue(JournalRoute(verbose, lambda event: None).keeps("headers"))
        # Any other observer might want anything.
        self.assertTrue(keeps(Logger(observer=Collected()), "headers"))

    def test_record_makes_the_event_emit_would(self) -> None:
        events = Collected()
        log = Logger(namespace="tests.journal", observer=events)
        record(log, "request", LogLevel.warn, status=200)
        log.emit(LogLevel.warn, "{spy_event}", spy_event="request", spy_fields={"status": 200})
        made, emitted = events
        self.assertEqual(set(made), set(emitted))
        for key in emitted:
            if key != "log_time":
                self.assertEqual(made[key], emitted[key], key)
        self.assertEqual(formatEvent(made), "request")
        self.assertRaises(ValueError, record, log, "request", "info")

    def test_levels(self) -> None:
        _, log = self.journal()
        record(log, "auth", level=LogLevel.warn, user="x", outcome="denied")
        self.assertEqual(self.lines()[0].split()[1], "warn")


class UnwritableJournalTests(TestCase):
    def test_folder_under_a_file(self) -> None:
        # Works as root too: nobody can make a folder inside a regular file.
        blocker = Path(self.mktemp())
        blocker.write_text("not a folder")
        log_dir = blocker / "logs"
        error = self.assertRaises(JournalError, open_journal, log_dir, "short")
        self.assertEqual(str(error), f"cannot write the journal in {log_dir}: Not a directory")

    def test_log_dir_is_a_file(self) -> None:
        log_dir = Path(self.mktemp())
        log_dir.write_text("")
        error = self.assertRaises(JournalError, open_journal, log_dir, "short")
        self.assertIn(f"cannot write the journal in {log_dir}", str(error))

    def test_read_only_folder(self) -> None:
        if os.geteuid() == 0:
            self.skipTest("root may write into a read-only folder")
        log_dir = Path(self.mktemp())
        log_dir.mkdir(mode=0o500)
        self.addCleanup(log_dir.chmod, 0o700)
        error = self.assertRaises(JournalError, open_journal, log_dir, "short")
        self.assertEqual(str(error), f"cannot write the journal in {log_dir}: Permission denied")


class DebugDetailTests(TestCase):
    def test_short_mode_leaves_out_debug_events(self) -> None:
        folder = Path(self.mktemp())
        short = open_journal(folder / "short", "short")
        verbose = open_journal(folder / "verbose", "verbose")
        for journal in (short, verbose):
            self.addCleanup(journal.close)
            log = Logger(observer=JournalRoute(journal, lambda event: None))
            record(log, "authorization", LogLevel.debug, user="-", client="c", outcome="ok")
            record(log, "request", client="c")
        short_text = "".join(p.read_text() for p in (folder / "short").iterdir())
        verbose_text = "".join(p.read_text() for p in (folder / "verbose").iterdir())
        self.assertNotIn("authorization", short_text)
        self.assertIn("request client=c", short_text)
        self.assertIn("debug authorization user=- client=c outcome=ok", verbose_text)


class SecretsAndModesTests(TestCase):
    """The journal on disk: who may read it, and no password in any field of it."""

    async def test_referer_with_a_password_never_reaches_the_verbose_journal(self) -> None:
        server = start_server(self, log_mode="verbose")
        referer = (
            f"http://127.0.0.1:{server.port}/processes?login=alice&password=hunter2"
            "&pass%77ord=hunter3"
        )
        reply = await server.request(
            "GET",
            "/-/static/spy.css?token=abc",
            {"Referer": referer, "X-Forwarded-For": "http://bob:pw2@proxy/"},
        )
        self.assertEqual(reply.status, 200)
        server.service.journal.close()
        journal = server.journal_text()
        self.assertIn("referer=", journal)
        self.assertIn("password=***", journal)
        for secret in ("hunter2", "hunter3", "abc", "pw2"):
            self.assertNotIn(secret, journal)

    def test_files_are_0640_and_never_through_a_symlink(self) -> None:
        log_dir = Path(self.mktemp())
        log_dir.mkdir()
        umask = os.umask(0o022)
        os.umask(umask)
        journal = open_journal(log_dir, "short")
        self.addCleanup(journal.close)
        assert journal.path is not None
        self.assertEqual(journal.path.stat().st_mode & 0o777, 0o640 & ~umask)
        journal.close()
        # A file made world-readable by an older version is narrowed when opened.
        journal.path.chmod(0o644)
        again = open_journal(log_dir, "short")
        self.addCleanup(again.close)
        self.assertEqual(journal.path.stat().st_mode & 0o777, 0o640 & ~umask)
        again.close()
        # A symlink planted under the day's name is refused, its target left alone.
        target = Path(self.mktemp())
        target.write_text("")
        journal.path.unlink()
        journal.path.symlink_to(target)
        error = self.assertRaises(JournalError, open_journal, log_dir, "short")
        self.assertIn("Too many levels of symbolic links", str(error))
        self.assertEqual(target.read_text(), "")


class BatchTests(TestCase):
    """With a reactor, a turn's lines reach the file in one write (docs/operations.md)."""

    def setUp(self) -> None:
        self.log_dir = Path(self.mktemp()) / "logs"
        self.now = FakeClock(BEFORE_MIDNIGHT)
        self.reactor = Clock()
        self.journal = open_journal(self.log_dir, "short", now=self.now, clock=self.reactor)
        self.addCleanup(self.journal.close)
        self.log = Logger(namespace="tests.journal", observer=self.journal)
        self.writes: list[bytes] = []
        real_write = os.write

        def write(fd: int, data: bytes) -> int:
            self.writes.append(bytes(data))
            return real_write(fd, data)

        self.patch(os, "write", write)

    def lines(self, name: str = "09-03-2024.log") -> list[str]:
        path = self.log_dir / name
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    def test_one_write_for_a_turn(self) -> None:
        for n in range(100):
            record(self.log, "request", n=n)
        self.assertEqual((self.writes, self.lines()), ([], []))
        self.reactor.advance(0)
        self.assertEqual(len(self.writes), 1)
        self.assertEqual(
            [line.split()[-1] for line in self.lines()], [f"n={n}" for n in range(100)]
        )
        record(self.log, "request", n=100)
        self.reactor.advance(0)
        self.assertEqual(len(self.writes), 2)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_a_full_batch_is_written_without_waiting(self) -> None:
        value = "x" * 1000
        while not self.writes:
            record(self.log, "request", value=value)
        self.assertGreaterEqual(len(self.writes[0]), BATCH_BYTES)
        self.assertLess(len(self.writes[0]), BATCH_BYTES + 1100)

    def test_an_error_is_written_at_once_after_the_lines_before_it(self) -> None:
        record(self.log, "request", n=1)
        try:
            raise ValueError("boom")
        except ValueError:
            record_failure(self.log, "module-error", module="m")
        self.assertEqual(len(self.writes), 1)
        events = [LINE.fullmatch(line) for line in self.lines() if not line.startswith(" ")]
        self.assertEqual([m["event"] for m in events if m], ["request", "module-error"])
        self.assertIn("ValueError: boom", self.writes[0].decode())

    def test_a_line_goes_to_the_file_of_its_day(self) -> None:
        record(self.log, "late", n=1)
        self.now.now += 1.5  # 00:00:00.5 the next day, within the same turn
        record(self.log, "early", n=2)
        self.reactor.advance(0)
        self.assertEqual([line.split()[2] for line in self.lines()], ["late"])
        self.assertEqual([line.split()[2] for line in self.lines("10-03-2024.log")], ["early"])

    def test_close_writes_the_batch(self) -> None:
        record(self.log, "request", n=1)
        record(self.log, "stop")
        self.journal.close()
        self.assertEqual([line.split()[2] for line in self.lines()], ["request", "stop"])
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_flush_writes_the_batch(self) -> None:
        record(self.log, "request", n=1)
        self.journal.flush()
        self.assertEqual(len(self.lines()), 1)
        self.reactor.advance(0)
        self.assertEqual(len(self.writes), 1)

    def test_another_threads_event_is_written_at_once_after_the_batch(self) -> None:
        record(self.log, "request", n=1)
        thread = threading.Thread(target=record, args=(self.log, "authorization"))
        thread.start()
        thread.join()
        self.assertEqual([line.split()[2] for line in self.lines()], ["request", "authorization"])
        self.assertEqual(len(self.writes), 1)


class PreparedWriterTests(TestCase):
    """`recorder`: the request line without an event, the same text as `record` writes."""

    KEYS = REQUEST_FIELDS

    def setUp(self) -> None:
        self.log_dir = Path(self.mktemp()) / "logs"
        self.now = FakeClock(BEFORE_MIDNIGHT)
        self.reactor = Clock()

    def journal(self, mode: LogMode = "short") -> tuple[JournalObserver, Logger]:
        journal = open_journal(self.log_dir, mode, now=self.now, clock=self.reactor)
        self.addCleanup(journal.close)
        return journal, Logger(observer=JournalRoute(journal, Collected()))

    def lines(self, name: str = "09-03-2024.log") -> list[str]:
        path = self.log_dir / name
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    def test_the_same_lines_as_record(self) -> None:
        self.now.now -= 3600  # the rows span seconds: all within the day
        journal, log = self.journal()
        write = recorder(log, "request", self.KEYS)
        hostile = 'a b\nFAKE 2024 info start x=1\r"q"=\\ \u2028\x00'
        rows = [
            ("127.0.0.1", "-", "GET", "/-/healthy", 200, 248, 0.1),
            ("127.0.0.1", "-", "GET", "/-/healthy", 200, 248, 12.5),  # its fields remembered
            ("::1", "bob", "GET", "/version", 200, 3733, 0.0),
            ("10.0.0.1", None, "-", hostile, 400, 0, float("nan")),
            ("10.0.0.1", None, "-", hostile, 400, 0, -1.5),
            ("x", True, "GET", "/" + "p" * 2000, 404, 10**12, 1e300),  # too long to remember
            ("x", True, "GET", "/" + "p" * 2000, 404, 10**12, None),
        ]
        for row in rows:
            write(*row)
            record_fields(log, "request", dict(zip(self.KEYS, row, strict=True)))
            self.now.now += 0.2503
        journal.flush()
        written = self.lines()
        self.assertEqual(len(written), 2 * len(rows))
        for fast, slow in zip(written[::2], written[1::2], strict=True):
            self.assertEqual(fast, slow)
        self.assertTrue(written[0].endswith(" path=/-/healthy status=200 bytes=248 ms=0.1"))
        self.assertIn(r'path="a b\nFAKE 2024 info start x=1\r\"q\"=\\ \u2028\x00"', written[6])

    def test_lines_join_the_turns_batch_and_go_to_their_days_file(self) -> None:
        journal, log = self.journal()
        write = recorder(log, "request", ("n",))
        write(1)
        record(log, "other", n=2)
        self.assertEqual(self.lines(), [])
        self.now.now += 1.5  # past midnight, within the same turn: the day's lines go first
        write(3)
        self.assertEqual([line.split()[-1] for line in self.lines()], ["n=1", "n=2"])
        self.assertEqual(self.lines("10-03-2024.log"), [])
        self.reactor.advance(0)
        self.assertEqual([line.split()[-1] for line in self.lines("10-03-2024.log")], ["n=3"])
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        journal.close()
        write(4)  # after close, dropped as record's are
        self.assertEqual(len(self.lines("10-03-2024.log")), 1)

    def test_a_left_out_event_is_not_written(self) -> None:
        journal, log = self.journal("short")
        recorder(log, "connection", ("client",))("127.0.0.1")
        recorder(log, "request", ())()
        journal.flush()
        self.assertEqual([line.split()[2:] for line in self.lines()], [["request"]])

    def test_the_wrong_number_of_values_is_refused(self) -> None:
        _, log = self.journal()
        write = recorder(log, "request", ("a", "b"))
        self.assertRaises(TypeError, write, 1)
        self.assertRaises(TypeError, write, 1, 2, 3)
        self.assertRaises(TypeError, recorder(Logger(observer=Collected()), "e", ("a",)), 1, 2)

    def test_remembered_fields_stay_bounded(self) -> None:
        journal, log = self.journal()
        write = recorder(log, "request", ("path", "ms"))
        for n in range(3 * LEADING_ENTRIES):
            write(f"/{n}", 0.5)
        journal.flush()
        written = self.lines()
        self.assertEqual(len(written), 3 * LEADING_ENTRIES)
        self.assertEqual(written[-1].split(" ", 3)[3], f"path=/{3 * LEADING_ENTRIES - 1} ms=0.5")
        write_cells = write.__closure__ or ()
        kept = [c.cell_contents for c in write_cells if isinstance(c.cell_contents, dict)]
        self.assertEqual(len(kept), 1)
        self.assertLessEqual(len(kept[0]), LEADING_ENTRIES)

    def test_any_other_observer_gets_the_event_record_makes(self) -> None:
        events = Collected()
        log = Logger(namespace="tests.journal", observer=events)
        recorder(log, "request", ("status", "user"))(200, "-")
        record(log, "request", status=200, user="-")
        made, recorded = events
        self.assertEqual(made["spy_fields"], {"status": 200, "user": "-"})
        self.assertEqual(
            {k: v for k, v in made.items() if k != "log_time"},
            {k: v for k, v in recorded.items() if k != "log_time"},
        )
