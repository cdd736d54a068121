# -*- test-case-name: tests.test_message -*-
"""The message module over a real socket: the form, storing, refusals, torn lines, shutdown."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import bcrypt
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, DeferredList
from twisted.internet.task import Clock, deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from tests import servers
from tests.browser import chromium
from tests.servers import Reply, RunningServer, start_server
from twistedspy.auth import make_gatekeeper
from twistedspy.dispatch import Dispatcher
from twistedspy.http.parser import RequestParser
from twistedspy.http.response import Outcome
from twistedspy.modules.message import (
    Message,
    MessageModule,
    MessageStore,
    PostRate,
    WriteBegun,
    append_line,
    form_fields,
    media_type_accepted,
    read_tail,
)
from twistedspy.query import Query
from twistedspy.render import Renderer
from twistedspy.report import Form, PageContext, PageError, Report
from twistedspy.settings import Settings

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def form_body(text: str) -> bytes:
    return urlencode({"text": text}).encode("ascii")


def records(path: Path) -> list[dict[str, Any]]:
    """Every line of the file as JSON; fails on any line that is not whole."""
    data = path.read_bytes()
    assert data.endswith(b"\n"), data[-80:]
    return [json.loads(line) for line in data.split(b"\n")[:-1]]


class FormTests(TestCase):
    async def test_get_shows_the_form(self) -> None:
        server = start_server(self)
        reply = await server.request("GET", "/message")
        self.assertEqual(reply.status, 200)
        self.assertIn(b'<form class="post" method="post" action="/message"', reply.body)
        self.assertIn(b'<textarea id="field-text" name="text"', reply.body)
        self.assertIn(b'<button type="submit">Send</button>', reply.body)
        self.assertIn("form-action 'self'", reply.header("Content-Security-Policy"))

    async def test_json_get_has_no_form(self) -> None:
        server = start_server(self)
        reply = await server.request("GET", "/message?format=json")
        document = json.loads(reply.body)
        self.assertEqual(document["module"], "message")
        self.assertEqual(document["tables"][0]["rows"], [])
        self.assertNotIn("form", document)

    async def test_listed_on_the_index(self) -> None:
        server = start_server(self)
        reply = await server.request("GET", "/")
        self.assertIn(b'href="/message"', reply.body)


class StoreTests(TestCase):
    async def test_post_is_stored_byte_exact_and_shown_escaped(self) -> None:
        server = start_server(self)
        text = "Grüße, 世界 😀 <script>alert('x')</script> & \"quoted\"\r\nsecond line\u2028"
        reply = await server.request("POST", "/message", FORM, form_body(text))
        self.assertEqual(reply.status, 200, reply.body)
        self.assertIn(b"Your message was stored", reply.body)

        path = server.service.settings.message_file
        [stored] = records(path)
        self.assertEqual(stored["text"], text)
        self.assertEqual(stored["client"], "127.0.0.1")
        self.assertIsNone(stored["user"])
        # The UTF-8 bytes as posted, not \u escapes.
        self.assertIn("Grüße, 世界 😀 <script>".encode(), path.read_bytes())

        page = await server.request("GET", "/message")
        self.assertIn(b"&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;", page.body)
        self.assertNotIn(b"<script>alert", page.body)
        self.assertIn("Grüße, 世界 😀".encode(), page.body)
        self.assertIn(stored["time"].encode(), page.body)
        self.assertIn(b"127.0.0.1", page.body)

    async def test_json_answer_says_stored(self) -> None:
        server = start_server(self)
        reply = await server.request(
            "POST", "/message?format=json", FORM, form_body("from a script")
        )
        document = json.loads(reply.body)
        self.assertIs(document["stored"], True)
        self.assertEqual(document["bytes"], len(b"from a script"))
        [stored] = records(server.service.settings.message_file)
        self.assertEqual(document["time"], stored["time"])
        self.assertEqual(document["tables"][0]["rows"][0][-1], "from a script")

    async def test_charset_parameter_allowed(self) -> None:
        server = start_server(self)
        headers = {"Content-Type": 'Application/X-WWW-Form-Urlencoded; Charset="UTF-8"'}
        reply = await server.request("POST", "/message", headers, form_body("ok"))
        self.assertEqual(reply.status, 200)

    async def test_newest_first(self) -> None:
        server = start_server(self)
        for text in ("first", "second", "third"):
            reply = await server.request("POST", "/message", FORM, form_body(text))
            self.assertEqual(reply.status, 200)
        page = await server.request("GET", "/message?format=json")
        rows = json.loads(page.body)["tables"][0]["rows"]
        self.assertEqual([row[-1] for row in rows], ["third", "second", "first"])

    async def test_user_stored_and_shown_when_security_is_on(self) -> None:
        folder = Path(self.mktemp())
        folder.mkdir()
        accounts = folder / "accounts"
        hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
        accounts.write_text(f"alice:{hashed}\n")
        server = start_server(self, security=True, account_file=accounts)
        reply = await server.request(
            "POST", "/message?login=alice&password=pw", FORM, form_body("hello")
        )
        self.assertEqual(reply.status, 200, reply.body)
        [stored] = records(server.service.settings.message_file)
        self.assertEqual(stored["user"], "alice")
        page = await server.request("GET", "/message?login=alice&password=pw&format=json")
        document = json.loads(page.body)
        self.assertEqual(document["tables"][0]["columns"], ["time", "client", "user", "text"])
        self.assertEqual(document["tables"][0]["rows"][0][2:], ["alice", "hello"])

    async def test_fifty_concurrent_posts_fifty_whole_records(self) -> None:
        server = start_server(self, message_rate=50)
        # Large texts: if two appends interleaved, lines would be broken.
        texts = [f"{n:02d}:" + chr(0x400 + n) * 8000 for n in range(50)]
        posts = [server.request("POST", "/message", FORM, form_body(t)) for t in texts]
        results = await DeferredList(posts, fireOnOneErrback=True)
        self.assertEqual([reply.status for _, reply in results], [200] * 50)
        stored = records(server.service.settings.message_file)
        self.assertEqual(sorted(r["text"] for r in stored), sorted(texts))
        page = await server.request("GET", "/message?format=json")
        self.assertEqual(len(json.loads(page.body)["tables"][0]["rows"]), 50)

    async def test_largest_body_accepted(self) -> None:
        server = start_server(self)
        body = b"text=" + b"a" * (65536 - 5)
        reply = await server.request("POST", "/message", FORM, body)
        self.assertEqual(reply.status, 200)
        [stored] = records(server.service.settings.message_file)
        self.assertEqual(len(stored["text"]), 65531)


class RefusalTests(TestCase):
    async def assert_refused(
        self, server: RunningServer, status: int, reply: Reply, allow: str | None = None
    ) -> None:
        self.assertEqual(reply.status, status, reply.body)
        if allow is not None:
            self.assertEqual(reply.header("Allow"), allow)
        self.assertFalse(server.service.settings.message_file.exists())

    async def test_wrong_media_type_is_415(self) -> None:
        server = start_server(self)
        for content_type in (
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/json",
            "application/x-www-form-urlencoded; charset=iso-8859-1",
        ):
            headers = {"Content-Type": content_type}
            reply = await server.request("POST", "/message", headers, b"text=hi")
            await self.assert_refused(server, 415, reply)
        reply = await server.request("POST", "/message", {}, b"text=hi")
        await self.assert_refused(server, 415, reply)

    async def test_empty_or_missing_text_is_400(self) -> None:
        server = start_server(self)
        for body in (b"text=", b"text=+%20%0D%0A", b"other=1", b"", b"text=a&text=b"):
            reply = await server.request("POST", "/message", FORM, body)
            await self.assert_refused(server, 400, reply)

    async def test_invalid_utf8_is_400(self) -> None:
        server = start_server(self)
        reply = await server.request("POST", "/message", FORM, b"text=%FF%FE")
        await self.assert_refused(server, 400, reply)

    async def test_body_over_64_kib_is_413_before_it_is_read(self) -> None:
        server = start_server(self)
        # Only the head is sent: the answer comes without the body being read.
        data = await server.exchange(
            b"POST /message HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 65537\r\n\r\ntext=abc"
        )
        self.assertTrue(data.startswith(b"HTTP/1.1 413 "), data[:100])
        self.assertIn(b"Connection: close", data)
        self.assertFalse(server.service.settings.message_file.exists())

    async def test_cross_site_is_403(self) -> None:
        server = start_server(self)
        for headers in (
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
            {"Origin": "http://evil.example"},
            {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
            {"Origin": "null"},  # a sandboxed frame or data: page on any site
        ):
            reply = await server.request("POST", "/message", {**FORM, **headers}, b"text=x")
            await self.assert_refused(server, 403, reply)

    async def test_own_origin_and_null_with_same_origin_are_accepted(self) -> None:
        server = start_server(self)
        for headers in (
            {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
            {"Origin": f"http://127.0.0.1:{server.port}"},
        ):
            reply = await server.request("POST", "/message", {**FORM, **headers}, b"text=x")
            self.assertEqual(reply.status, 200)
        self.assertEqual(len(records(server.service.settings.message_file)), 2)

    async def test_other_methods_are_405(self) -> None:
        server = start_server(self)
        for method in ("PUT", "DELETE", "PATCH"):
            reply = await server.request(method, "/message", FORM, b"text=x")
            await self.assert_refused(server, 405, reply, allow="GET, HEAD, POST")

    async def test_post_elsewhere_is_405(self) -> None:
        server = start_server(self)
        reply = await server.request("POST", "/version", FORM, b"text=x")
        self.assertEqual(reply.status, 405)
        self.assertEqual(reply.header("Allow"), "GET, HEAD")


class FormRenderingTests(TestCase):
    """The Form and summary a Report may carry, as the renderer shows them."""

    context = PageContext("host", [], 0.0)
    report = Report(
        title="T",
        form=Form(action="/x", field='f"<', label="<Label>", button="<Go>"),
        summary={"stored": True, "n": 3},
    )

    def test_html_shows_the_form_escaped(self) -> None:
        page = Renderer("host").html("x", self.report, Query(), self.context).body.decode()
        self.assertIn('<form class="post" method="post" action="/x"', page)
        self.assertIn('name="f&#34;&lt;"', page)
        self.assertIn("&lt;Label&gt;", page)
        self.assertIn("&lt;Go&gt;</button>", page)
        self.assertNotIn("stored", page)

    def test_json_has_the_summary_and_no_form(self) -> None:
        document = json.loads(Renderer("host").json("x", self.report, self.context).body)
        self.assertEqual((document["stored"], document["n"]), (True, 3))
        self.assertEqual(document["module"], "x")
        self.assertNotIn("form", document)

    def test_summary_may_not_replace_the_document_keys(self) -> None:
        with self.assertRaises(ValueError):
            Report(title="T", summary={"tables": 1})

    def test_no_form_no_form_tag(self) -> None:
        page = Renderer("host").html("x", Report("T"), Query(), self.context).body
        self.assertNotIn(b"<form", page)


class TornLineTests(TestCase):
    async def test_torn_last_line_skipped_journalled_once_and_closed(self) -> None:
        old = Message("2024-01-02T03:04:05.000+00:00", "192.0.2.7", None, "before the cut")
        folder = Path(self.mktemp())
        folder.mkdir()
        path = folder / "messages.jsonl"
        path.write_bytes(old.line() + b"not json at all\n" + b'{"time": "2024-01-02T03:0')
        server = start_server(self, message_file=path)

        for _ in range(2):
            page = await server.request("GET", "/message?format=json")
            self.assertEqual(page.status, 200)
            rows = json.loads(page.body)["tables"][0]["rows"]
            self.assertEqual([row[-1] for row in rows], ["before the cut"])
        html = await server.request("GET", "/message")
        self.assertEqual(html.status, 200)

        reply = await server.request("POST", "/message", FORM, form_body("after the cut"))
        self.assertEqual(reply.status, 200)
        lines = path.read_bytes().split(b"\n")
        self.assertEqual(lines[2], b'{"time": "2024-01-02T03:0')
        self.assertEqual(json.loads(lines[3])["text"], "after the cut")
        self.assertEqual(lines[4:], [b""])

        page = await server.request("GET", "/message?format=json")
        rows = json.loads(page.body)["tables"][0]["rows"]
        self.assertEqual([row[-1] for row in rows], ["after the cut", "before the cut"])
        journal = server.journal_text()
        self.assertEqual(journal.count("the file ends inside this line"), 1, journal)
        self.assertEqual(journal.count("not a message record"), 1, journal)
        self.assertNotIn("the next record starts after it", journal)

    async def test_torn_line_left_while_running_is_closed_and_journalled(self) -> None:
        server = start_server(self)
        path = server.service.settings.message_file
        reply = await server.request("POST", "/message", FORM, form_body("one"))
        self.assertEqual(reply.status, 200)
        with path.open("ab") as file:  # what a write cut short by a full disk leaves
            file.write(b'{"time": "20')
        reply = await server.request("POST", "/message", FORM, form_body("two"))
        self.assertEqual(reply.status, 200)
        lines = path.read_bytes().split(b"\n")
        self.assertEqual([json.loads(lines[i])["text"] for i in (0, 2)], ["one", "two"])
        self.assertEqual(server.journal_text().count("the next record starts after it"), 1)


class TailTests(TestCase):
    def test_tail_reads_only_the_end_of_a_large_file(self) -> None:
        path = Path(self.mktemp())
        filler = Message("t", "c", None, "x" * 1000).line()
        last = [Message("t", "c", None, f"last {n}").line() for n in range(3)]
        path.write_bytes(filler * 5000 + b"".join(last))  # about 5 MB
        tail = read_tail(path, count=3)
        self.assertEqual([m.text for m in tail.messages], ["last 0", "last 1", "last 2"])
        self.assertEqual(tail.unreadable, ())

    def test_tail_grows_until_it_has_enough(self) -> None:
        path = Path(self.mktemp())
        big = [Message("t", "c", None, f"{n}" + "y" * 40000).line() for n in range(10)]
        path.write_bytes(b"".join(big))
        tail = read_tail(path, count=10)
        self.assertEqual([m.text[0] for m in tail.messages], [str(n) for n in range(10)])

    def test_missing_file_is_empty(self) -> None:
        tail = read_tail(Path(self.mktemp()))
        self.assertEqual((tail.messages, tail.unreadable, tail.torn_end), ((), (), False))

    def test_media_types(self) -> None:
        self.assertTrue(media_type_accepted("application/x-www-form-urlencoded"))
        self.assertTrue(media_type_accepted("application/x-www-form-urlencoded;charset=utf8"))
        self.assertFalse(media_type_accepted("application/x-www-form-urlencoded-not"))
        self.assertFalse(media_type_accepted(""))

    def test_form_fields(self) -> None:
        body = b"text=" + quote("ü a+b", safe="").encode() + b"&x=1+2&&flag"
        self.assertEqual(form_fields(body), [("text", "ü a+b"), ("x", "1 2"), ("flag", "")])
        with self.assertRaises(PageError):
            form_fields(b"text=%C3")


class CancelTests(TestCase):
    async def test_cancelled_append_is_dropped_before_its_turn_and_whole_after(self) -> None:
        """ModuleTimeout cancels a post: one waiting its turn is not stored; one being
        written completes whole, says so to its cancelled caller, and the next waits
        for it."""
        path = Path(self.mktemp())
        store = MessageStore(path, gated_writes(self), Logger())
        started = Message("t", "c", None, "started " + "s" * 100000)
        waiting = Message("t", "c", None, "waiting")
        await store.latest()  # loaded: the first append goes straight to its write
        first = store.append(started)
        second = store.append(waiting)
        first.cancel()
        second.cancel()
        with self.assertRaises(CancelledError):
            await second
        with self.assertRaises(WriteBegun) as begun:
            await first
        third = store.append(Message("t", "c", None, "third"))
        self.assertFalse(begun.exception.written.called)
        WRITES_GO.set()
        await begun.exception.written
        await third
        self.assertEqual([r["text"] for r in records(path)], [started.text, "third"])
        self.assertEqual([m.text for m in await store.latest()], ["third", started.text])


#: opens the gate of `gated_writes`
WRITES_GO = threading.Event()


def gated_writes(case: TestCase) -> Any:
    """A BlockingRunner in threads whose message-file writes wait until WRITES_GO is set."""
    WRITES_GO.clear()
    case.addCleanup(WRITES_GO.set)

    def run_blocking(f: Any, /, *args: Any, **kwargs: Any) -> Any:
        def gated() -> Any:
            if f is append_line:
                WRITES_GO.wait(30)
            return f(*args, **kwargs)

        return deferToThread(gated)

    return run_blocking


class LateWriteTests(TestCase):
    async def test_post_written_past_module_timeout_is_answered_as_stored(self) -> None:
        """
        ModuleTimeout fires while the post is being written: the client is told it was
        stored (200, once it is), not 504, which would say nothing happened and invite it
        to post again. One that times out still waiting its turn gets 504, unstored.
        """
        path = Path(self.mktemp())
        clock = Clock()
        settings = Settings(module_timeout=2.0)
        run_blocking = gated_writes(self)
        store = MessageStore(path, run_blocking, Logger())
        await store.latest()
        module = MessageModule(store, clock.seconds, show_user=False)
        dispatcher = Dispatcher(
            settings=settings,
            modules=lambda: {"message": module},
            gatekeeper=make_gatekeeper(settings, clock, run_blocking, Logger()),
            renderer=Renderer(),
            clock=clock,
            log=Logger(),
            run_collection=run_blocking,
        )

        def post(text: str) -> Deferred[Outcome]:
            body = form_body(text).decode()
            head = "POST /message HTTP/1.1\r\nHost: localhost\r\n"
            head += f"Content-Type: {FORM['Content-Type']}\r\nContent-Length: {len(body)}\r\n"
            (request,) = RequestParser().feed((head + "\r\n" + body).encode())
            answer = dispatcher.respond(request, "127.0.0.1")
            assert isinstance(answer, Deferred)
            return answer

        written = post("being written")
        queued = post("waiting its turn")
        await deferLater(reactor, 0.2, lambda: None)  # the login, then the write begins
        clock.advance(settings.module_timeout + 1)
        self.assertEqual((await queued).response.status, 504)
        self.assertFalse(written.called)
        WRITES_GO.set()
        outcome = await written
        self.assertEqual(outcome.response.status, 200)
        self.assertIn(b"Message stored", outcome.response.body)
        self.assertEqual([r["text"] for r in records(path)], ["being written"])


def post_in_two_parts(port: int, body: bytes, first: int, go: threading.Event) -> bytes:
    """Send a post's head and `first` body bytes, wait for `go`, send the rest, read all."""
    head = (
        b"POST /message HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(head + body[:first])
        go.wait(30)
        try:
            client.sendall(body[first:])
            chunks = []
            while chunk := client.recv(65536):
                chunks.append(chunk)
        except OSError:
            return b""
        return b"".join(chunks)


def complete_response(data: bytes) -> tuple[int, bytes] | None:
    """(status, body) of one whole HTTP response, or None for none at all."""
    if not data:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    fields = dict(line.split(b":", 1) for line in lines[1:])
    length = int(next(v for k, v in fields.items() if k.lower() == b"content-length"))
    assert len(body) == length, (len(body), length)
    return int(lines[0].split()[1]), body


class ShutdownTests(TestCase):
    async def test_posts_during_shutdown_complete_or_are_refused(self) -> None:
        server = start_server(self)
        path = server.service.settings.message_file
        texts = [f"shutdown {n} " + "z" * 20000 for n in range(30)]
        posts = [server.request("POST", "/message", FORM, form_body(t)) for t in texts]
        # Stop as soon as the first record is on disk: the others are then in flight,
        # waiting their turn, or not yet connected.
        while not path.exists() or path.stat().st_size == 0:
            await deferLater(reactor, 0.001, lambda: None)
        await server.service.stopService()
        results = await DeferredList(posts, consumeErrors=True)

        stored = {r["text"] for r in records(path)}
        answered = set()
        for text, (ok, result) in zip(texts, results, strict=True):
            if ok:
                self.assertEqual(result.status, 200)
                answered.add(text)
            else:
                result.trap(OSError, http.client.HTTPException)
        self.assertEqual(stored, answered)
        self.assertGreaterEqual(len(stored), 1)

    async def test_post_half_sent_when_shutdown_begins(self) -> None:
        server = start_server(self)
        path = server.service.settings.message_file
        go = threading.Event()
        body = form_body("half sent " + "q" * 30000)
        client = deferToThread(post_in_two_parts, server.port, body, 1000, go)
        # Wait until the server holds the connection with part of the body read.
        while not server.service.factory.connections:
            await deferLater(reactor, 0.001, lambda: None)
        stopping = server.service.stopService()
        go.set()
        await stopping
        answer = complete_response(await client)
        if answer is None:
            self.assertFalse(path.exists() and path.read_bytes())
        else:
            self.assertEqual(answer[0], 200)
            self.assertEqual(records(path)[0]["text"], "half sent " + "q" * 30000)


def send_with_chromium(url: str, text: str) -> str:
    """Open the form in headless Chromium, type, click Send; the page that comes back."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium() as driver:
        driver.get(url)
        driver.find_element(By.NAME, "text").send_keys(text)
        driver.find_element(By.CSS_SELECTOR, "form.post button[type=submit]").click()
        WebDriverWait(driver, 30).until(expected_conditions.title_contains("stored"))
        return str(driver.find_element(By.TAG_NAME, "main").text)


class ChromiumTests(TestCase):
    async def test_real_form_in_chromium(self) -> None:
        server = start_server(self)
        text = "Hallo aus Chromium: ünïcödé <b>bold?</b>"
        page = await deferToThread(
            send_with_chromium,
            f"http://127.0.0.1:{server.port}/message",
            text,
        )
        self.assertIn("Your message was stored", page)
        self.assertIn(text, page)
        [stored] = records(server.service.settings.message_file)
        self.assertEqual(stored["text"], text)


class LimitTests(TestCase):
    """MessageMaxBytes (new messages refused with 507) and the per-address post rate."""

    async def test_full_file_refuses_new_messages_and_keeps_the_stored(self) -> None:
        server = start_server(self, message_max_bytes=1000, message_rate=100)
        path = server.service.settings.message_file
        statuses = []
        for n in range(12):
            reply = await server.request("POST", "/message", FORM, form_body(f"{n:02d}" * 40))
            statuses.append(reply.status)
        self.assertIn(507, statuses)
        first_refused = statuses.index(507)
        self.assertEqual(statuses, [200] * first_refused + [507] * (12 - first_refused))
        self.assertLessEqual(path.stat().st_size, 1000)
        self.assertEqual(len(records(path)), first_refused)
        self.assertIn(b"The message file is full", reply.body)
        self.assertEqual(path.stat().st_mode & 0o777, 0o600)

    async def test_posts_past_the_rate_are_429_for_that_address_only(self) -> None:
        server = start_server(self, message_rate=3)
        replies = [
            await server.request("POST", "/message", FORM, form_body(f"m{n}")) for n in range(4)
        ]
        self.assertEqual([r.status for r in replies], [200, 200, 200, 429])
        self.assertEqual(replies[-1].header("Retry-After"), "20")
        self.assertIn(b"Too many messages", replies[-1].body)
        other = await deferToThread(
            servers.fetch, server.port, "POST", "/message", FORM, form_body("x"), "127.0.0.2"
        )
        self.assertEqual(other.status, 200)
        self.assertEqual(len(records(server.service.settings.message_file)), 4)

    def test_rate_refills_with_time(self) -> None:
        clock = Clock()
        rate = PostRate(6, clock.seconds)  # one post every 10 s, a burst of 6
        self.assertEqual([rate.take("a") for _ in range(6)], [None] * 6)
        self.assertEqual(rate.take("a"), 10)
        self.assertIsNone(rate.take("b"))
        clock.advance(9)
        self.assertEqual(rate.take("a"), 1)
        clock.advance(1)
        self.assertIsNone(rate.take("a"))
        self.assertEqual(rate.take("a"), 10)

    def test_rate_forgets_addresses_once_refilled(self) -> None:
        clock = Clock()
        rate = PostRate(2, clock.seconds)
        rate.TRACKED = 4
        for n in range(4):
            rate.take(f"10.0.0.{n}")
        clock.advance(60)
        rate.take("10.0.0.9")  # the fifth address: the four refilled ones are forgotten
        self.assertEqual(list(rate._buckets), ["10.0.0.9"])
        for n in range(5):  # a flood, none refilled: past four, the newest two stay
            rate.take(f"10.0.1.{n}")
        self.assertEqual(list(rate._buckets), ["10.0.1.2", "10.0.1.3", "10.0.1.4"])

    async def test_symlink_put_in_place_of_the_file_is_not_written_through(self) -> None:
        server = start_server(self)
        path = server.service.settings.message_file
        target = Path(self.mktemp())
        target.write_bytes(b"")
        path.symlink_to(target)
        reply = await server.request("POST", "/message", FORM, form_body("x"))
        self.assertEqual(reply.status, 500)
        self.assertEqual(target.read_bytes(), b"")
        self.flushLoggedErrors(OSError)
