# -*- test-case-name: tests.test_message -*-
"""The `message` module: a form whose text the server appends to MessageFile, durably.

The file is JSON Lines (one object a line: time, client, user, text), so that a torn
write can only ever damage its own last line. The rules that keep it whole:

- one append at a time: every append (and the first read) waits its turn on a
  `DeferredLock`, then runs in the service's thread pool, so the reactor never waits for
  the disk and two records never interleave;
- each record is written as one buffer ending in a newline, then fsync'd (and the folder
  too when the file is new) before the client hears "stored" (fsync(2));
- a line without its newline, or one that is not a record, is what a power cut or a full
  disk leaves: it is skipped when reading and journalled once, and the next append
  writes a newline first so that it starts on a line of its own.

Reading: the page shows the latest `RECENT` messages, kept in memory. They are loaded
once, from the file's tail only (64 KiB, growing to at most 4 MiB until it holds
`RECENT` records), and each stored message is added to them after its fsync. So a page
never reads the whole file, however large it grows, and no page read can meet a line
half-written by our own writer. The file belongs to the server while it runs: records
added to it by anything else are seen at the next start.
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote_to_bytes

from twisted.internet.defer import Deferred, DeferredLock, succeed
from twisted.logger import Logger, LogLevel
from twisted.plugin import IPlugin
from zope.interface import implementer

from twistedspy.context import BlockingRunner, ModuleContext
from twistedspy.events import record
from twistedspy.interfaces import IFormModule, IInfoModule, IModuleFactory, IReactorSafe
from twistedspy.query import Query, Submission
from twistedspy.report import Column, Committed, Form, Page, PageError, Report, Table

#: how many messages the page shows, newest first
RECENT = 50
#: the first tail read at start-up, and the most it may grow to
TAIL_FIRST = 64 * 1024
TAIL_MOST = 4 * 1024 * 1024
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
FIELD = "text"
FORM = Form(action="/message", field=FIELD, label="Your message", button="Send")


@dataclass(frozen=True, slots=True)
class Message:
    """One stored message, as its line in MessageFile says."""

    time: str
    client: str
    user: str | None
    text: str

    def line(self) -> bytes:
        """The record as one line. JSON escapes every newline inside the text, so the
        only 0x0A byte is the terminator; UTF-8 as it is, so the file reads as posted."""
        record = {"time": self.time, "client": self.client, "user": self.user, "text": self.text}
        return json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"

    @classmethod
    def from_line(cls, raw: bytes) -> Message | None:
        """The record a line holds, or None for a line that is not one (torn, edited)."""
        try:
            value = json.loads(raw)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError both are
            return None
        if not isinstance(value, dict):
            return None
        time, client, user, text = (value.get(k) for k in ("time", "client", "user", "text"))
        if not (isinstance(time, str) and isinstance(client, str) and isinstance(text, str)):
            return None
        if user is not None and not isinstance(user, str):
            return None
        return cls(time, client, user, text)


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A line of MessageFile that holds no record: where it starts, and why."""

    offset: int
    why: str


@dataclass(frozen=True, slots=True)
class Tail:
    """The last records of MessageFile, oldest first, and the bad lines met on the way."""

    messages: tuple[Message, ...]
    unreadable: tuple[Unreadable, ...]
    #: the file ends inside a line (no final newline)
    torn_end: bool


