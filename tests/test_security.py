# -*- test-case-name: tests.test_security -*-
"""docs/security.md over a real socket: logins, throttling, Host allow-list, CSRF, secrets, TLS.

Accounts are written by the real `htpasswd -B` (apache2-utils); clients are plain
`http.client`, `curl` and Chromium talking to a server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import ipaddress
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.portal import Portal
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, fail
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests import servers
from tests.attacks import handshake
from tests.browser import chromium
from tests.daemons import (
    TWISTD,
    SpyProcess,
    child_environment,
    free_port,
    journal_text,
    run_to_exit,
    socket_activated,
)
from tests.servers import Reply, RunningServer, start_server
from tests.support import require_tool
from twistedspy.auth import Gatekeeper, LoginThrottle, ViewerRealm, make_gatekeeper
from twistedspy.interfaces import IFormModule
from twistedspy.query import Query, Submission
from twistedspy.report import Report, Table

ROOT = Path(__file__).resolve().parent.parent
CHALLENGE = 'Basic realm="twistedspy", charset="UTF-8"'
#: the password every test account has; the tests look for it in everything written
SECRET = "Tr0ub4dor-and-3-horses"
#: a second loopback address: the kernel routes all of 127.0.0.0/8 to lo, so a client
#: bound to it is a different client to the server (for the per-address throttle)
OTHER_CLIENT = "127.0.0.2"


# -- accounts, written by the real htpasswd


def htpasswd(accounts: Path, user: str, password: str) -> None:
    """Add or replace `user` with `htpasswd -B` (cost 5: the tests need speed, not strength)."""
    tool = require_tool("htpasswd")
    create = [] if accounts.exists() else ["-c"]
    subprocess.run(
        [tool, "-B", "-C", "5", "-i", *create, str(accounts), user],
        input=password.encode("utf-8"),
        capture_output=True,
        check=True,
        timeout=30,
    )


def accounts_file(case: TestCase, **users: str) -> Path:
    """An accounts file outside the server's folder (that folder is searched for secrets)."""
    folder = Path(case.mktemp())
    folder.mkdir(parents=True)
    path = folder / "accounts"
    for user, password in users.items():
        htpasswd(path, user, password)
    return path


def secure_server(case: TestCase, **overrides: Any) -> tuple[RunningServer, Path]:
    accounts = accounts_file(case, alice=SECRET)
    server = start_server(case, security=True, account_file=accounts, **overrides)
    return server, accounts


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


# -- clients


def fetch(
    server: RunningServer,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    method: str = "GET",
    body: bytes = b"",
    source: str | None = None,
) -> Deferred[Reply]:
    """One request over a fresh connection, from `source` as client address if given."""
    return deferToThread(servers.fetch, server.port, method, path, headers or {}, body, source)


