"""Credentials through a real Portal: the bcrypt checker, the throttle, the Gatekeeper."""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
from twisted.cred.checkers import ANONYMOUS, AllowAnonymousAccess, ICredentialsChecker
from twisted.cred.credentials import Anonymous, IAnonymous, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet import threads
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, Logger, formatEvent
from twisted.trial.unittest import TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.support import require_tool
from twistedspy import auth
from twistedspy.accounts import AccountsError, AccountsFile
from twistedspy.auth import (
    WWW_AUTHENTICATE,
    AccountsChecker,
    ConnectionLogin,
    Gatekeeper,
    IViewer,
    LoginFailed,
    LoginThrottle,
    LoginThrottled,
    TrustedProxies,
    Viewer,
    ViewerRealm,
    credentials_from,
    make_gatekeeper,
)
from twistedspy.settings import Settings

PASSWORD = "correct horse"
LONG_PASSWORD = "p" * 80


@implementer(ILogObserver)
class EventList(list[LogEvent]):
    """Collects the events a Logger emits."""

    def __call__(self, event: LogEvent) -> None:
        self.append(event)


def inline(f: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred[Any]:
    """A run_blocking for pure logic tests: runs at once, on this thread."""
    return maybeDeferred(f, *args, **kwargs)


class CountingRunner:
    """Wraps a runner; counts calls and notes each call's thread and arguments."""

    def __init__(self, inner: Callable[..., Deferred[Any]]) -> None:
        self.inner = inner
        self.calls: list[tuple[Any, ...]] = []
        self.threads: list[int] = []

    def __call__(self, f: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        self.calls.append(args)

        def noting_thread(*args: Any, **kwargs: Any) -> Any:
            self.threads.append(threading.get_ident())
            return f(*args, **kwargs)

        return self.inner(noting_thread, *args, **kwargs)


class HeldRunner:
    """A runner whose work waits until the test releases it, to watch concurrency."""

    def __init__(self) -> None:
        self.waiting: list[tuple[Deferred[Any], Callable[[], Any]]] = []
        self.most_at_once = 0

    def __call__(self, f: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.waiting.append((d, functools.partial(f, *args, **kwargs)))
        self.most_at_once = max(self.most_at_once, len(self.waiting))
        return d

    def release_one(self) -> None:
        d, work = self.waiting.pop(0)
        d.callback(work())


def write_accounts(path: Path, users: dict[str, str], cost: int = 4) -> None:
    lines = [
        f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()}"
        for user, password in users.items()
    ]
    path.write_text("\n".join(lines) + "\n")


class RealmTests(TestCase):
    def test_interfaces(self) -> None:
        verifyObject(IRealm, ViewerRealm())
        verifyObject(IViewer, Viewer("alice"))
        accounts_path = Path(self.mktemp())
        write_accounts(accounts_path, {"alice": PASSWORD})
        verifyObject(ICredentialsChecker, AccountsChecker(AccountsFile(accounts_path), inline))

    def test_avatars(self) -> None:
        realm = ViewerRealm()
        interface, avatar, logout = realm.requestAvatar(b"alice", None, IViewer)
        self.assertIs(interface, IViewer)
        self.assertEqual(avatar, Viewer("alice"))
        logout()
        self.assertEqual(realm.requestAvatar(ANONYMOUS, None, IViewer)[1], Viewer(None))
        with self.assertRaises(NotImplementedError):
            realm.requestAvatar(b"alice", None, IAnonymous)


class CheckerTests(TestCase):
    def setUp(self) -> None:
        self.path = Path(self.mktemp())
        write_accounts(self.path, {"alice": PASSWORD, "bob": "hunter2"})
        self.accounts = AccountsFile(self.path)

    def portal(self, runner: Any, **options: int) -> Portal:
        return Portal(ViewerRealm(), [AccountsChecker(self.accounts, runner, **options)])

    async def login(self, portal: Portal, user: str, password: str) -> Viewer:
        _, avatar, _ = await portal.login(
            UsernamePassword(user.encode(), password.encode()), None, IViewer
        )
        assert isinstance(avatar, Viewer)
        return avatar

    async def test_right_password_in_a_thread(self) -> None:
        runner = CountingRunner(threads.deferToThread)
        viewer = await self.login(self.portal(runner), "alice", PASSWORD)
        self.assertEqual(viewer, Viewer("alice"))
        self.assertEqual(len(runner.calls), 1)
        self.assertNotEqual(runner.threads, [threading.get_ident()])

    async def test_refused(self) -> None:
        """Wrong password, unknown user, empty password: all UnauthorizedLogin."""
        portal = self.portal(CountingRunner(threads.deferToThread))
        for user, password in [
            ("alice", "hunter2"),
            ("alice", PASSWORD + " "),
            ("carol", PASSWORD),
            ("alice", ""),
            ("", PASSWORD),
        ]:
            with self.assertRaises(UnauthorizedLogin, msg=(user, password)):
                await self.login(portal, user, password)

    async def test_not_utf8_user_name(self) -> None:
        portal = self.portal(inline)
        with self.assertRaises(UnauthorizedLogin):
            await portal.login(UsernamePassword(b"\xff", b"x"), None, IViewer)

    async def test_unknown_user_costs_a_bcrypt_check(self) -> None:
        """An unknown user is checked against a dummy hash of the highest cost in use."""
        lines = [
            f"{user}:{bcrypt.hashpw(b'x', bcrypt.gensalt(cost)).decode()}"
            for user, cost in [("alice", 4), ("bob", 6), ("eve", 4)]
        ]
        self.path.write_text("\n".join(lines) + "\n")
        runner = CountingRunner(inline)
        portal = self.portal(runner)
        with self.assertRaises(UnauthorizedLogin):
            await self.login(portal, "carol", PASSWORD)
        self.assertEqual(len(runner.calls), 1)
        password, dummy, cost, highest = runner.calls[0]
        self.assertEqual(password, PASSWORD.encode())
        self.assertEqual(dummy[:7], b"$2b$06$")
        self.assertEqual((cost, highest), (6, 6))
        bob = self.accounts.lookup("bob")
        assert bob is not None
        self.assertNotEqual(dummy, bob.hash)

    async def test_cheaper_account_failure_padded_to_the_highest_cost(self) -> None:
        """A wrong password for a cost-4 account takes as long as a cost-8 check."""
        slow = bcrypt.hashpw(b"slow", bcrypt.gensalt(8)).decode()
        cheap = bcrypt.hashpw(b"cheap", bcrypt.gensalt(4)).decode()
        self.path.write_text(f"slow:{slow}\ncheap:{cheap}\n")
        checked: list[bytes] = []
        slept: list[float] = []
        real_matches = auth._password_matches

        def matches(password: bytes, hashed: bytes) -> bool:
            checked.append(hashed[:7])
            return real_matches(password, hashed)

        self.patch(auth, "_password_matches", matches)
        self.patch(time, "sleep", slept.append)
        portal = self.portal(inline)
        # no check at cost 8 timed yet: the dummy check itself follows the cheap one
        with self.assertRaises(UnauthorizedLogin):
            await self.login(portal, "cheap", "wrong")
        self.assertEqual(checked, [b"$2b$04$", b"$2b$08$"])
        self.assertEqual(slept, [])
        # from then on, a sleep for the rest of a cost-8 check's time
        checked.clear()
        with self.assertRaises(UnauthorizedLogin):
            await self.login(portal, "cheap", "wrong again")
        self.assertEqual(checked, [b"$2b$04$"])
        self.assertEqual(len(slept), 1)
        self.assertGreater(slept[0], 0.0)
        # a right password is never padded
        self.assertEqual(await self.login(portal, "cheap", "cheap"), Viewer("cheap"))
        self.assertEqual(len(slept), 1)

    async def test_long_password_does_not_raise(self) -> None:
        """Over 72 bytes: cut to 72 as htpasswd did when it made the hash."""
        hashed = bcrypt.hashpw(LONG_PASSWORD[:72].encode(), bcrypt.gensalt(4))
        self.path.write_text(f"long:{hashed.decode()}\nalice:{hashed.decode()}\n")
        portal = self.portal(CountingRunner(threads.deferToThread))
        self.assertEqual(await self.login(portal, "long", LONG_PASSWORD), Viewer("long"))
        for user in ["bob", "carol"]:
            with self.assertRaises(UnauthorizedLogin):
                await self.login(portal, user, LONG_PASSWORD)
        with self.assertRaises(UnauthorizedLogin):
            await self.login(portal, "long", "q" * 80)

    async def test_long_password_matches_htpasswd(self) -> None:
        """htpasswd -B, given the 80-byte password, made a hash it logs in against."""
        htpasswd = require_tool("htpasswd")
        subprocess.run(
            [htpasswd, "-B", "-C", "4", "-c", "-b", str(self.path), "long", LONG_PASSWORD],
            check=True,
            capture_output=True,
        )
        portal = self.portal(inline)
        self.assertEqual(await self.login(portal, "long", LONG_PASSWORD), Viewer("long"))

    def test_malformed_hash_is_a_failed_check(self) -> None:
        self.assertFalse(auth._password_matches(b"x", b"$2b$05$abc"))
        self.assertFalse(auth._password_matches(b"x", b"$2y$32$" + b"a" * 53))
        self.assertFalse(auth._password_matches(b"a\0b", bcrypt.hashpw(b"a", bcrypt.gensalt(4))))

    async def test_success_is_cached(self) -> None:
        runner = CountingRunner(inline)
        portal = self.portal(runner)
        for _ in range(3):
            self.assertEqual(await self.login(portal, "alice", PASSWORD), Viewer("alice"))
        self.assertEqual(len(runner.calls), 1)
        # a wrong password after a right one is checked, and fails
        with self.assertRaises(UnauthorizedLogin):
            await self.login(portal, "alice", PASSWORD + "!")
        self.assertEqual(len(runner.calls), 2)
        # failures are never cached: each costs a check
        with self.assertRaises(UnauthorizedLogin):
            await self.login(portal, "alice", PASSWORD + "!")
        self.assertEqual(len(runner.calls), 3)

    async def test_changed_hash_misses_the_cache(self) -> None:
        runner = CountingRunner(inline)
        portal = self.portal(runner)
        await self.login(portal, "alice", PASSWORD)
        # the same password hashed again (new salt): a new hash, so checked again
        write_accounts(self.path, {"alice": PASSWORD, "bob": "hunter2 "})
        await self.login(portal, "alice", PASSWORD)
        self.assertEqual(len(runner.calls), 2)
        # a new password: the old one no longer works, cached or not
        write_accounts(self.path, {"alice": "new password", "bob": "hunter2"})
        with self.assertRaises(UnauthorizedLogin):
            await self.login(portal, "alice", PASSWORD)
        self.assertEqual(await self.login(portal, "alice", "new password"), Viewer("alice"))
        # a removed user is refused even with a password that was cached
        write_accounts(self.path, {"bob": "hunter2"})
        with self.assertRaises(UnauthorizedLogin):
            await self.login(portal, "alice", "new password")

    async def test_cache_is_bounded(self) -> None:
        write_accounts(self.path, {"a": "1", "b": "2", "c": "3"})
        runner = CountingRunner(inline)
        portal = self.portal(runner, cache_size=2)
        for user, password in [("a", "1"), ("b", "2"), ("c", "3"), ("b", "2"), ("c", "3")]:
            await self.login(portal, user, password)
        self.assertEqual(len(runner.calls), 3)
        await self.login(portal, "a", "1")  # the least recently used was dropped
        self.assertEqual(len(runner.calls), 4)

    def test_cache_never_holds_the_password(self) -> None:
        runner = CountingRunner(inline)
        checker = AccountsChecker(self.accounts, runner)
        checker.requestAvatarId(UsernamePassword(b"alice", PASSWORD.encode()))
        self.assertEqual(len(checker._verified), 1)
        (key,) = checker._verified
        self.assertNotIn(PASSWORD.encode(), key)
        self.assertNotIn(hashlib.sha256(PASSWORD.encode()).digest(), key)

    def test_at_most_max_concurrent_checks(self) -> None:
        held = HeldRunner()
        portal = self.portal(held, max_concurrent=2)
        results: list[object] = []
        for n in range(6):
            password = PASSWORD if n % 2 else "wrong"
            d = portal.login(UsernamePassword(b"alice", password.encode()), None, IViewer)
            d.addBoth(results.append)
        # nothing was checked inline: every login waits for the runner
        self.assertEqual(results, [])
        self.assertEqual(len(held.waiting), 2)
        while held.waiting:
            held.release_one()
            self.assertLessEqual(len(held.waiting), 2)
        self.assertEqual(held.most_at_once, 2)
        self.assertEqual(len(results), 6)


class CredentialsFromTests(TestCase):
    def basic(self, raw: bytes) -> str:
        return "Basic " + base64.b64encode(raw).decode()

    def assertUsernamePassword(self, credentials: object, user: bytes, password: bytes) -> None:
        assert isinstance(credentials, UsernamePassword)
        self.assertEqual((credentials.username, credentials.password), (user, password))

    def test_nothing_is_anonymous(self) -> None:
        self.assertIsInstance(credentials_from(None, None, None), Anonymous)
        self.assertIsInstance(credentials_from("", "", None), Anonymous)

    def test_query(self) -> None:
        self.assertUsernamePassword(credentials_from("alice", "pw", None), b"alice", b"pw")
        self.assertUsernamePassword(credentials_from("alice", None, None), b"alice", b"")
        basic = self.basic(b"bob:other")
        self.assertUsernamePassword(credentials_from("alice", "pw", basic), b"alice", b"pw")
        with self.assertRaises(LoginFailed):
            credentials_from(None, "pw", None)
        with self.assertRaises(LoginFailed):
            credentials_from("\udcff", "pw", None)

    def test_basic(self) -> None:
        raw = "jürgen:pa:ss wörd".encode()
        self.assertUsernamePassword(
            credentials_from(None, None, self.basic(raw)), "jürgen".encode(), "pa:ss wörd".encode()
        )
        self.assertUsernamePassword(
            credentials_from(None, None, "bAsIc  " + base64.b64encode(b"a:").decode()), b"a", b""
        )
        # RFC 7617's own example
        self.assertUsernamePassword(
            credentials_from(None, None, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            b"Aladdin",
            b"open sesame",
        )

    def test_malformed_basic(self) -> None:
        for header in [
            "",
            "Basic",
            "Basic !!!!",
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ",  # padding cut
            self.basic(b"no colon"),
            self.basic(b"\xff:\xfe"),
            "Bearer abc.def",
            "Digest username=alice",
            "Basic " + base64.b64encode(b"a:b").decode() + " extra",
        ]:
            with self.assertRaises(LoginFailed, msg=header):
                credentials_from(None, None, header)

    def test_challenge(self) -> None:
        self.assertEqual(WWW_AUTHENTICATE, 'Basic realm="twistedspy", charset="UTF-8"')


class ThrottleTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.throttle = LoginThrottle(self.clock, max_failures=3, window=60.0)

    def fail_from(self, client: str, times: int = 1) -> None:
        for _ in range(times):
            self.throttle.begin(client)
            self.throttle.end(client, failed=True)

    def test_throttled_after_max_failures_then_lifted(self) -> None:
        self.fail_from("192.0.2.1", 2)
        self.clock.advance(10)
        self.fail_from("192.0.2.1")
        with self.assertRaises(LoginThrottled) as caught:
            self.throttle.begin("192.0.2.1")
        self.assertEqual(caught.exception.retry_after, 50)
        self.clock.advance(49)
        with self.assertRaises(LoginThrottled) as caught:
            self.throttle.begin("192.0.2.1")
        self.assertEqual(caught.exception.retry_after, 1)
        self.clock.advance(1)
        # the two first failures have left the window: two attempts more
        self.fail_from("192.0.2.1", 2)
        with self.assertRaises(LoginThrottled) as caught:
            self.throttle.begin("192.0.2.1")
        self.assertEqual(caught.exception.retry_after, 10)
        self.clock.advance(70)
        self.throttle.begin("192.0.2.1")

    def test_other_clients_unaffected(self) -> None:
        self.fail_from("192.0.2.1", 3)
        self.throttle.begin("192.0.2.2")
        self.throttle.end("192.0.2.2", failed=False)
        with self.assertRaises(LoginThrottled):
            self.throttle.begin("192.0.2.1")

    def test_success_does_not_wipe_failures(self) -> None:
        self.fail_from("192.0.2.1", 2)
        self.throttle.begin("192.0.2.1")
        self.throttle.end("192.0.2.1", failed=False)
        self.fail_from("192.0.2.1")
        with self.assertRaises(LoginThrottled):
            self.throttle.begin("192.0.2.1")

    def test_check_counts_nothing(self) -> None:
        for _ in range(10):
            self.throttle.check("192.0.2.1")
        self.fail_from("192.0.2.1", 3)
        with self.assertRaises(LoginThrottled) as caught:
            self.throttle.check("192.0.2.1")
        self.assertEqual(caught.exception.retry_after, 60)
        self.throttle.check("192.0.2.2")

    def test_attempts_in_flight_count(self) -> None:
        for _ in range(3):
            self.throttle.begin("192.0.2.1")
        with self.assertRaises(LoginThrottled) as caught:
            self.throttle.begin("192.0.2.1")
        self.assertEqual(caught.exception.retry_after, 1)
        self.throttle.end("192.0.2.1", failed=False)
        self.throttle.begin("192.0.2.1")

    def test_ipv6_counted_per_64(self) -> None:
        self.fail_from("2001:db8::1")
        self.fail_from("2001:db8::2")
        self.fail_from("2001:db8:0:0:ffff::3")
        with self.assertRaises(LoginThrottled) as caught:
            self.throttle.begin("2001:db8::99")
        self.assertEqual(caught.exception.budget, "address")
        self.throttle.begin("2001:db8:0:1::1")
        # an IPv4-mapped address is its IPv4 address
        self.fail_from("::ffff:192.0.2.9", 3)
        with self.assertRaises(LoginThrottled):
            self.throttle.begin("192.0.2.9")

    def test_ipv4_network_per_24(self) -> None:
        throttle = LoginThrottle(self.clock, max_failures=3, network_failures=5, window=60.0)
        for n in range(5):
            throttle.begin(f"192.0.2.{n}")
            throttle.end(f"192.0.2.{n}", failed=True)
        with self.assertRaises(LoginThrottled) as caught:
            throttle.begin("192.0.2.200")
        self.assertEqual(caught.exception.budget, "network")
        self.assertEqual(caught.exception.retry_after, 60)
        throttle.begin("192.0.3.1")  # the next /24 has its own budget

    def test_ipv6_network_per_56(self) -> None:
        throttle = LoginThrottle(self.clock, max_failures=3, network_failures=5, window=60.0)
        # five /64s of one /56: each within its own address budget
        for n in range(5):
            client = f"2001:db8:0:{n:x}::1"
            throttle.begin(client)
            throttle.end(client, failed=True)
        with self.assertRaises(LoginThrottled) as caught:
            throttle.begin("2001:db8:0:ff::1")
        self.assertEqual(caught.exception.budget, "network")
        throttle.begin("2001:db8:0:100::1")  # the next /56

    def test_global_budget(self) -> None:
        throttle = LoginThrottle(
            self.clock, max_failures=3, network_failures=3, global_failures=4, window=60.0
        )
        for n in range(4):
            throttle.begin(f"198.51.{n}.1")
            throttle.end(f"198.51.{n}.1", failed=True)
        self.clock.advance(30)
        # a network that never failed is refused too, until the oldest failure expires
        with self.assertRaises(LoginThrottled) as caught:
            throttle.begin("203.0.113.7")
        self.assertEqual((caught.exception.budget, caught.exception.retry_after), ("everyone", 30))
        self.clock.advance(30)
        throttle.begin("203.0.113.7")

    def test_memory_bounded(self) -> None:
        throttle = LoginThrottle(self.clock, max_failures=1, window=60.0, max_clients=2)
        for client in ["a", "b", "c"]:
            throttle.begin(client)
            throttle.end(client, failed=True)
        throttle.begin("a")  # the stalest was dropped
        with self.assertRaises(LoginThrottled):
            throttle.begin("c")
        self.clock.advance(61)
        throttle.begin("x")
        self.assertEqual([len(window.failures) for _, window in throttle._budgets], [0, 0, 0])


class TrustedProxiesTests(TestCase):
    def test_none_by_default(self) -> None:
        proxies = TrustedProxies()
        self.assertEqual(proxies.client_of("127.0.0.1", ["192.0.2.7"]), "127.0.0.1")

    def test_believed_only_from_a_trusted_peer(self) -> None:
        proxies = TrustedProxies(["10.0.0.0/8", "127.0.0.1"])
        self.assertEqual(proxies.client_of("127.0.0.1", ["192.0.2.7"]), "192.0.2.7")
        self.assertEqual(proxies.client_of("192.0.2.1", ["192.0.2.7"]), "192.0.2.1")
        self.assertEqual(proxies.client_of("127.0.0.1", []), "127.0.0.1")

    def test_rightmost_untrusted_hop_is_the_client(self) -> None:
        proxies = TrustedProxies(["10.0.0.0/8", "127.0.0.1"])
        # the client wrote "1.1.1.1" itself; 192.0.2.7 is who connected to the first proxy
        forwarded = ["1.1.1.1, 192.0.2.7", "10.1.2.3"]
        self.assertEqual(proxies.client_of("127.0.0.1", forwarded), "192.0.2.7")
        # only proxies all the way: the leftmost one named
        self.assertEqual(proxies.client_of("127.0.0.1", ["10.0.0.5"]), "10.0.0.5")
        # junk stops the walk at the last address known good
        self.assertEqual(proxies.client_of("127.0.0.1", ["192.0.2.7, junk"]), "127.0.0.1")
        self.assertEqual(proxies.client_of("127.0.0.1", ["junk, 10.9.9.9"]), "10.9.9.9")


class GatekeeperTests(TestCase):
    def setUp(self) -> None:
        self.path = Path(self.mktemp())
        write_accounts(self.path, {"alice": PASSWORD})
        self.events = EventList()
        self.log = Logger(observer=self.events)
        self.clock = Clock()
        checker = AccountsChecker(AccountsFile(self.path), inline)
        self.gatekeeper = Gatekeeper(
            Portal(ViewerRealm(), [checker]),
            LoginThrottle(self.clock, max_failures=2, window=60.0),
            self.log,
        )

    def outcomes(self) -> list[tuple[str, object, object, object]]:
        return [
            (
                e["log_level"].name,
                e["spy_fields"]["user"],
                e["spy_fields"]["client"],
                e["spy_fields"]["outcome"],
            )
            for e in self.events
            if e.get("spy_event") == "authorization"
        ]

    def assertPasswordNowhere(self, password: str) -> None:
        for event in self.events:
            self.assertNotIn(password, repr(event))
            self.assertNotIn(password, formatEvent(event))

    async def test_ok_failed_throttled(self) -> None:
        viewer = await self.gatekeeper.login(
            UsernamePassword(b"alice", PASSWORD.encode()), "192.0.2.1"
        )
        self.assertEqual(viewer, Viewer("alice"))
        for _ in range(2):
            with self.assertRaises(LoginFailed):
                await self.gatekeeper.login(UsernamePassword(b"alice", b"guess-1"), "192.0.2.1")
        with self.assertRaises(LoginThrottled) as caught:
            await self.gatekeeper.login(UsernamePassword(b"alice", PASSWORD.encode()), "192.0.2.1")
        self.assertEqual(caught.exception.retry_after, 60)
        self.assertEqual(
            self.outcomes(),
            [
                ("info", "alice", "192.0.2.1", "ok"),
                ("warn", "alice", "192.0.2.1", "failed"),
                ("warn", "alice", "192.0.2.1", "failed"),
                ("warn", "alice", "192.0.2.1", "throttled"),
            ],
        )
        self.assertPasswordNowhere(PASSWORD)
        self.assertPasswordNowhere("guess-1")

    async def test_anonymous_refused_but_not_throttled(self) -> None:
        for _ in range(5):
            with self.assertRaises(LoginFailed):
                await self.gatekeeper.login(Anonymous(), "192.0.2.1")
        self.assertEqual(self.outcomes()[-1], ("info", None, "192.0.2.1", "missing"))
        viewer = await self.gatekeeper.login(
            UsernamePassword(b"alice", PASSWORD.encode()), "192.0.2.1"
        )
        self.assertEqual(viewer, Viewer("alice"))

    async def test_checker_breakdown_is_not_a_login_failure(self) -> None:
        def broken(f: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred[Any]:
            raise RuntimeError("thread pool gone")

        gatekeeper = Gatekeeper(
            Portal(ViewerRealm(), [AccountsChecker(AccountsFile(self.path), broken)]),
            LoginThrottle(self.clock),
            self.log,
        )
        with self.assertRaises(RuntimeError):
            await gatekeeper.login(UsernamePassword(b"alice", PASSWORD.encode()), "192.0.2.1")
        self.assertEqual(self.outcomes(), [("error", "alice", "192.0.2.1", "error")])

    async def test_security_off_lets_everyone_in(self) -> None:
        gatekeeper = make_gatekeeper(Settings(security=False), self.clock, inline, self.log)
        for credentials in [Anonymous(), UsernamePassword(b"mallory", b"whatever")]:
            self.assertEqual(await gatekeeper.login(credentials, "192.0.2.1"), Viewer(None))
        self.assertPasswordNowhere("whatever")

    async def test_security_off_asks_the_portal_every_time(self) -> None:
        gatekeeper = make_gatekeeper(Settings(security=False), self.clock, inline, self.log)
        asked: list[object] = []
        portal = gatekeeper._portal
        real_login = portal.login

        def login(credentials: object, mind: object, *interfaces: Any) -> Deferred[Any]:
            asked.append(credentials)
            return real_login(credentials, mind, *interfaces)  # type: ignore[arg-type]

        self.patch(portal, "login", login)
        for client in ["192.0.2.1", "192.0.2.2"]:
            self.assertEqual(await gatekeeper.login(Anonymous(), client), Viewer(None))
        self.assertEqual(len(asked), 2)
        self.assertTrue(all(IAnonymous.providedBy(c) for c in asked), asked)
        self.assertEqual(
            self.outcomes(), [("debug", None, c, "ok") for c in ["192.0.2.1", "192.0.2.2"]]
        )

    async def test_security_off_portal_that_refuses(self) -> None:
        @implementer(ICredentialsChecker)
        class Refusing:
            credentialInterfaces = (IAnonymous,)  # noqa: N815 (the interface's name)

            def requestAvatarId(self, credentials: object) -> Deferred[bytes | tuple[()]]:
                return maybeDeferred(self.refuse)

            def refuse(self) -> bytes | tuple[()]:
                raise UnauthorizedLogin("no")

        gatekeeper = Gatekeeper(
            Portal(ViewerRealm(), [Refusing()]),
            LoginThrottle(self.clock),
            self.log,
            ignore_credentials=True,
        )
        with self.assertRaises(LoginFailed):
            await gatekeeper.login(UsernamePassword(b"alice", b"x"), "192.0.2.1")
        self.assertEqual(self.outcomes(), [("info", None, "192.0.2.1", "missing")])

    async def test_security_on(self) -> None:
        settings = Settings(security=True, account_file=self.path)
        gatekeeper = make_gatekeeper(settings, self.clock, inline, self.log)
        with self.assertRaises(LoginFailed):
            await gatekeeper.login(Anonymous(), "192.0.2.1")
        with self.assertRaises(LoginFailed):
            await gatekeeper.login(UsernamePassword(b"alice", b"nope"), "192.0.2.1")
        viewer = await gatekeeper.login(UsernamePassword(b"alice", PASSWORD.encode()), "192.0.2.1")
        self.assertEqual(viewer, Viewer("alice"))

    async def test_client_named_by_a_trusted_proxy(self) -> None:
        checker = AccountsChecker(AccountsFile(self.path), inline)
        gatekeeper = Gatekeeper(
            Portal(ViewerRealm(), [checker]),
            LoginThrottle(self.clock, max_failures=2, window=60.0),
            self.log,
            proxies=TrustedProxies(["127.0.0.1"]),
        )
        wrong = UsernamePassword(b"alice", b"guess")
        for _ in range(2):
            with self.assertRaises(LoginFailed):
                await gatekeeper.login(wrong, "127.0.0.1", ["192.0.2.5"])
        with self.assertRaises(LoginThrottled):
            await gatekeeper.login(wrong, "127.0.0.1", ["192.0.2.5"])
        # another client behind the same proxy has its own budget
        right = UsernamePassword(b"alice", PASSWORD.encode())
        self.assertEqual(
            await gatekeeper.login(right, "127.0.0.1", ["198.51.100.9"]), Viewer("alice")
        )
        # and an untrusted peer cannot name someone else
        with self.assertRaises(LoginFailed):
            await gatekeeper.login(wrong, "203.0.113.1", ["192.0.2.5"])
        self.assertEqual(
            [client for _, _, client, _ in self.outcomes()],
            ["192.0.2.5", "192.0.2.5", "192.0.2.5", "198.51.100.9", "203.0.113.1"],
        )

    def test_kept_login_stale_if_the_file_changed_during_its_check(self) -> None:
        held = HeldRunner()
        accounts = AccountsFile(self.path)
        gatekeeper = Gatekeeper(
            Portal(ViewerRealm(), [AccountsChecker(accounts, held)]),
            LoginThrottle(self.clock),
            self.log,
            accounts=accounts,
            reuse=10,
        )
        kept = ConnectionLogin()
        header = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()

        def admit() -> Viewer | Deferred[Viewer]:
            return gatekeeper.admit({}, lambda: header, "192.0.2.1", (), kept)

        first = admit()
        assert isinstance(first, Deferred)
        status = self.path.stat()
        os.utime(self.path, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))
        held.release_one()
        self.assertEqual(self.successResultOf(first), Viewer("alice"))
        # checked against the file as it was: the next request goes through the Portal
        # again (whose checker remembers the password: no second bcrypt check)
        second = admit()
        assert isinstance(second, Deferred)
        self.assertEqual(self.successResultOf(second), Viewer("alice"))
        self.assertEqual(admit(), Viewer("alice"))
        self.assertEqual(held.waiting, [])

    def test_health_problem(self) -> None:
        settings = Settings(security=True, account_file=self.path)
        gatekeeper = make_gatekeeper(settings, self.clock, inline, self.log)
        self.assertIsNone(gatekeeper.health_problem())
        self.path.unlink()
        self.assertEqual(
            gatekeeper.health_problem(),
            "the accounts file cannot be read whole; every login is refused",
        )
        gatekeeper = make_gatekeeper(Settings(), self.clock, inline, self.log)
        self.assertIsNone(gatekeeper.health_problem())

    def test_security_on_without_accounts_stops_start_up(self) -> None:
        settings = Settings(security=True, account_file=Path(self.mktemp()))
        with self.assertRaises(AccountsError):
            make_gatekeeper(settings, self.clock, inline, self.log)

    def test_anonymous_portal_as_twisted_documents(self) -> None:
        """Security off is the stock AllowAnonymousAccess checker, nothing custom."""
        portal = Portal(ViewerRealm(), [AllowAnonymousAccess()])
        results: list[object] = []
        portal.login(Anonymous(), None, IViewer).addCallback(results.append)
        self.assertEqual(results[0][1], Viewer(None))  # type: ignore[index]