def _lines(data: bytes, base: int) -> Iterator[tuple[int, bytes, bool]]:
    """(offset, line, terminated) for each line of `data`, which starts at file offset
    `base` on a line boundary. Split on b"\\n" only: str.splitlines would also split on
    U+2028 and other characters that JSON leaves unescaped inside a text."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end < 0:
            yield base + start, data[start:], False
            return
        yield base + start, data[start:end], True
        start = end + 1


def read_tail(path: Path, count: int = RECENT) -> Tail:
    """The last `count` records of the file (blocking: run it in a thread)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return Tail((), (), torn_end=False)
    with os.fdopen(fd, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        window = TAIL_FIRST
        while True:
            start = max(0, size - window)
            # One byte more, to learn whether `start` is at the beginning of a line.
            file.seek(max(0, start - 1))
            data = file.read(size - max(0, start - 1))
            base = max(0, start - 1)
            if start > 0:
                first = data.find(b"\n")
                data = data[first + 1 :] if first >= 0 else b""
                base += first + 1 if first >= 0 else 0
            messages: list[Message] = []
            unreadable: list[Unreadable] = []
            torn_end = False
            for offset, line, terminated in _lines(data, base):
                if not terminated:
                    torn_end = True
                    unreadable.append(Unreadable(offset, "the file ends inside this line"))
                    continue
                if not line.strip():
                    continue
                message = Message.from_line(line)
                if message is None:
                    unreadable.append(Unreadable(offset, "not a message record"))
                else:
                    messages.append(message)
            if len(messages) >= count or start == 0 or window >= TAIL_MOST:
                return Tail(tuple(messages[-count:]), tuple(unreadable), torn_end)
            window *= 4


class MessageFileFull(PageError):
    """MessageMaxBytes reached: the new message is refused, every stored one is kept."""

    status = 507  # Insufficient Storage (RFC 4918 §11.5)

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"The message file is full ({size:,} of {limit:,} bytes): your message was not stored."
        )


def append_line(path: Path, line: bytes, max_bytes: int | None = None) -> bool:
    """
    Append one whole line and make it durable (blocking: run it in a thread). Returns
    whether the file ended inside a line, which then got a newline first so the new
    record starts on its own line. MessageFileFull if the file would grow past
    `max_bytes`.
    """
    created = not path.exists()
    # O_APPEND: every write lands at the current end; O_NOFOLLOW: a symlink put in the
    # file's place is refused, not written through (open(2)).
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = os.open(path, flags, 0o600)
    try:
        size = os.fstat(fd).st_size
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        data = memoryview(b"\n" + line if torn else line)
        if max_bytes is not None and size + len(data) > max_bytes:
            raise MessageFileFull(size, max_bytes)
        while data:
            # write(2) may write less than asked (a full disk, a signal): go on from there.
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        # A new file's name is durable only once its folder is (fsync(2), NOTES).
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return torn


class _Turn:
    """One append's place in the queue: given up by its client, or its write begun."""

    __slots__ = ("abandoned", "begun")

    def __init__(self) -> None:
        self.abandoned = False
        self.begun = False

    def abandon(self) -> None:
        self.abandoned = True


class WriteBegun(Exception):
    """An append cancelled too late to give up: `written` fires once it is on disk."""

    def __init__(self, written: Deferred[None]) -> None:
        super().__init__("the write had begun")
        self.written = written


