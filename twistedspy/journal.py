# -*- test-case-name: tests.test_journal -*-
"""The daily journal (docs/operations.md): a `twisted.logger` observer writing
`dd-mm-yyyy.log` files.

It writes the events that `twistedspy.events.record` marks with `spy_event`, and Twisted's
own events at warn level or above as the event `twisted` (a port that cannot be bound, an
unhandled error in a Deferred). Everything else Twisted logs stays out.

One event is one line:

    2024-03-09T23:59:59.250+01:00 info request client=127.0.0.1 method=GET path=/ status=200

the local time with its UTC offset, the level, the event name, then the fields in the
order they were given. A value holding spaces, quotes, `=`, a backslash or anything not
printable is written in double quotes with backslash escapes, so no value can break a line
or forge a field. The one exception to one line an event: a failure's traceback follows
its event, each line indented by two spaces.

Given a clock (the reactor), the journal writes in batches: the lines of one reactor turn
go to the file in one write(2) (docs/operations.md).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from twisted.logger import ILogObserver, LogLevel, formatEvent
from twisted.python.failure import Failure
from zope.interface import implementer

from twistedspy.events import VERBOSE_ONLY
from twistedspy.masking import mask_text
from twistedspy.memo import BoundedMemo
from twistedspy.settings import LogMode

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

#: the event name under which Twisted's own warnings and errors are journalled
TWISTED_EVENT = "twisted"

_LEVELS = frozenset(LogLevel.iterconstants())
#: warn and above; a set, because comparing two LogLevels walks all the constants each time
_WARN_OR_WORSE = frozenset(level for level in _LEVELS if level >= LogLevel.warn)
#: the levels written at once, with every line before them: what explains a crash
_ERROR_OR_WORSE = frozenset({LogLevel.error, LogLevel.critical})

#: a batch of lines this long is written without waiting for the end of the reactor turn
BATCH_BYTES = 65536

#: the texts of leading fields a prepared writer keeps (JournalObserver.prepare): at most
#: this many, each at most this long, so that no client can make them grow
LEADING_ENTRIES = 256
LEADING_LONGEST = 512

#: a single character escaped in a quoted value; any other non-printable one becomes \\xNN,
#: \\uNNNN or \\UNNNNNNNN
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


#: marks an event the journal has written already (see JournalRoute)
_ALREADY_JOURNALLED = "spy_journalled"

#: what makes a value need quotes, besides a character that is not printable (str.isprintable
#: is false for every other whitespace character, so the space is the only one to look for)
_NEEDS_QUOTES = re.compile(r'[ "=\\]')


#: journal files: the server's user reads and writes, its group reads, others nothing
JOURNAL_MODE = 0o640


class JournalError(Exception):
    """The journal cannot be written; its str is the one message to show the user."""


class _SecondCache:
    """
    The parts of a journal line that change once a second: the day's file name, and the
    local time and UTC offset. Formatting them is most of the cost of a line, and a busy
    server writes hundreds of lines a second.
    """

    __slots__ = ("_entry",)

    def __init__(self) -> None:
        # (whole second, file name, "YYYY-MM-DDTHH:MM:SS", "+HH:MM"), replaced in one
        # assignment, so that a thread logging at the same time never sees half of it.
        self._entry: tuple[int, str, str, str] = (-(2**63), "", "", "")

    def __call__(self, second: int) -> tuple[int, str, str, str]:
        entry = self._entry
        if entry[0] != second:
            stamp = datetime.fromtimestamp(second).astimezone().isoformat(timespec="seconds")
            name = time.strftime("%d-%m-%Y.log", time.localtime(second))
            entry = self._entry = (second, name, stamp[:19], stamp[19:])
        return entry


_seconds = _SecondCache()


def _split(when: float) -> tuple[int, int]:
    """Whole seconds and microseconds, rounded as `datetime.fromtimestamp` rounds them."""
    fraction, whole = math.modf(when)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        return int(whole) + 1, micros - 1_000_000
    if micros < 0:
        return int(whole) - 1, micros + 1_000_000
    return int(whole), micros


def journal_file_name(when: float) -> str:
    """The journal file for the local date at `when` (seconds since the epoch)."""
    return _seconds(math.floor(when))[1]


def local_timestamp(when: float) -> str:
    """ISO 8601 local time with milliseconds and the UTC offset in force at `when`."""
    second, micros = _split(when)
    _, _, clock, offset = _seconds(second)
    return f"{clock}.{micros // 1000:03d}{offset}"


def _escape_char(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _format_text(text: str) -> str:
    if "=" in text or "://" in text:
        # A Referer or any other URL or header value may carry `password=` (a login by
        # query) or userinfo: masked in every field, not only in the request's path.
        text = mask_text(text)
    if text and text.isprintable() and _NEEDS_QUOTES.search(text) is None:
        return text
    return '"' + "".join(_escape_char(c) for c in text) + '"'


#: formatted field names and short string values, which repeat from line to line (the
#: same few names, methods, paths, addresses)
_formatted = BoundedMemo(_format_text, entries=4096, longest=256, size=len)


def format_value(value: object) -> str:
    """One field value as the journal writes it: bare when safe, else quoted and escaped."""
    if type(value) is not str:
        return _format_text("-" if value is None else str(value))
    return _formatted(value)


def _value_text(value: object) -> str:
    """format_value, with its common cases first: a busy server writes a line a request."""
    if type(value) is str:
        return _formatted.known.get(value) or _formatted(value)
    if type(value) is int or type(value) is float:
        # digits, ".", "-", "e", "inf", "nan": never quoted (see _format_text)
        return str(value)
    return format_value(value)


def format_fields(fields: Iterable[tuple[str, object]]) -> str:
    """`key=value` pairs, space-separated, in the order given."""
    return " ".join([f"{_value_text(key)}={_value_text(value)}" for key, value in fields])


def format_event(event: Mapping[str, Any], when: float) -> str | None:
    """
    The journal text for one log event (with a trailing newline), or None if the journal
    does not keep it. A failure's traceback follows on indented lines.
    """
    level = event.get("log_level", LogLevel.info)
    name = event.get("spy_event")
    if name is not None:
        fields: Mapping[str, object] = event.get("spy_fields") or {}
        pairs: Collection[tuple[str, object]] = fields.items()
    elif level in _WARN_OR_WORSE:
        name = TWISTED_EVENT
        pairs = [
            ("namespace", event.get("log_namespace", "-")),
            ("message", formatEvent(dict(event))),
        ]
    else:
        return None
    # The level and event name, as written, and the time: each made once and reused.
    head = _heads.get((level, name))
    if head is None:
        level_name = level.name if level in _LEVELS else str(level)
        head = f" {level_name} {format_value(name)}"
        if len(_heads) < 256:
            _heads[level, name] = head
    second, micros = _split(when)
    entry = _seconds(second)
    line = (
        f"{entry[2]}.{micros // 1000:03d}{entry[3]}{head} {format_fields(pairs)}\n"
        if pairs
        else f"{entry[2]}.{micros // 1000:03d}{entry[3]}{head}\n"
    )
    failure = event.get("log_failure")
    if failure is not None and isinstance(failure, Failure):
        line += "".join(f"  {row}\n" for row in failure.getTraceback().splitlines())
    return line


#: (level, event name) -> " level event", as a line writes them after the time
_heads: dict[tuple[object, str], str] = {}


@implementer(ILogObserver)
class JournalObserver:
    """
    Writes the journal into `log_dir`, one file a local day.

    The event is stamped with `now()` when the observer receives it (observers are called
    while the event is emitted), and that instant also picks the day's file: a test moves
    `now` across midnight instead of waiting for it.

    With a `clock` (the reactor), the lines of one reactor turn are gathered and written
    in one write(2) when the turn ends, as a busy server writes a line a request; a
    write(2) each cost a system call per line. The batch is written at once when it
    reaches BATCH_BYTES, when a line belongs to another day's file, before an error-level
    event (with it), for an event from another thread, and by `flush` and `close`. So a
    clean stop loses nothing, and a crash at most the lines of the turn it ends. Without
    a clock every event is written as it comes.
    """

    def __init__(
        self,
        log_dir: Path,
        mode: LogMode,
        *,
        now: Callable[[], float] = time.time,
        stderr: TextIO | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.mode = mode
        self._now = now
        self._stderr = stderr
        #: events lost because the journal could not be written (a full or read-only disk)
        self.dropped = 0
        self._dropped_since_written = 0
        # Twisted may deliver events from other threads (a Logger used in a worker thread).
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._file_name: str | None = None
        self._closed = False
        self._clock = clock
        # The thread that runs the reactor: the only one whose lines wait for a turn's end.
        self._reactor_thread = threading.get_ident()
        # Lines not yet written, all for the file `_batch_name`, the time of the first, and
        # the call that writes them at the end of the turn.
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._batch_name = ""
        self._batch_when = 0.0
        self._batch_call: IDelayedCall | None = None

    @property
    def path(self) -> Path | None:
        """The file being written, if one is open."""
        return None if self._file_name is None else self.log_dir / self._file_name

    def open_today(self) -> None:
        """Open (or create) the current day's file; raises JournalError if it cannot."""
        with self._lock:
            self._switch_to(journal_file_name(self._now()))

    def _switch_to(self, name: str) -> None:
        if name == self._file_name and self._fd is not None:
            return
        path = self.log_dir / name
        try:
            # O_APPEND and no buffer in this process beyond one turn's batch: each batch
            # is in the kernel's hands as soon as it is written, and every write lands at
            # the end of the file (open(2)).
            # O_NOFOLLOW: a symlink planted under the day's name is refused, not followed
            # (open(2)); 0640, as the journal names clients and users (docs/security.md).
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
            fd = os.open(path, flags, JOURNAL_MODE)
            if os.fstat(fd).st_mode & 0o777 & ~JOURNAL_MODE:
                os.fchmod(fd, JOURNAL_MODE)  # a file made by an older, laxer version
        except OSError as e:
            raise JournalError(
                f"cannot write the journal in {self.log_dir}: {e.strerror or e}"
            ) from None
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._file_name = fd, name

    def keeps(self, name: str, level: LogLevel = LogLevel.info) -> bool:
        """
        Whether events called `name` are written: short mode leaves out the verbose-only
        events and debug detail (such as every anonymous login while Security is off).
        """
        return not (self.mode == "short" and (name in VERBOSE_ONLY or level is LogLevel.debug))

    def __call__(self, event: Mapping[str, Any]) -> None:
        if event.get(_ALREADY_JOURNALLED):
            return
        name = event.get("spy_event")
        if name is not None and not self.keeps(name, event.get("log_level", LogLevel.info)):
            return
        when = self._now()
        text = format_event(event, when)
        if text is None:
            return
        data = text.encode("utf-8", "backslashreplace")
        # The day's file (format_event has just made this second's entry).
        urgent = event.get("log_level") in _ERROR_OR_WORSE
        self._add(data, journal_file_name(when), when, urgent=urgent)

    def prepare(self, name: str, keys: Sequence[str]) -> Callable[..., None]:
        """
        A writer of the info event `name` with the fields `keys`, called with their values
        in that order: the line `events.record` gives, made without an event dict passing
        through twisted.logger, for the event of every request (docs/performance.md).

        The text of all fields but the last is kept for values that repeat (the same
        client asking the same path gets the same answer), so each field must always be
        given values of one type: 1 and True are equal keys, but written differently.
        """
        if not self.keeps(name):
            return _write_nothing
        head = f" {LogLevel.info.name} {format_value(name)}"
        prefixes = [f" {format_value(key)}=" for key in keys]
        last = prefixes.pop() if prefixes else ""
        leading_texts: dict[tuple[object, ...], str] = {}

        def write(*values: object) -> None:
            when = self._now()
            second, micros = _split(when)
            entry = _seconds(second)
            leading = values[:-1]
            text = leading_texts.get(leading)
            if text is None:
                if len(values) != len(keys):
                    raise TypeError(f"{name} takes {len(keys)} values, not {len(values)}")
                text = "".join(map(str.__add__, prefixes, map(_value_text, leading))) + last
                if len(text) <= LEADING_LONGEST:
                    if len(leading_texts) >= LEADING_ENTRIES:
                        leading_texts.clear()
                    leading_texts[leading] = text
            line = f"{entry[2]}.{micros // 1000:03d}{entry[3]}{head}{text}"
            if values:
                line += _value_text(values[-1])
            self._add((line + "\n").encode("utf-8", "backslashreplace"), entry[1], when)

        return write

    def _add(self, data: bytes, name: str, when: float, *, urgent: bool = False) -> None:
        """Gather a line for the day's file `name`; write it now with the gathered ones
        if the batch is full, `urgent` (an error), or there is no batching."""
        complaint = None
        with self._lock:
            if self._closed:
                return
            if self._batch and name != self._batch_name:
                # A line goes to the file of its own day: the day's last lines go first.
                complaint = self._write_batch()
            if not self._batch:
                self._batch_name, self._batch_when = name, when
            self._batch.append(data)
            self._batch_bytes += len(data)
            if (
                self._clock is None
                or self._batch_bytes >= BATCH_BYTES
                or urgent
                or threading.get_ident() != self._reactor_thread
            ):
                complaint = self._write_batch() or complaint
            elif self._batch_call is None:
                self._batch_call = self._clock.callLater(0, self.flush)
        self._complain(complaint)

    def flush(self) -> None:
        """Write the lines gathered so far."""
        with self._lock:
            complaint = self._write_batch()
        self._complain(complaint)

    def _write_batch(self) -> str | None:
        """Write the batch in one write(2) (with the lock held); what to tell the user."""
        call, self._batch_call = self._batch_call, None
        if call is not None and call.active():
            call.cancel()
        if not self._batch:
            return None
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        try:
            self._switch_to(self._batch_name)
            assert self._fd is not None
            if self._dropped_since_written:
                batch.insert(0, self._dropped_line(self._batch_when).encode())
            _write_all(self._fd, b"".join(batch))
        except (OSError, JournalError) as e:
            # A full or read-only disk must not stop the server: the events are dropped
            # and counted, the person running it told once, and the file opened again for
            # the next batch (it may be writable again by then).
            return self._drop(e, len(batch) - (1 if self._dropped_since_written else 0))
        self._dropped_since_written = 0
        return None

    def _complain(self, complaint: str | None) -> None:
        if complaint is not None:
            # Outside the lock: under twistd, sys.stderr is a log observer's file, and what
            # is written to it comes straight back here as an event.
            stderr = self._stderr or sys.stderr
            with contextlib.suppress(OSError, ValueError):
                stderr.write(complaint)
                stderr.flush()

    def _drop(self, error: Exception, events: int) -> str | None:
        """Count lost events; the line to tell the user, for the first of a run of them."""
        first = self._dropped_since_written == 0
        self.dropped += events
        self._dropped_since_written += events
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd, self._file_name = None, None
        if not first:
            return None
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        return (
            f"twistedspy: cannot write the journal in {self.log_dir}: {reason};"
            " events are dropped (and counted) until it can\n"
        )

    def _dropped_line(self, when: float) -> str:
        pairs = [("dropped", self._dropped_since_written), ("total_dropped", self.dropped)]
        return f"{local_timestamp(when)} warn journal-gap {format_fields(pairs)}\n"

    def close(self) -> None:
        """Write what is gathered and close the file; events after this are dropped."""
        with self._lock:
            complaint = self._write_batch()
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        self._complain(complaint)


