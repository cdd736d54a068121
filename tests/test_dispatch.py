# -*- test-case-name: tests.test_dispatch -*-
"""The dispatcher: hosts, formats, cross-site posts, the order of checks, pools, deadline."""

from __future__ import annotations

import base64
import functools
import gzip
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.support import clocked_dispatcher
from twistedspy.auth import Gatekeeper, LoginThrottle, ViewerRealm, make_gatekeeper
from twistedspy.dispatch import Dispatcher, HostPolicy, is_cross_site, wants_json
from twistedspy.http.parser import Request, RequestParser
from twistedspy.http.response import Outcome
from twistedspy.interfaces import IInfoModule, IReactorSafe
from twistedspy.query import Query
from twistedspy.report import Page, PageError, RawBody, Report, Table
from twistedspy.settings import Settings


def request(*headers: str, method: str = "GET") -> Request:
    lines = [f"{method} / HTTP/1.1", "Host: localhost:8080", *headers, "", ""]
    (parsed,) = RequestParser().feed("\r\n".join(lines).encode())
    return parsed


class HostPolicyTests(TestCase):
    def test_security_off_allows_loopback_names_and_bound_address(self) -> None:
        policy = HostPolicy(Settings(address="127.0.0.1"))
        for host in ("localhost", "localhost:8080", "127.0.0.1:8080", "[::1]:8080", "127.0.0.2"):
            self.assertTrue(policy.allows(host), host)
        for host in ("evil.example", "evil.example:8080", "localhost.evil.example", "10.0.0.1"):
            self.assertFalse(policy.allows(host), host)

    def test_security_on_allows_any_host(self) -> None:
        self.assertTrue(HostPolicy(Settings(security=True)).allows("anything.example"))

    def test_allowed_hosts_list(self) -> None:
        policy = HostPolicy(Settings(allowed_hosts=("spy.example",), security=True))
        self.assertTrue(policy.allows("spy.example:8080"))
        self.assertTrue(policy.allows("SPY.example"))
        self.assertFalse(policy.allows("other.example"))
        self.assertTrue(HostPolicy(Settings(allowed_hosts=("*",))).allows("x.example"))


class FormatTests(TestCase):
    def test_query_wins(self) -> None:
        self.assertTrue(wants_json(request(), Query((("format", "json"),))))
        self.assertFalse(
            wants_json(request("Accept: application/json"), Query((("format", "html"),)))
        )
        self.assertRaises(PageError, wants_json, request(), Query((("format", "xml"),)))

    def test_accept_preference(self) -> None:
        cases = [
            ("Accept: application/json", True),
            ("Accept: text/html,application/json;q=0.9", False),
            ("Accept: text/html;q=0.5, application/json", True),
            ("Accept: */*", False),
            ("Accept: text/html,application/xhtml+xml,*/*;q=0.8", False),
        ]
        for header, expected in cases:
            self.assertEqual(wants_json(request(header), Query()), expected, header)


class CrossSiteTests(TestCase):
    def test_rules(self) -> None:
        cases = [
            ((), False),  # curl, scripts
            (("Sec-Fetch-Site: same-origin",), False),
            (("Sec-Fetch-Site: none",), False),
            (("Sec-Fetch-Site: cross-site",), True),
            (("Sec-Fetch-Site: same-site",), True),
            (("Origin: null", "Sec-Fetch-Site: same-origin"), False),
            (("Origin: null",), True),
            (("Origin: null", "Sec-Fetch-Site: none"), True),
            (("Origin: null", "Sec-Fetch-Site: cross-site"), True),
            (("Origin: http://localhost:8080",), False),
            (("Origin: http://evil.example",), True),
        ]
        for headers, expected in cases:
            self.assertEqual(is_cross_site(request(*headers, method="POST")), expected, headers)


# -- the order of checks, the pools and the deadline, with a Clock and fake pools


@implementer(IInfoModule)
class Plain:
    """A plain module, as a third party writes one: its collect runs in a worker thread."""

    title = "Plain"
    description = "plain"

    def __init__(self, name: str = "plain", answer: object = None, max_age: float = 0) -> None:
        self.name = name
        self.max_age = max_age
        self.answer = answer
        self.calls = 0

    def collect(self, query: Query) -> Page:
        self.calls += 1
        if self.answer is not None:
            return self.answer  # type: ignore[return-value]
        return Report(title="Plain", tables=[Table(title="t", columns=["q"], rows=[[str(query)]])])