def raw_request(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def files_written(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


# -- a form module for the CSRF tests (the message module is not on this branch)


@implementer(IFormModule)
class RecordingForm:
    """Accepts any POST and remembers it, so a test sees which posts got through."""

    name = "echo"
    title = "Echo"
    description = "Remembers what was posted."

    def __init__(self) -> None:
        self.received: list[Submission] = []

    def collect(self, query: Query) -> Report:
        return Report(title="Echo", tables=[Table(title="Posts", columns=["n"], rows=[[0]])])

    def submit(self, submission: Submission) -> Report:
        self.received.append(submission)
        rows = [[len(self.received)]]
        return Report(title="Stored", tables=[Table(title="Posts", columns=["n"], rows=rows)])


@implementer(ICredentialsChecker)
class BrokenChecker:
    """A checker that breaks the way a bug or a lost worker thread would."""

    credentialInterfaces = (IUsernamePassword,)  # noqa: N815 (ICredentialsChecker's name)

    def requestAvatarId(self, credentials: object) -> Deferred[bytes | tuple[()]]:
        return fail(RuntimeError("the checker broke"))


class LoginTests(TestCase):
    async def test_query_login(self) -> None:
        server, _ = secure_server(self)
        reply = await fetch(server, f"/version?login=alice&password={SECRET}")
        self.assertEqual(reply.status, 200)
        self.assertIn(b"kernel build", reply.body)

    async def test_basic_login(self) -> None:
        server, _ = secure_server(self)
        reply = await fetch(server, "/version?format=json", basic("alice", SECRET))
        self.assertEqual(reply.status, 200)
        self.assertEqual(json.loads(reply.body)["module"], "version")

    async def test_refused_logins_are_401_with_the_challenge(self) -> None:
        server, _ = secure_server(self)
        long_password = "x" * 80
        attempts = [
            ("no credentials", "/version", {}),
            ("wrong password, query", "/version?login=alice&password=wrong", {}),
            ("wrong password, Basic", "/version", basic("alice", "wrong")),
            ("unknown user, query", f"/version?login=mallory&password={SECRET}", {}),
            ("unknown user, Basic", "/version", basic("mallory", SECRET)),
            ("empty password, query", "/version?login=alice&password=", {}),
            ("empty password, Basic", "/version", basic("alice", "")),
            ("80-byte password, query", f"/version?login=alice&password={long_password}", {}),
            ("80-byte password, Basic", "/version", basic("alice", long_password)),
            ("password without login", f"/version?password={SECRET}", {}),
            ("another scheme", "/version", {"Authorization": "Bearer abc"}),
        ]
        for why, path, headers in attempts:
            reply = await fetch(server, path, headers)
            self.assertEqual(reply.status, 401, why)
            self.assertEqual(reply.header("WWW-Authenticate"), CHALLENGE, why)
            self.assertIn(b"needs a valid user name and password", reply.body, why)

    async def test_80_byte_password_of_a_real_account(self) -> None:
        # htpasswd -B hashes the first 72 bytes; the same 80 bytes log in here, never a 500.
        long_password = "p" * 40 + "q" * 40
        accounts = accounts_file(self, carol=long_password)
        server = start_server(self, security=True, account_file=accounts)
        reply = await fetch(server, "/version", basic("carol", long_password))
        self.assertEqual(reply.status, 200)

    async def test_every_page_needs_credentials(self) -> None:
        server, _ = secure_server(self)
        for path in ("/", "/index", "/version", "/nonesuch", "/nonesuch/deeper"):
            reply = await fetch(server, path)
            self.assertEqual(reply.status, 401, path)
            self.assertNotIn(b"nonesuch", reply.body, path)
        # With credentials an unknown module is 404: the 401 came before the lookup.
        reply = await fetch(server, "/nonesuch", basic("alice", SECRET))
        self.assertEqual(reply.status, 404)
        reply = await fetch(server, "/", basic("alice", SECRET))
        self.assertEqual(reply.status, 200)
        # For load balancers and service managers (docs/operations.md).
        reply = await fetch(server, "/-/healthy")
        self.assertEqual(reply.status, 200)

    async def test_security_off_asks_nothing(self) -> None:
        server = start_server(self)
        for headers in ({}, basic("alice", "wrong"), {"Authorization": "Bearer abc"}):
            reply = await fetch(server, "/version", headers)
            self.assertEqual(reply.status, 200, headers)
        reply = await fetch(server, "/version?login=alice&password=wrong")
        self.assertEqual(reply.status, 200)

    async def test_hot_reload_of_the_accounts_file(self) -> None:
        server, accounts = secure_server(self)
        reply = await fetch(server, "/version", basic("bob", "bobs-new-password"))
        self.assertEqual(reply.status, 401)
        await deferToThread(htpasswd, accounts, "bob", "bobs-new-password")
        reply = await fetch(server, "/version", basic("bob", "bobs-new-password"))
        self.assertEqual(reply.status, 200)
        # A changed password takes effect at once too, cached success or not.
        await deferToThread(htpasswd, accounts, "alice", "alices-second-password")
        reply = await fetch(server, "/version", basic("alice", SECRET))
        self.assertEqual(reply.status, 401)
        reply = await fetch(server, "/version", basic("alice", "alices-second-password"))
        self.assertEqual(reply.status, 200)
        self.assertIn("outcome=reloaded", server.journal_text())

    async def test_failed_logins_journalled_with_the_client(self) -> None:
        server, _ = secure_server(self)
        await fetch(server, "/version", basic("alice", "wrong"))
        await fetch(server, "/version", basic("alice", SECRET), source=OTHER_CLIENT)
        journal = server.journal_text()
        self.assertIn("user=alice client=127.0.0.1 outcome=failed", journal)
        self.assertIn(f"user=alice client={OTHER_CLIENT} outcome=ok", journal)

    async def test_broken_checker_is_500_with_a_traceback(self) -> None:
        server, _ = secure_server(self)
        portal = Portal(ViewerRealm(), [BrokenChecker()])
        gatekeeper = Gatekeeper(portal, LoginThrottle(reactor), server.service.log)
        server.service.dispatcher.gatekeeper = gatekeeper
        reply = await fetch(server, "/version", basic("alice", SECRET))
        self.assertEqual(reply.status, 500)
        self.assertIn(b"could not be checked", reply.body)
        self.assertNotIn(b"Traceback", reply.body)
        self.assertNotIn(b"the checker broke", reply.body)
        journal = server.journal_text()
        self.assertIn("login-error", journal)
        self.assertIn("RuntimeError: the checker broke", journal)
        # Not let in, and the server still serves.
        reply = await fetch(server, "/version", basic("alice", SECRET))
        self.assertEqual(reply.status, 500)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)


def clocked_gatekeeper(server: RunningServer) -> task.Clock:
    """Give the server the gatekeeper the service builds, with a clock the test moves."""
    clock = task.Clock()
    server.service.dispatcher.gatekeeper = make_gatekeeper(
        server.service.settings, clock, server.service.pools.logins, server.service.log
    )
    return clock


class ThrottleTests(TestCase):
    async def fail_until_throttled(self, server: RunningServer, limit: int = 10) -> Reply:
        for attempt in range(limit):
            reply = await fetch(server, "/version", basic("alice", f"guess-{attempt}"))
            self.assertEqual(reply.status, 401, attempt)
        return await fetch(server, "/version", basic("alice", "one-more-guess"))

    async def test_429_after_repeated_failures_other_clients_unaffected(self) -> None:
        server, _ = secure_server(self)
        reply = await self.fail_until_throttled(server)
        self.assertEqual(reply.status, 429)
        retry_after = int(reply.header("Retry-After") or "0")
        self.assertGreater(retry_after, 0)
        self.assertLessEqual(retry_after, 300)
        # The right password does not get through from a throttled address either ...
        reply = await fetch(server, "/version", basic("alice", SECRET))
        self.assertEqual(reply.status, 429)
        # ... but a user at another address is not affected.
        reply = await fetch(server, "/version", basic("alice", SECRET), source=OTHER_CLIENT)
        self.assertEqual(reply.status, 200)
        self.assertIn("client=127.0.0.1 outcome=throttled", server.journal_text())

    async def test_throttle_lifts_when_the_window_has_passed(self) -> None:
        server, _ = secure_server(self)
        clock = clocked_gatekeeper(server)
        reply = await self.fail_until_throttled(server)
        self.assertEqual(reply.status, 429)
        retry_after = int(reply.header("Retry-After") or "0")
        clock.advance(retry_after - 1)
        reply = await fetch(server, "/version", basic("alice", SECRET))
        self.assertEqual(reply.status, 429)
        clock.advance(1)
        reply = await fetch(server, "/version", basic("alice", SECRET))
        self.assertEqual(reply.status, 200)

    async def test_guesses_spread_over_a_network_are_throttled(self) -> None:
        # 14 wrong guesses from 14 addresses of one /24: each address is far within its
        # own budget, but the network's (12) is spent.
        server, _ = secure_server(self)
        statuses = []
        for n in range(10, 24):
            reply = await fetch(
                server, "/version", basic("alice", f"guess-{n}"), source=f"127.0.1.{n}"
            )
            statuses.append(reply.status)
        self.assertEqual(statuses, [401] * 12 + [429] * 2)
        self.assertIn("client=127.0.1.22 outcome=throttled budget=network", server.journal_text())
        # A neighbour that never failed is throttled with its network ...
        reply = await fetch(server, "/version", basic("alice", SECRET), source="127.0.1.99")
        self.assertEqual(reply.status, 429)
        # ... and another network is not.
        reply = await fetch(server, "/version", basic("alice", SECRET), source="127.0.2.99")
        self.assertEqual(reply.status, 200)

    async def test_right_password_while_throttled_then_after_the_delay(self) -> None:
        server, _ = secure_server(self)
        clock = clocked_gatekeeper(server)
        reply = await self.fail_until_throttled(server)
        self.assertEqual(reply.status, 429)
        # While throttled the password is not checked: right and wrong get the same
        # answer, byte for byte but the Date, and neither costs a bcrypt check.
        right = await server.exchange(raw_request("/version", _basic_line("alice", SECRET)))
        wrong = await server.exchange(raw_request("/version", _basic_line("alice", "nope")))
        self.assertEqual(_without_date(right), _without_date(wrong))
        self.assertTrue(right.startswith(b"HTTP/1.1 429 "), right[:40])
        journal = server.journal_text()
        self.assertEqual(journal.count("outcome=throttled"), 3)
        # Once the throttle's delay has passed, the right password gets in.
        retry_after = int(reply.header("Retry-After") or "0")
        clock.advance(retry_after)
        reply = await fetch(server, "/version", basic("alice", SECRET))
        self.assertEqual(reply.status, 200)

    async def test_trusted_proxy_names_the_client(self) -> None:
        server, _ = secure_server(self, trusted_proxies=("127.0.0.1",))
        for attempt in range(10):
            headers = {**basic("alice", f"guess-{attempt}"), "X-Forwarded-For": "192.0.2.5"}
            reply = await fetch(server, "/version", headers)
            self.assertEqual(reply.status, 401)
        headers = {**basic("alice", SECRET), "X-Forwarded-For": "192.0.2.5"}
        self.assertEqual((await fetch(server, "/version", headers)).status, 429)
        # another client behind the same proxy is not throttled for it
        headers = {**basic("alice", SECRET), "X-Forwarded-For": "198.51.100.7"}
        self.assertEqual((await fetch(server, "/version", headers)).status, 200)
        journal = server.journal_text()
        self.assertIn("client=192.0.2.5 outcome=failed via=127.0.0.1", journal)
        self.assertIn("client=198.51.100.7 outcome=ok via=127.0.0.1", journal)

    async def test_forwarded_for_ignored_by_default(self) -> None:
        server, _ = secure_server(self)
        headers = {**basic("alice", "wrong"), "X-Forwarded-For": "192.0.2.5"}
        self.assertEqual((await fetch(server, "/version", headers)).status, 401)
        journal = server.journal_text()
        self.assertIn("client=127.0.0.1 outcome=failed", journal)
        self.assertNotIn("192.0.2.5", journal)


def _kill_if_running(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()


def _basic_line(user: str, password: str) -> str:
    return "Authorization: " + basic(user, password)["Authorization"]


def _without_date(answer: bytes) -> bytes:
    return b"\r\n".join(
        line for line in answer.split(b"\r\n") if not line.lower().startswith(b"date:")
    )


def start_secure_daemon(case: TestCase, accounts: Path) -> SpyProcess:
    """twistedspy as `twistd spy`, Security on, with these accounts."""
    folder = Path(case.mktemp()).resolve()
    folder.mkdir(parents=True)
    logs = folder / "logs"
    argv = [*TWISTD, "-n", "--pidfile=", "spy", "--port=0", "--security=on"]
    argv += [f"--accounts={accounts.resolve()}", f"--log-dir={logs}"]
    spy = SpyProcess.start(argv, folder, logs)
    case.addCleanup(spy.stop)
    return spy


def status_of(spy: SpyProcess, path: str, headers: dict[str, str], source: str) -> int:
    return servers.fetch(spy.port, "GET", path, headers, source=source).status


class AccountsReloadTests(TestCase):
    def test_broken_edit_locks_everyone_out(self) -> None:
        accounts = accounts_file(self, alice=SECRET, bob=SECRET)
        spy = start_secure_daemon(self, accounts)
        self.assertEqual(status_of(spy, "/version", basic("bob", SECRET), "127.0.0.1"), 200)
        # bob removed in the same edit that adds an MD5 line twistedspy refuses
        alice_line = next(line for line in accounts.read_text().splitlines() if "alice" in line)
        accounts.write_text(f"{alice_line}\ncarol:$apr1$abcdefgh$0123456789abcdefghijkl\n")
        for user in ("bob", "alice"):
            self.assertEqual(status_of(spy, "/version", basic(user, SECRET), "127.0.0.1"), 401)
        reply = servers.fetch(spy.port, "GET", "/-/healthy", {})
        self.assertEqual(reply.status, 503)
        self.assertEqual(
            reply.body,
            b"twistedspy cannot serve pages: the accounts file cannot be read whole;"
            b" every login is refused.\n",
        )
        self.assertIn('outcome="everyone locked out until the file is fixed"', spy.journal())
        # fixed: alice is back, bob stays out
        accounts.write_text(alice_line + "\n")
        self.assertEqual(status_of(spy, "/version", basic("alice", SECRET), "127.0.2.1"), 200)
        self.assertEqual(status_of(spy, "/version", basic("bob", SECRET), "127.0.2.1"), 401)
        self.assertEqual(servers.fetch(spy.port, "GET", "/-/healthy", {}).status, 200)

    def test_deleted_file_locks_everyone_out(self) -> None:
        accounts = accounts_file(self, alice=SECRET)
        spy = start_secure_daemon(self, accounts)
        self.assertEqual(status_of(spy, "/version", basic("alice", SECRET), "127.0.0.1"), 200)
        accounts.unlink()
        self.assertEqual(status_of(spy, "/version", basic("alice", SECRET), "127.0.0.1"), 401)
        self.assertEqual(servers.fetch(spy.port, "GET", "/-/healthy", {}).status, 503)
        self.assertIn("cannot read the accounts file", spy.journal())


#: logins of each kind the timing test sends; one loopback /24 each, so no throttle
TIMING_ROUNDS = 15
#: the most the median unknown-user or cheap-account failure may differ from a wrong
#: password for the slowest account, as a ratio: generous for a busy machine, and far
#: from the 0.05 of a cost-4 dummy against a cost-10 account
TIMING_BOUND = 1.6


def login_ms(spy: SpyProcess, user: str, password: str, source: str) -> float:
    """Milliseconds from sending a request to its 401, over a new connection."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", spy.port, timeout=60, source_address=(source, 0)
    )
    try:
        connection.connect()
        started = time.perf_counter()
        connection.request("GET", "/version", headers=basic(user, password))
        response = connection.getresponse()
        response.read()
        elapsed = (time.perf_counter() - started) * 1000
    finally:
        connection.close()
    if response.status != 401:
        raise AssertionError(f"{user}: {response.status}, not 401")
    return elapsed


class TimingTests(TestCase):
    def test_unknown_user_costs_as_much_as_the_slowest_account(self) -> None:
        """Accounts of cost 4 and 10: every failure takes a cost-10 check's time."""
        accounts = Path(self.mktemp())
        cheap = bcrypt.hashpw(SECRET.encode(), bcrypt.gensalt(4)).decode()
        slow = bcrypt.hashpw(SECRET.encode(), bcrypt.gensalt(10)).decode()
        # most accounts cheap: the old "usual cost" of the dummy hash was 4
        accounts.write_text(f"ann:{cheap}\nbea:{cheap}\nslow:{slow}\n")
        spy = start_secure_daemon(self, accounts)
        unknown, cheap_wrong, slow_wrong = [], [], []
        for n in range(TIMING_ROUNDS):
            # interleaved, so that drift in the machine's load hits all three alike
            unknown.append(login_ms(spy, f"nobody{n}", "wrong", f"127.3.{n}.1"))
            cheap_wrong.append(login_ms(spy, "ann", f"wrong{n}", f"127.4.{n}.1"))
            slow_wrong.append(login_ms(spy, "slow", f"wrong{n}", f"127.5.{n}.1"))
        slowest = statistics.median(slow_wrong)
        for kind, times in (("unknown user", unknown), ("cost-4 account", cheap_wrong)):
            ratio = statistics.median(times) / slowest
            self.assertGreater(ratio, 1 / TIMING_BOUND, f"{kind}: {ratio:.2f}")
            self.assertLess(ratio, TIMING_BOUND, f"{kind}: {ratio:.2f}")


class SecretTests(TestCase):
    async def test_links_never_carry_the_password(self) -> None:
        server, _ = secure_server(self)
        for path in ("/processes?sort=pid&order=desc", "/version", "/diskfree"):
            separator = "&" if "?" in path else "?"
            reply = await fetch(server, f"{path}{separator}login=alice&password={SECRET}")
            self.assertEqual(reply.status, 200, path)
            self.assertIn(b"href=", reply.body, path)
            for needle in (b"login=", b"password=", SECRET.encode()):
                self.assertNotIn(needle, reply.body, path)

    async def test_the_secret_is_nowhere(self) -> None:
        server, _ = secure_server(self, log_mode="verbose")
        form = RecordingForm()
        server.service.modules[form.name] = form
        token = base64.b64encode(f"alice:{SECRET}".encode()).decode("ascii")
        wrong = f"{SECRET}-but-wrong"
        requests = [
            raw_request(f"/version?login=alice&password={SECRET}"),
            raw_request(f"/processes?login=alice&password={SECRET}&sort=rss"),
            raw_request(f"/nonesuch?login=alice&password={SECRET}"),
            raw_request(f"/version?login=alice&password={wrong}"),
            raw_request(f"/version?login=mallory&password={SECRET}"),
            raw_request(f"/version?password={SECRET}"),
            raw_request("/version", f"Authorization: Basic {token}"),
            raw_request("/version?format=json", f"Authorization: Basic {token}"),
            raw_request("/version", "Authorization: " + basic("alice", wrong)["Authorization"]),
            raw_request(f"/echo?login=alice&password={SECRET}", "Origin: http://evil.example"),
            # malformed ones: answered 400, and not echoed
            f"GET /version?password={SECRET} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".encode(),
        ]
        answers = [await server.exchange(request) for request in requests]
        statuses = [int(answer.split(b" ", 2)[1]) for answer in answers]
        self.assertEqual(statuses, [200, 200, 404, 401, 401, 401, 200, 200, 401, 200, 400])
        for needle in (SECRET.encode(), token.encode()):
            for answer in answers:
                self.assertNotIn(needle, answer)
        # Every file the server wrote: the journal, and anything else in its folder.
        written = files_written(server.folder)
        self.assertTrue(any(path.suffix == ".log" for path in written), written)
        for path in written:
            content = path.read_bytes()
            for needle in (SECRET.encode(), token.encode()):
                self.assertNotIn(needle, content, str(path))
        self.assertIn("password=***", server.journal_text())


class HostTests(TestCase):
    async def host_status(self, server: RunningServer, host: str, **headers: str) -> int:
        reply = await fetch(server, "/version", {"Host": host, **headers})
        return reply.status

    async def test_security_off_allows_only_loopback_names(self) -> None:
        server = start_server(self)
        port = server.port
        for host in ("localhost", f"localhost:{port}", "127.0.0.1", f"127.0.0.1:{port}"):
            self.assertEqual(await self.host_status(server, host), 200, host)
        for host in ("[::1]", f"[::1]:{port}", "LOCALHOST"):
            self.assertEqual(await self.host_status(server, host), 200, host)
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
            self.assertEqual(await self.host_status(server, host), 421, host)
        reply = await fetch(server, "/version", {"Host": "evil.example"})
        self.assertIn(b"does not answer for the host", reply.body)

    async def test_allowed_hosts(self) -> None:
        server = start_server(self, allowed_hosts=("spy.example",))
        self.assertEqual(await self.host_status(server, "spy.example"), 200)
        self.assertEqual(await self.host_status(server, f"spy.example:{server.port}"), 200)
        self.assertEqual(await self.host_status(server, "evil.example"), 421)

    async def test_allowed_hosts_star(self) -> None:
        server = start_server(self, allowed_hosts=("*",))
        self.assertEqual(await self.host_status(server, "anything.example"), 200)

    async def test_security_on_allows_any_host(self) -> None:
        server, _ = secure_server(self)
        credentials = basic("alice", SECRET)
        self.assertEqual(await self.host_status(server, "spy.example", **credentials), 200)
        # ... and without credentials it is the login, not the Host, that fails.
        self.assertEqual(await self.host_status(server, "spy.example"), 401)

    async def test_security_on_with_allowed_hosts(self) -> None:
        server, _ = secure_server(self, allowed_hosts=("spy.example",))
        credentials = basic("alice", SECRET)
        self.assertEqual(await self.host_status(server, "spy.example", **credentials), 200)
        self.assertEqual(await self.host_status(server, "evil.example", **credentials), 421)


class CrossSiteTests(TestCase):
    async def post(
        self, server: RunningServer, headers: dict[str, str], body: bytes = b"text=hi"
    ) -> Reply:
        headers = {"Content-Type": "application/x-www-form-urlencoded", **headers}
        return await fetch(server, "/echo", headers, method="POST", body=body)

    async def test_cross_site_posts_refused(self) -> None:
        server = start_server(self)
        form = RecordingForm()
        server.service.modules[form.name] = form
        own = f"http://127.0.0.1:{server.port}"
        refused = [
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
            {"Sec-Fetch-Site": "cross-site", "Origin": own},
            {"Origin": "http://evil.example"},
            {"Origin": f"http://127.0.0.1:{server.port + 1}"},
            {"Origin": f"https://evil.example:{server.port}"},
        ]
        for headers in refused:
            reply = await self.post(server, headers)
            self.assertEqual(reply.status, 403, headers)
            self.assertIn(b"another site", reply.body)
        self.assertEqual(form.received, [])
        accepted = [
            {},
            {"Origin": own},
            {"Sec-Fetch-Site": "same-origin", "Origin": "null"},
            {"Sec-Fetch-Site": "same-origin"},
            {"Sec-Fetch-Site": "none"},
        ]
        for headers in accepted:
            reply = await self.post(server, headers)
            self.assertEqual(reply.status, 200, headers)
        self.assertEqual(len(form.received), len(accepted))
        self.assertEqual(form.received[0].body, b"text=hi")

    async def test_credentials_do_not_make_a_cross_site_post_pass(self) -> None:
        # Browsers resend Basic credentials with another site's form: exactly CSRF.
        server, _ = secure_server(self)
        form = RecordingForm()
        server.service.modules[form.name] = form
        credentials = basic("alice", SECRET)
        reply = await self.post(server, {**credentials, "Sec-Fetch-Site": "cross-site"})
        self.assertEqual(reply.status, 403)
        reply = await self.post(server, {**credentials, "Sec-Fetch-Site": "same-origin"})
        self.assertEqual(reply.status, 200)
        self.assertEqual([s.user for s in form.received], ["alice"])
        # and the login comes first: no credentials, no 403 that says the module exists
        reply = await self.post(server, {"Sec-Fetch-Site": "cross-site"})
        self.assertEqual(reply.status, 401)


class SafeDefaultsTests(TestCase):
    def test_open_address_without_security_refused(self) -> None:
        folder = Path(self.mktemp())
        folder.mkdir()
        done = run_to_exit(
            [sys.executable, "-m", "twistedspy.cli", "-a", "0.0.0.0", "-p", "0"], cwd=folder
        )
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("refusing to serve 0.0.0.0 without security", done.stderr)
        for advice in ("--security on", "--insecure", "twistedspy-passwd"):
            self.assertIn(advice, done.stderr)
        self.assertFalse((folder / "logs").exists(), "nothing starts half-way")

    def test_open_address_with_insecure_starts(self) -> None:
        folder = Path(self.mktemp())
        folder.mkdir()
        process = subprocess.Popen(
            [sys.executable, "-m", "twistedspy.cli", "-a", "0.0.0.0", "-p", "0", "--insecure"],
            cwd=folder,
            env=child_environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(process.wait, 30)
        self.addCleanup(process.kill)
        logs = folder / "logs"
        deadline = time.monotonic() + 60
        started = ""
        while not started and process.poll() is None and time.monotonic() < deadline:
            journal = "".join(p.read_text() for p in logs.glob("*.log")) if logs.is_dir() else ""
            started = next((line for line in journal.splitlines() if " start " in line), "")
            time.sleep(0.05)
        self.assertIsNone(process.poll(), "it should still be serving")
        self.assertIn("address=0.0.0.0", started)
        process.send_signal(signal.SIGTERM)
        process.wait(30)

    def twistd_spy(self, *options: str) -> tuple[subprocess.CompletedProcess[str], Path]:
        folder = Path(self.mktemp()).resolve()
        folder.mkdir(parents=True)
        argv = [*TWISTD, "-n", "--pidfile=", "spy", f"--log-dir={folder / 'logs'}", *options]
        return run_to_exit(argv, cwd=folder), folder

    def test_public_socket_refused_whatever_the_listen_string(self) -> None:
        # Twisted binds the last interface= given; haproxy: wraps a tcp: endpoint the
        # old string check did not know. Both bind 0.0.0.0, and both must be refused.
        for listen in ("tcp:0:interface=127.0.0.1:interface=0.0.0.0", "haproxy:tcp:0"):
            done, folder = self.twistd_spy(f"--listen={listen}")
            output = done.stdout + done.stderr
            self.assertEqual(done.returncode, 1, output)
            self.assertRegex(
                output, r"twistedspy: refusing to serve 0\.0\.0\.0 port \d+ without security"
            )
            self.assertIn("--insecure", output)
            self.assertTrue((folder / "logs").is_dir(), "the journal was opened")
            self.assertNotIn(" start ", journal_text(folder / "logs"), listen)

    def test_loopback_socket_served_whatever_the_listen_string(self) -> None:
        folder = Path(self.mktemp()).resolve()
        folder.mkdir(parents=True)
        listen = "tcp:0:interface=0.0.0.0:interface=127.0.0.1"
        argv = [*TWISTD, "-n", "--pidfile=", "spy", f"--listen={listen}"]
        spy = SpyProcess.start([*argv, f"--log-dir={folder / 'logs'}"], folder, folder / "logs")
        self.addCleanup(spy.stop)
        self.assertIn("address=127.0.0.1", spy.journal())
        self.assertEqual(servers.fetch(spy.port, "GET", "/version", {}).status, 200)

    def test_systemd_socket_on_a_public_address_refused(self) -> None:
        folder = Path(self.mktemp()).resolve()
        folder.mkdir(parents=True)
        port = free_port()
        output = folder / "output.txt"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                socket_activated("0.0.0.0", port, folder / "logs"),
                cwd=folder,
                env=child_environment(),
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.addCleanup(process.wait)
        self.addCleanup(_kill_if_running, process)
        # The tool binds at once and starts twistd on the first connection, which then
        # refuses the socket it was handed: no answer, only a closed connection.
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = servers.exchange(port, raw_request("/version"), timeout=60)
                break
            except ConnectionResetError:
                answer = b""
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.assertEqual(answer, b"")
        self.assertEqual(process.wait(60), 1)
        self.assertRegex(
            output.read_text(), rf"refusing to serve 0\.0\.0\.0 port {port} without security"
        )

    async def test_root_warning_in_the_journal(self) -> None:
        if os.geteuid() != 0:
            self.skipTest("not running as root")
        server = start_server(self)
        self.assertIn("running as root", server.journal_text())

    async def test_no_root_warning_for_a_plain_user(self) -> None:
        if os.geteuid() == 0:
            self.skipTest("running as root")
        server = start_server(self)
        self.assertNotIn("running as root", server.journal_text())


# -- TLS


def self_signed_certificate(folder: Path, *, rsa_key: bool = False) -> tuple[Path, Path]:
    """
    A key and a certificate for `localhost` and 127.0.0.1, as PEM files: ECDSA, or RSA
    (which alone can offer the plain-RSA key exchange a non-forward-secret cipher uses).
    """
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = folder / "key.pem", folder / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def tls_server(
    case: TestCase, *, rsa_key: bool = False, **overrides: Any
) -> tuple[RunningServer, Path]:
    folder = Path(case.mktemp())
    folder.mkdir(parents=True)
    key, cert = self_signed_certificate(folder, rsa_key=rsa_key)
    listen = f"ssl:0:privateKey={key}:certKey={cert}:interface=127.0.0.1"
    return start_server(case, listen=listen, **overrides), cert


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("curl"), "--silent", "--show-error", "--max-time", "30", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TLSTests(TestCase):
    async def test_curl_verifies_and_fetches(self) -> None:
        require_tool("curl")
        server, cert = tls_server(self)
        url = f"https://localhost:{server.port}/version?format=json"
        done = await deferToThread(
            curl,
            "--cacert",
            str(cert),
            "--resolve",
            f"localhost:{server.port}:127.0.0.1",
            "--write-out",
            "\n%{http_code} %{http_version}",
            url,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        body, _, status = done.stdout.rpartition("\n")
        self.assertEqual(status, "200 1.1")
        self.assertEqual(json.loads(body)["module"], "version")

    async def test_curl_refuses_an_unknown_certificate(self) -> None:
        # The check above means something: without --cacert the same curl refuses.
        require_tool("curl")
        server, _ = tls_server(self)
        done = await deferToThread(
            curl,
            "--resolve",
            f"localhost:{server.port}:127.0.0.1",
            f"https://localhost:{server.port}/version",
        )
        self.assertEqual(done.returncode, 60, done.stderr)  # CURLE_PEER_FAILED_VERIFICATION

    async def test_basic_login_over_tls(self) -> None:
        require_tool("curl")
        accounts = accounts_file(self, alice=SECRET)
        server, cert = tls_server(self, security=True, account_file=accounts)
        base = f"https://localhost:{server.port}/version?format=json"
        resolve = f"localhost:{server.port}:127.0.0.1"
        done = await deferToThread(
            curl, "--cacert", str(cert), "--resolve", resolve, "-u", f"alice:{SECRET}", base
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(json.loads(done.stdout)["module"], "version")
        done = await deferToThread(
            curl,
            "--cacert",
            str(cert),
            "--resolve",
            resolve,
            "--write-out",
            "%{http_code}",
            "--output",
            os.devnull,
            base,
        )
        self.assertEqual(done.stdout, "401")

    async def test_chromium_gets_the_page(self) -> None:
        server, _ = tls_server(self)
        url = f"https://127.0.0.1:{server.port}/version"
        title = await deferToThread(chromium_title, url)
        self.assertIn("Version", title)


class TLSPolicyTests(TestCase):
    """TLS 1.2 or later, forward-secret AEAD ciphers only, HSTS when asked: as openssl sees it."""

    def setUp(self) -> None:
        require_tool("openssl")

    async def test_versions(self) -> None:
        server, _ = tls_server(self, rsa_key=True)
        ok, chosen = await deferToThread(handshake, server.port, "-tls1_3")
        self.assertTrue(ok, chosen)
        self.assertTrue(chosen.startswith("TLSv1.3 TLS_"), chosen)
        ok, chosen = await deferToThread(handshake, server.port, "-tls1_2")
        self.assertTrue(ok, chosen)
        # the server's order: the first of Mozilla's list that an RSA key can do
        self.assertEqual(chosen, "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256")
        # the client allows TLS 1.1 with any cipher; the server does not
        ok, chosen = await deferToThread(
            handshake, server.port, "-tls1_1", "-cipher", "ALL:@SECLEVEL=0"
        )
        self.assertFalse(ok, chosen)

    async def test_tls11_refused_even_with_every_cipher_allowed(self) -> None:
        # OpenSSL 3 refuses TLS 1.1 at its default security level by itself; with that
        # level lowered, it is TLSMinVersion that still refuses it.
        server, _ = tls_server(self, rsa_key=True, tls_ciphers="ALL:@SECLEVEL=0")
        ok, chosen = await deferToThread(
            handshake, server.port, "-tls1_1", "-cipher", "ALL:@SECLEVEL=0"
        )
        self.assertFalse(ok, chosen)
        ok, chosen = await deferToThread(
            handshake, server.port, "-tls1_2", "-cipher", "AES128-SHA:@SECLEVEL=0"
        )
        self.assertEqual(chosen, "TLSv1.2 AES128-SHA", "TLSCiphers is the operator's to widen")

    async def test_minimum_version_13(self) -> None:
        server, _ = tls_server(self, tls_min_version="1.3")
        ok, chosen = await deferToThread(handshake, server.port, "-tls1_2")
        self.assertFalse(ok, chosen)
        ok, chosen = await deferToThread(handshake, server.port, "-tls1_3")
        self.assertTrue(ok, chosen)

    async def test_only_forward_secret_aead_ciphers(self) -> None:
        server, _ = tls_server(self, rsa_key=True)
        refused = [
            "AES128-GCM-SHA256",  # RSA key exchange: no forward secrecy
            "AES256-GCM-SHA384",
            "ECDHE-RSA-AES128-SHA",  # CBC: not AEAD
            "ECDHE-RSA-AES256-SHA384",
        ]
        for cipher in refused:
            ok, chosen = await deferToThread(handshake, server.port, "-tls1_2", "-cipher", cipher)
            self.assertFalse(ok, f"{cipher}: {chosen}")
        for cipher in ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-CHACHA20-POLY1305"):
            ok, chosen = await deferToThread(handshake, server.port, "-tls1_2", "-cipher", cipher)
            self.assertEqual(chosen, f"TLSv1.2 {cipher}")

    async def test_cipher_list_option(self) -> None:
        server, _ = tls_server(self, tls_ciphers="ECDHE-ECDSA-CHACHA20-POLY1305")
        ok, chosen = await deferToThread(
            handshake, server.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"
        )
        self.assertFalse(ok, chosen)
        ok, chosen = await deferToThread(handshake, server.port, "-tls1_2")
        self.assertEqual(chosen, "TLSv1.2 ECDHE-ECDSA-CHACHA20-POLY1305")

    async def hsts_header(self, server: RunningServer, scheme: str) -> str | None:
        done = await deferToThread(
            curl,
            "--insecure",
            "--head",
            f"{scheme}://127.0.0.1:{server.port}/version",
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn(" 200", done.stdout.splitlines()[0])
        for line in done.stdout.splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "strict-transport-security":
                return value.strip()
        return None

    async def test_hsts_on_tls_when_asked(self) -> None:
        require_tool("curl")
        server, _ = tls_server(self, hsts_max_age=31536000)
        self.assertEqual(await self.hsts_header(server, "https"), "max-age=31536000")
        # and on error answers too: every response on the connection
        done = await deferToThread(
            curl, "--insecure", "--head", f"https://127.0.0.1:{server.port}/nonesuch"
        )
        self.assertIn("strict-transport-security: max-age=31536000", done.stdout.lower())

    async def test_no_hsts_by_default_nor_over_plain_http(self) -> None:
        require_tool("curl")
        server, _ = tls_server(self)
        self.assertIsNone(await self.hsts_header(server, "https"))
        plain = start_server(self, hsts_max_age=31536000)
        self.assertIsNone(await self.hsts_header(plain, "http"))


def chromium_title(url: str) -> str:
    # The test's certificate is self-signed for this run: Chromium is told to accept it,
    # which still makes it complete a real TLS handshake (with ALPN) against the server.
    with chromium("--ignore-certificate-errors") as driver:
        driver.get(url)
        return str(driver.title)