def _write_nothing(*values: object) -> None:
    """The writer of an event the journal leaves out."""


def _write_all(fd: int, data: bytes) -> None:
    # write(2) to a regular file writes everything or fails, but may in principle stop
    # short (a signal, a full disk on the last block): finish the event, never drop part.
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@implementer(ILogObserver)
class JournalRoute:
    """
    The observer for the server's own `Logger`: journal events go straight to the journal.

    Through the global publisher every request line would also reach twistd's log observer:
    as much work again as the journal line, for a copy nobody reads. Journal events at warn
    level or above (started as root, a module's failure and its traceback) still go on to the
    global publisher with their fields, so that twistd's log shows them in full too; everything
    else the server logs goes there unchanged.
    """

    def __init__(
        self,
        journal: Callable[[dict[str, Any]], None],
        publisher: Callable[[dict[str, Any]], None],
    ) -> None:
        self._journal = journal
        self._publisher = publisher

    def keeps(self, name: str, level: LogLevel = LogLevel.info) -> bool:
        """
        Whether a journal event called `name` goes anywhere: events below warn level go to
        the journal alone, so if it leaves them out, nobody reads them.
        """
        keeps: Callable[[str, LogLevel], bool] | None = getattr(self._journal, "keeps", None)
        return keeps is None or keeps(name, level)

    def prepare(self, name: str, keys: Sequence[str]) -> Callable[..., None] | None:
        """The journal's writer of the info event `name` (JournalObserver.prepare): such
        events go to the journal alone."""
        prepare: Callable[[str, Sequence[str]], Callable[..., None]] | None = getattr(
            self._journal, "prepare", None
        )
        return None if prepare is None else prepare(name, keys)

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("spy_event") is None:
            self._publisher(event)
            return
        self._journal(event)
        if event.get("log_level", LogLevel.info) in _WARN_OR_WORSE:
            self._publisher(for_twistd_log(event))