class MessageStore:
    """MessageFile, appended to one record at a time, with its latest records in memory."""

    def __init__(
        self,
        path: Path,
        run_blocking: BlockingRunner,
        log: Logger,
        keep: int = RECENT,
        max_bytes: int | None = None,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._run_blocking = run_blocking
        self._log = log
        self._keep = keep
        self._lock = DeferredLock()
        self._recent: deque[Message] | None = None
        self._torn_end_reported = False

    def latest(self) -> Deferred[list[Message]]:
        """The latest messages, newest first."""
        if self._recent is not None:
            return succeed(list(reversed(self._recent)))
        return self._lock.run(lambda: Deferred.fromCoroutine(self._latest()))

    def append(self, message: Message) -> Deferred[None]:
        """
        Store one message; fires once it is on disk.

        Cancelling (ModuleTimeout does) gives up the message if its turn has not come
        yet (CancelledError). A write already begun is never abandoned: it completes
        whole, the lock stays held until it has, so the next append cannot start inside
        it, and the cancelled caller gets WriteBegun, to wait for it.
        """
        turn = _Turn()
        late: list[Deferred[None]] = []

        def cancel(answer: Deferred[None]) -> None:
            if not turn.begun:
                turn.abandon()
                return
            written: Deferred[None] = Deferred()
            late.append(written)
            answer.errback(WriteBegun(written))

        answer: Deferred[None] = Deferred(cancel)
        work = self._lock.run(lambda: Deferred.fromCoroutine(self._append(message, turn)))

        def settle(result: object) -> None:
            for waiter in (answer, *late):
                if not waiter.called:
                    waiter.callback(result)  # type: ignore[arg-type]  # a Failure errbacks

        work.addBoth(settle)
        return answer

    # Both below run holding the lock.

    async def _latest(self) -> list[Message]:
        recent = await self._load()
        return list(reversed(recent))

    async def _load(self) -> deque[Message]:
        if self._recent is None:
            tail = await self._run_blocking(read_tail, self.path, self._keep)
            for line in tail.unreadable:
                record(
                    self._log,
                    "message-file",
                    LogLevel.warn,
                    file=str(self.path),
                    offset=line.offset,
                    skipped=line.why,
                )
            self._torn_end_reported = tail.torn_end
            self._recent = deque(tail.messages, maxlen=self._keep)
        return self._recent

    async def _append(self, message: Message, turn: _Turn) -> None:
        recent = await self._load()
        if turn.abandoned:
            return
        turn.begun = True
        torn = await self._run_blocking(append_line, self.path, message.line(), self.max_bytes)
        if torn and not self._torn_end_reported:
            # A write of ours that failed half-way (a full disk), or another writer.
            record(
                self._log,
                "message-file",
                LogLevel.warn,
                file=str(self.path),
                skipped="the file ended inside a line; the next record starts after it",
            )
        self._torn_end_reported = False
        recent.append(message)


def media_type_accepted(content_type: str) -> bool:
    """`application/x-www-form-urlencoded`, with no charset or UTF-8 (RFC 9110 §8.3.1:
    type and parameter names are case-insensitive, a value may be quoted)."""
    media, *parameters = content_type.split(";")
    if media.strip().lower() != FORM_MEDIA_TYPE:
        return False
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            return False
    return True


def form_fields(body: bytes) -> list[tuple[str, str]]:
    """
    The name/value pairs of a urlencoded body (WHATWG URL, "application/x-www-form-
    urlencoded parsing"), decoded as strict UTF-8. urllib's parse_qsl cannot take bytes
    with non-ASCII text, so the few steps are done here.
    """
    fields = []
    for part in body.split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        try:
            fields.append(
                (
                    unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8"),
                    unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8"),
                )
            )
        except UnicodeDecodeError:
            raise PageError("The form is not valid UTF-8.", 400) from None
    return fields


def posted_text(submission: Submission) -> str:
    """The one `text` field of a post, or the PageError that says what is wrong."""
    if not media_type_accepted(submission.content_type):
        raise PageError(
            f"Post the form as {FORM_MEDIA_TYPE} in UTF-8, "
            f"not {submission.content_type or 'without a Content-Type'}.",
            415,
        )
    texts = [value for name, value in form_fields(submission.body) if name == FIELD]
    if not texts:
        raise PageError(f"The form has no {FIELD!r} field.", 400)
    if len(texts) > 1:
        raise PageError(f"The form has more than one {FIELD!r} field.", 400)
    if not texts[0].strip():
        raise PageError("The message is empty.", 400)
    return texts[0]


class PostRate:
    """
    At most `per_minute` posts a minute from one client address, as a token bucket: a
    burst of `per_minute`, then one more every 60 / `per_minute` seconds. Only recent
    posters are remembered: past `TRACKED` addresses, those whose bucket is full again
    are forgotten, then, if a flood of addresses leaves too many, the oldest.
    """

    TRACKED = 65536

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self._burst = float(per_minute)
        self._interval = 60.0 / per_minute
        self._clock = clock
        #: client -> (tokens left, when counted)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, client: str) -> int | None:
        """One post from `client`: None if it may, else the whole seconds to wait."""
        now = self._clock()
        tokens, then = self._buckets.get(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - then) / self._interval)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            return max(1, math.ceil((1 - tokens) * self._interval))
        self._buckets[client] = (tokens - 1, now)
        if len(self._buckets) > self.TRACKED:
            self._forget(now)
        return None

    def _forget(self, now: float) -> None:
        self._buckets = {
            client: (tokens, then)
            for client, (tokens, then) in self._buckets.items()
            if tokens + (now - then) / self._interval < self._burst
        }
        if len(self._buckets) > self.TRACKED // 2:
            newest = sorted(self._buckets.items(), key=lambda item: item[1][1])
            self._buckets = dict(newest[-(self.TRACKED // 2) :])


# Reactor-safe: returns a Deferred; file reads and writes go to run_blocking, in turn.
@implementer(IFormModule, IReactorSafe)
class MessageModule:
    name = "message"
    title = "Message"
    description = "Leave a message: the server stores it in its message file."

    def __init__(
        self,
        store: MessageStore,
        clock: Callable[[], float],
        show_user: bool,
        rate: PostRate | None = None,
    ) -> None:
        self.store = store
        self._clock = clock
        self._show_user = show_user
        self._rate = rate

    def _columns(self) -> list[str | Column]:
        columns: list[str | Column] = ["time", "client"]
        if self._show_user:
            columns.append("user")
        return [*columns, "text"]

    def _rows(self, messages: Sequence[Message]) -> list[list[str | None]]:
        rows = []
        for message in messages:
            row: list[str | None] = [message.time, message.client]
            if self._show_user:
                row.append(message.user)
            rows.append([*row, message.text])
        return rows

    def collect(self, query: Query) -> Deferred[Page]:
        return Deferred.fromCoroutine(self._collect())

    async def _collect(self) -> Page:
        messages = await self.store.latest()
        return Report(
            title="Message",
            notes=[f"Write a message and send it: it is stored in {self.store.path.name}."],
            form=FORM,
            tables=[Table("Latest messages", self._columns(), self._rows(messages))],
        )

    def submit(self, submission: Submission) -> Deferred[Page]:
        # Check the post before waiting for the lock: a refusal costs no disk turn.
        wait = None if self._rate is None else self._rate.take(submission.client)
        if wait is not None:
            raise PageError(
                f"Too many messages from your address; try again in {wait} seconds.",
                429,
                (("Retry-After", str(wait)),),
            )
        text = posted_text(submission)
        stamp = datetime.fromtimestamp(self._clock()).astimezone()
        message = Message(
            time=stamp.isoformat(timespec="milliseconds"),
            client=submission.client,
            user=submission.user,
            text=text,
        )
        return Deferred.fromCoroutine(self._submit(message))

    async def _submit(self, message: Message) -> Page:
        try:
            await self.store.append(message)
        except WriteBegun as late:
            # ModuleTimeout came while the message was being written: the client gets
            # the page saying it was stored, once it is, rather than 504.
            stored = late.written.addCallback(lambda _: self._stored(message))
            raise Committed(stored) from None
        return self._stored(message)

    def _stored(self, message: Message) -> Page:
        return Report(
            title="Message stored",
            notes=[f"Your message was stored at {message.time}."],
            form=FORM,
            tables=[Table("Stored", self._columns(), self._rows([message]))],
            summary={"stored": True, "time": message.time, "bytes": len(message.text.encode())},
        )


@implementer(IPlugin, IModuleFactory)
class MessageFactory:
    name = "message"

    def build(self, context: ModuleContext) -> IInfoModule:
        settings = context.settings
        store = MessageStore(
            settings.message_file,
            context.run_blocking,
            context.log,
            max_bytes=settings.message_max_bytes,
        )
        rate = PostRate(settings.message_rate, context.reactor.seconds)
        return MessageModule(store, context.reactor.seconds, settings.security, rate)
