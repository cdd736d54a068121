# -*- test-case-name: tests.test_pagecache -*-
"""The page cache: modules with `max_age` answered without `collect`, and nothing else."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Mapping
from typing import Any

from twisted.cred.checkers import ICredentialsChecker, InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.support import clocked_dispatcher
from twistedspy.auth import Gatekeeper, LoginThrottle, ViewerRealm, make_gatekeeper
from twistedspy.http.parser import Request, RequestParser
from twistedspy.http.response import DateCache, Outcome, Response, serialize
from twistedspy.interfaces import IFormModule, IInfoModule, IReactorSafe
from twistedspy.pagecache import PageCache, max_age_of
from twistedspy.query import Query, Submission
from twistedspy.report import Cell, Page, Report, Table
from twistedspy.settings import Settings


def inline(f: Any, /, *args: Any, **kwargs: Any) -> Deferred[Any]:
    return maybeDeferred(f, *args, **kwargs)


@implementer(IInfoModule, IReactorSafe)
class Counted:
    """
    Counts its collections; each page says which collection made it. Reactor-safe, as it
    may answer with the test's Deferred.
    """

    title = "Counted"
    description = "counts"

    def __init__(self, name: str = "counted", max_age: object = None) -> None:
        self.name = name
        if max_age is not None:
            self.max_age = max_age
        self.calls: list[Query] = []
        #: when set, collect answers with this Deferred (fired by the test)
        self.pending: Deferred[Page] | None = None
        self.fail = False

    def collect(self, query: Query) -> Page | Deferred[Page]:
        self.calls.append(query)
        if self.fail:
            raise RuntimeError("broken on purpose")
        if self.pending is not None:
            return self.pending
        # Long enough to be compressed (docs/architecture.md: over 1 KiB).
        rows: list[list[Cell]] = [[len(self.calls), "x" * 40] for _ in range(40)]
        return Report(title="Counted", tables=[Table(title="t", columns=["n", "pad"], rows=rows)])


@implementer(IFormModule)
class CountedForm(Counted):
    def __init__(self) -> None:
        super().__init__("form", max_age=60.0)
        self.submitted = 0

    def submit(self, submission: Submission) -> Page:
        self.submitted += 1
        return Report(title="stored", tables=[])


class CountingChecker(InMemoryUsernamePasswordDatabaseDontUse):
    asked = 0

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes | tuple[()]]:
        self.asked += 1
        answer: Deferred[bytes | tuple[()]] = super().requestAvatarId(credentials)
        return answer


@implementer(ICredentialsChecker)
class LateChecker:
    """Lets anyone in as the user it is told, when the test says so."""

    credentialInterfaces = (IUsernamePassword,)  # noqa: N815 (ICredentialsChecker's name)

    def __init__(self) -> None:
        self.asked = 0
        self.answer: Deferred[bytes | tuple[()]] = Deferred()

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes | tuple[()]]:
        self.asked += 1
        return self.answer


def parse(text: str) -> Request:
    (request,) = RequestParser().feed(text.replace("\n", "\r\n").encode())
    return request


def get(target: str, *headers: str, method: str = "GET", body: str = "") -> Request:
    lines = [f"{method} {target} HTTP/1.1", "Host: localhost", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return parse("\n".join(lines) + "\n\n" + body)


class DispatcherCacheTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.cached = Counted("cached", max_age=1.0)
        self.plain = Counted("plain")
        self.form = CountedForm()
        self.modules: Mapping[str, IInfoModule] = {
            m.name: m for m in (self.cached, self.plain, self.form)
        }
        self.use(Settings(), make_gatekeeper(Settings(), self.clock, inline, Logger()))

    def use(self, settings: Settings, gatekeeper: Gatekeeper) -> None:
        self.dispatcher = clocked_dispatcher(
            settings, lambda: self.modules, gatekeeper, self.clock, inline
        )

    def respond(self, request: Request) -> Deferred[Outcome]:
        answer = self.dispatcher.respond(request, "127.0.0.1")
        return answer if isinstance(answer, Deferred) else succeed(answer)

    def answer(self, request: Request) -> Outcome:
        results: list[Outcome] = []
        self.respond(request).addCallback(results.append)
        self.assertEqual(len(results), 1, "the answer should be ready at once")
        return results[0]

    def body(self, target: str, *headers: str) -> bytes:
        outcome = self.answer(get(target, *headers))
        self.assertEqual(outcome.response.status, 200)
        return outcome.response.body

    def test_second_request_within_max_age_is_not_collected(self) -> None:
        first = self.body("/cached")
        self.clock.advance(0.999)
        self.assertEqual(self.body("/cached"), first)
        self.assertEqual(len(self.cached.calls), 1)

    def test_collected_again_once_max_age_has_passed(self) -> None:
        first = self.body("/cached")
        self.clock.advance(1.0)
        second = self.body("/cached")
        self.assertEqual(len(self.cached.calls), 2)
        self.assertNotEqual(first, second)
        self.assertEqual(self.body("/cached"), second)
        self.assertEqual(len(self.cached.calls), 2)

    def test_queries_and_formats_do_not_share(self) -> None:
        targets = [
            ("/cached",),
            ("/cached?a=1",),
            ("/cached?a=2",),
            ("/cached?a=1&b=2",),
            ("/cached?format=json",),
            ("/cached", "Accept: application/json"),
        ]
        for target in targets:
            self.body(*target)
        self.assertEqual(len(self.cached.calls), 6)
        self.assertEqual([dict(q) for q in self.cached.calls][1], {"a": "1"})
        # each of them is kept: asking again collects nothing
        for target in targets:
            self.body(*target)
        self.assertEqual(len(self.cached.calls), 6)
        self.assertTrue(self.body("/cached", "Accept: application/json").startswith(b"{"))

    def test_login_and_password_are_not_part_of_the_key(self) -> None:
        # Security off: they are not read at all, and the module never sees them.
        self.body("/cached?login=a&password=b")
        self.body("/cached?login=c&password=d")
        self.assertEqual(len(self.cached.calls), 1)
        self.assertEqual(dict(self.cached.calls[0]), {})

    def test_module_without_max_age_is_never_cached(self) -> None:
        for _ in range(3):
            self.body("/plain")
        self.assertEqual(len(self.plain.calls), 3)
        self.assertEqual(len(self.dispatcher.pages), 0)

    def test_zero_or_invalid_max_age_is_never_cached(self) -> None:
        for age in (0, -1, 0.0, float("inf"), float("nan"), True, "10", None):
            self.modules = {"odd": Counted("odd", max_age=age)}
            module = self.modules["odd"]
            assert isinstance(module, Counted)
            self.body("/odd")
            self.body("/odd")
            self.assertEqual(len(module.calls), 2, age)
            self.assertEqual(max_age_of(module), 0.0, age)
        self.assertEqual(max_age_of(Counted(max_age=2)), 2.0)

    def test_post_never_reads_nor_fills_the_cache(self) -> None:
        self.body("/form")
        self.assertEqual(len(self.form.calls), 1)
        for _ in range(2):
            outcome = self.answer(
                get(
                    "/form",
                    "Content-Type: application/x-www-form-urlencoded",
                    method="POST",
                    body="text=hi",
                )
            )
            self.assertEqual(outcome.response.status, 200)
            self.assertIn(b"stored", outcome.response.body)
        self.assertEqual(self.form.submitted, 2)
        self.assertNotIn(b"stored", self.body("/form"))
        self.assertEqual(len(self.form.calls), 1)

    def test_head_uses_the_get_entry(self) -> None:
        body = self.body("/cached")
        outcome = self.answer(get("/cached", method="HEAD"))
        self.assertEqual(outcome.response.body, body)
        self.assertEqual(len(self.cached.calls), 1)

    def test_errors_are_not_kept(self) -> None:
        self.cached.fail = True
        self.assertEqual(self.answer(get("/cached")).response.status, 500)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.cached.fail = False
        self.body("/cached")
        self.assertEqual(len(self.cached.calls), 2)

    def test_requests_waiting_for_the_same_page_share_one_collection(self) -> None:
        self.cached.pending = Deferred()
        results: list[Outcome] = []
        for _ in range(3):
            self.respond(get("/cached")).addCallback(results.append)
        self.assertEqual(len(self.cached.calls), 1)
        self.assertEqual(results, [])
        self.cached.pending.callback(Report(title="late", tables=[]))
        self.assertEqual(len(results), 3)
        self.assertEqual({r.response.body for r in results}, {results[0].response.body})
        self.cached.pending = None
        self.body("/cached")
        self.assertEqual(len(self.cached.calls), 1)

    def test_a_replaced_module_does_not_serve_its_predecessors_page(self) -> None:
        self.body("/cached")
        successor = Counted("cached", max_age=1.0)
        self.modules = {"cached": successor}
        self.body("/cached")
        self.assertEqual(len(successor.calls), 1)

    def test_users_do_not_share_pages(self) -> None:
        checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"a-secret", bob=b"b-secret")
        portal = Portal(ViewerRealm(), [checker])
        self.use(Settings(security=True), Gatekeeper(portal, LoginThrottle(self.clock), Logger()))

        def basic(user: str, password: str) -> str:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            return f"Authorization: Basic {token}"

        self.body("/cached", basic("alice", "a-secret"))
        self.body("/cached", basic("alice", "a-secret"))
        self.assertEqual(len(self.cached.calls), 1)
        self.body("/cached", basic("bob", "b-secret"))
        self.assertEqual(len(self.cached.calls), 2)
        # Credentials are still checked for a page that is cached.
        refused = self.answer(get("/cached", basic("alice", "wrong")))
        self.assertEqual(refused.response.status, 401)
        self.assertEqual(self.answer(get("/cached")).response.status, 401)
        self.assertEqual(len(self.cached.calls), 2)

    def test_every_cached_answer_logs_in_once_through_the_portal(self) -> None:
        checker = CountingChecker(alice=b"a-secret")
        portal = Portal(ViewerRealm(), [checker])
        self.use(Settings(security=True), Gatekeeper(portal, LoginThrottle(self.clock), Logger()))
        alice = "Authorization: Basic " + base64.b64encode(b"alice:a-secret").decode()
        for n in range(1, 4):
            self.body("/cached", alice)
            self.assertEqual(checker.asked, n)
        self.assertEqual(len(self.cached.calls), 1)
        # Malformed credentials on a cached page: refused, never served from the cache.
        refused = self.answer(get("/cached?password=x"))
        self.assertEqual(refused.response.status, 401)

    def test_a_login_that_answers_later_is_not_begun_twice(self) -> None:
        checker = LateChecker()
        portal = Portal(ViewerRealm(), [checker])
        self.use(Settings(security=True), Gatekeeper(portal, LoginThrottle(self.clock), Logger()))
        alice = "Authorization: Basic " + base64.b64encode(b"alice:a-secret").decode()
        checker.answer = succeed(b"alice")
        self.body("/cached", alice)  # now in the cache
        checker.answer = Deferred()
        results: list[Outcome] = []
        self.respond(get("/cached", alice)).addCallback(results.append)
        self.assertEqual((checker.asked, results), (2, []))
        checker.answer.callback(b"alice")
        self.assertEqual(checker.asked, 2)
        self.assertEqual(results[0].response.status, 200)
        self.assertEqual(len(self.cached.calls), 1)

    def test_gzip_body_is_kept_with_the_page(self) -> None:
        self.body("/cached")
        cached = self.answer(get("/cached")).response
        self.assertIsNotNone(cached.gzipped)
        assert cached.gzipped is not None
        self.assertEqual(gzip.decompress(cached.gzipped), cached.body)
        wire = serialize(cached, now=0, date=DateCache(), accept_encoding="gzip")
        self.assertIn(b"Content-Encoding: gzip", wire)
        self.assertTrue(wire.endswith(b"\r\n\r\n" + cached.gzipped))


class PageCacheTests(TestCase):
    def test_bounded_least_recently_used_first(self) -> None:
        clock = Clock()
        cache = PageCache(clock, size=2)
        module = Counted()
        keys = [("m", False, (("n", str(n)),), None) for n in range(3)]

        def made(n: int) -> Deferred[Response]:
            return Deferred.fromCoroutine(_response(n))

        async def _response(n: int) -> Response:
            return Response(200, str(n).encode(), "text/plain; charset=utf-8")

        for n in (0, 1):
            cache.fill(keys[n], module, 10, lambda n=n: made(n))  # type: ignore[misc]
        self.assertIsNotNone(cache.get(keys[0], module))  # now 1 is the least recent
        cache.fill(keys[2], module, 10, lambda: made(2))
        self.assertEqual(len(cache), 2)
        self.assertIsNone(cache.get(keys[1], module))
        self.assertIsNotNone(cache.get(keys[0], module))
        self.assertIsNotNone(cache.get(keys[2], module))