def for_twistd_log(event: Mapping[str, Any]) -> dict[str, Any]:
    """
    A journal event as twistd's log observer should show it: the event name and its
    `key=value` fields, as the journal line has them (the event's own format names only
    the event). Marked, so that the journal (also a global observer) does not write it twice.
    """
    fields: Mapping[str, object] = event.get("spy_fields") or {}
    return {
        **event,
        "log_format": "{spy_event} {spy_text}",
        "spy_text": format_fields(fields.items()),
        _ALREADY_JOURNALLED: True,
    }


def open_journal(
    log_dir: Path,
    mode: LogMode,
    *,
    now: Callable[[], float] = time.time,
    clock: IReactorTime | None = None,
) -> JournalObserver:
    """
    A journal writing into `log_dir`, created if missing, with today's file already open.

    Raises JournalError (e.g. `cannot write the journal in /x/logs: Permission denied`) when
    the folder cannot be made or written, so that start-up stops before anything listens.
    """
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise JournalError(
            f"cannot write the journal in {log_dir}: it exists and is not a folder"
        ) from None
    except OSError as e:
        raise JournalError(f"cannot write the journal in {log_dir}: {e.strerror or e}") from None
    journal = JournalObserver(log_dir, mode, now=now, clock=clock)
    journal.open_today()
    return journal