@implementer(IInfoModule, IReactorSafe)
class OnReactor(Plain):
    """The same, declared safe to run on the reactor."""


class FakePool:
    """A BlockingRunner whose calls wait until the test runs them."""

    def __init__(self) -> None:
        self.calls: list[tuple[Deferred[object], Callable[[], object]]] = []

    def __call__(self, f: Any, /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        done: Deferred[object] = Deferred()
        self.calls.append((done, functools.partial(f, *args, **kwargs)))
        return done

    def run_all(self) -> None:
        calls, self.calls = self.calls, []
        for done, call in calls:
            maybeDeferred(call).chainDeferred(done)


def basic_header(user: str, password: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class DispatcherTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.collection = FakePool()
        self.render = FakePool()
        self.modules: dict[str, IInfoModule] = {}
        self.settings = Settings(module_timeout=10.0)
        self.dispatcher = self.make(self.settings)

    def make(self, settings: Settings, *, render: bool = False) -> Dispatcher:
        if settings.security:
            checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"a-secret")
            gatekeeper = Gatekeeper(
                Portal(ViewerRealm(), [checker]), LoginThrottle(self.clock), Logger()
            )
        else:
            gatekeeper = make_gatekeeper(settings, self.clock, self.collection, Logger())
        return clocked_dispatcher(
            settings,
            lambda: self.modules,
            gatekeeper,
            self.clock,
            self.collection,
            self.render if render else None,
        )

    def respond(self, target: str, *headers: str, host: str = "localhost") -> Deferred[Outcome]:
        lines = [f"GET {target} HTTP/1.1", f"Host: {host}", *headers, "", ""]
        (parsed,) = RequestParser().feed("\r\n".join(lines).encode())
        answer = self.dispatcher.respond(parsed, "127.0.0.1")
        return answer if isinstance(answer, Deferred) else succeed(answer)

    def status(self, target: str, *headers: str, host: str = "localhost") -> int:
        answer = self.respond(target, *headers, host=host)
        self.collection.run_all()
        return self.successResultOf(answer).response.status

    def test_a_bad_format_is_answered_after_host_and_credentials(self) -> None:
        # The uncached path used to answer 400 before both: it told a client on a
        # rebinding host, or without credentials, that the server exists and what it takes.
        self.modules = {"plain": Plain()}
        self.assertEqual(self.status("/plain?format=xml", host="evil.example"), 421)
        self.dispatcher = self.make(replace(self.settings, security=True))
        self.assertEqual(self.status("/plain?format=xml"), 401)
        self.assertEqual(self.status("/nonesuch?format=xml"), 401)
        alice = basic_header("alice", "a-secret")
        self.assertEqual(self.status("/plain?format=xml", alice), 400)
        self.assertEqual(self.status("/plain?format=json", alice), 200)

    def test_cached_and_uncached_pages_pass_the_same_checks(self) -> None:
        self.dispatcher = self.make(replace(self.settings, security=True))
        cached = Plain("cached", max_age=60)
        self.modules = {"cached": cached}
        alice = basic_header("alice", "a-secret")
        asked = [
            (("/cached?format=xml",), "evil.example"),
            (("/cached",), "localhost"),
            (("/cached", basic_header("alice", "wrong")), "localhost"),
            (("/cached?format=xml", alice), "localhost"),
            (("/cached", alice), "localhost"),
        ]
        before = [self.status(*target, host=host) for target, host in asked]
        self.assertEqual(before, [401, 401, 401, 400, 200])
        self.assertEqual(len(self.dispatcher.pages), 1)
        after = [self.status(*target, host=host) for target, host in asked]
        self.assertEqual(after, before)
        self.assertEqual(cached.calls, 1)

    def test_plain_collect_runs_in_the_collection_pool(self) -> None:
        plain, safe = Plain(), OnReactor("safe")
        self.modules = {"plain": plain, "safe": safe}
        answer = self.respond("/plain")
        self.assertEqual((plain.calls, len(self.collection.calls)), (0, 1))
        self.collection.run_all()
        self.assertEqual(self.successResultOf(answer).response.status, 200)
        self.assertEqual(self.successResultOf(self.respond("/safe")).response.status, 200)
        self.assertEqual((safe.calls, len(self.collection.calls)), (1, 0))

    def test_one_collection_per_module_each_waiter_under_its_own_deadline(self) -> None:
        self.modules = {"plain": Plain()}
        first = self.respond("/plain")
        self.clock.advance(4)
        same = [self.respond("/plain") for _ in range(20)]
        other = self.respond("/plain?x=1")
        self.assertEqual(len(self.collection.calls), 1)  # one thread, however many ask
        self.clock.advance(6)
        self.assertEqual(self.successResultOf(first).response.status, 504)
        self.assertNoResult(same[0])
        self.clock.advance(4)
        for answer in [*same, other]:
            self.assertEqual(self.successResultOf(answer).response.status, 504)
        # The hung call ends at last: the next request starts afresh, none ran meanwhile.
        self.collection.run_all()
        self.assertEqual(self.status("/plain"), 200)

    def test_the_deadline_covers_rendering(self) -> None:
        self.dispatcher = self.make(self.settings, render=True)
        self.modules = {"plain": Plain()}
        answer = self.respond("/plain")
        self.clock.advance(9)
        self.collection.run_all()
        self.assertEqual(len(self.render.calls), 1)
        self.assertNoResult(answer)
        self.clock.advance(1)
        outcome = self.successResultOf(answer)
        self.assertEqual(outcome.response.status, 504)
        self.assertIn(b"did not answer within the time allowed", outcome.response.body)

    def test_big_bodies_are_compressed_in_the_render_pool(self) -> None:
        """gzip takes some 7 ms a megabyte: never on the reactor for a big page."""
        self.dispatcher = self.make(self.settings, render=True)
        big = RawBody(b"%d," * 100_000 % tuple(range(100_000)), "text/plain")
        small = RawBody(b"short", "text/plain")
        rows = [[str(n)] for n in range(500)]  # a page of some 10 KiB
        self.modules = {
            "big": Plain("big", answer=big),
            "small": Plain("small", answer=small),
            "page": Plain("page", answer=Report(title="Rows", tables=[Table("t", ["n"], rows)])),
        }
        # a rendered page always goes to the pool; a module's raw body only to be compressed
        for target, accepts, in_pool in (
            ("/big", "gzip, deflate", True),
            ("/big", "identity", False),
            ("/small", "gzip", False),
            ("/page", "gzip", True),
            ("/page", "identity", True),
        ):
            with self.subTest(target=target, accepts=accepts):
                gzipped = accepts != "identity"
                answer = self.respond(target, f"Accept-Encoding: {accepts}")
                self.collection.run_all()
                self.assertEqual(bool(self.render.calls), in_pool)
                self.render.run_all()
                response = self.successResultOf(answer).response
                if target != "/small":  # a rendered page is over 1 KiB too
                    self.assertEqual(response.gzipped is not None, gzipped)
                if target == "/big" and response.gzipped is not None:
                    self.assertEqual(gzip.decompress(response.gzipped), big.content)

    def test_wrong_return_types_are_500(self) -> None:
        self.modules = {
            "text": Plain("text", answer="a string"),
            "deferred": Plain("deferred", answer=succeed(Report(title="t"))),
            "reactor": OnReactor("reactor", answer=42),
        }
        for name in self.modules:
            self.assertEqual(self.status(f"/{name}"), 500, name)
        errors = self.flushLoggedErrors(TypeError)
        self.assertEqual(len(errors), 3)
        messages = " ".join(e.getErrorMessage() for e in errors)
        self.assertIn("provides IReactorSafe", messages)

    def test_health_checks_answer_503_with_the_first_reason(self) -> None:
        reasons: list[str | None] = [None, None]
        self.dispatcher.health_checks.extend([lambda: reasons[0], lambda: reasons[1]])
        self.assertEqual(self.healthy(), (200, b"twistedspy is healthy.\n"))
        reasons[1] = "the module pool is hung"
        reasons[0] = None
        self.assertEqual(
            self.healthy(), (503, b"twistedspy cannot serve pages: the module pool is hung.\n")
        )

    def healthy(self) -> tuple[int, bytes]:
        (parsed,) = RequestParser().feed(b"GET /-/healthy HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = self.dispatcher.respond(parsed, "127.0.0.1")
        assert isinstance(answer, Outcome)
        return answer.response.status, answer.response.body
