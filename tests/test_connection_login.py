"""One login per connection (CredentialReuse), over real loopback sockets.

A connection that logged in through the Portal reuses that login for its next requests
with exactly the same credentials; everything else still goes through the Portal, the
throttle and the order of checks (docs/security.md, "One login per connection").
"""

from __future__ import annotations

import http.client
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.servers import RunningServer, start_server
from tests.test_security import OTHER_CLIENT, SECRET, basic
from twistedspy.auth import ConnectionLogin

#: a request on the connection: (path, headers); or something to do between two requests
Step = tuple[str, dict[str, str]] | Callable[[], object]

ALICE = basic("alice", SECRET)
WRONG = basic("alice", "not the password")


def write_accounts(path: Path, users: dict[str, str]) -> None:
    """Replace the accounts file at once (a new inode: a change whatever the clock says)."""
    lines = [
        f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()}"
        for user, password in users.items()
    ]
    draft = path.with_suffix(".new")
    draft.write_text("\n".join(lines) + "\n")
    draft.replace(path)


def converse(port: int, steps: list[Step], source: str | None = None) -> list[int]:
    """The statuses of the steps' requests, all sent on one persistent connection."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=30, source_address=(source, 0) if source else None
    )
    statuses = []
    try:
        for step in steps:
            if callable(step):
                step()
                continue
            path, headers = step
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
            # a second connection would make every test here pass for the wrong reason
            if headers.get("Connection") != "close":
                assert not response.will_close, "the server closed the connection"
    finally:
        connection.close()
    return statuses


class PortalCount:
    """Counts the logins the running server's Portal is asked for."""

    def __init__(self, case: TestCase, server: RunningServer) -> None:
        self.asked = 0
        portal: Portal = server.service.gatekeeper._portal
        real_login = portal.login

        def login(*args: Any) -> Any:
            self.asked += 1
            return real_login(*args)

        case.patch(portal, "login", login)


class ConnectionLoginTests(TestCase):
    def secure(self, **overrides: Any) -> tuple[RunningServer, Path, PortalCount]:
        folder = Path(self.mktemp())
        folder.mkdir()
        accounts = folder / "accounts"
        write_accounts(accounts, {"alice": SECRET, "bob": "bob's own"})
        server = start_server(self, security=True, account_file=accounts, **overrides)
        return server, accounts, PortalCount(self, server)

    def converse(
        self, server: RunningServer, steps: list[Step], source: str | None = None
    ) -> Deferred[list[int]]:
        return deferToThread(converse, server.port, steps, source)

    async def test_same_credentials_log_in_once_per_connection(self) -> None:
        server, _, portal = self.secure()
        statuses = await self.converse(server, [("/version", ALICE)] * 5)
        self.assertEqual(statuses, [200] * 5)
        self.assertEqual(portal.asked, 1)
        # each connection logs in for itself
        self.assertEqual(await self.converse(server, [("/version", ALICE)] * 2), [200, 200])
        self.assertEqual(portal.asked, 2)

    async def test_query_login_reused_too(self) -> None:
        server, _, portal = self.secure()
        query = f"/version?login=alice&password={SECRET}"
        steps: list[Step] = [(query, {}), (query, {}), ("/version?login=alice&password=x", {})]
        self.assertEqual(await self.converse(server, steps), [200, 200, 401])
        self.assertEqual(portal.asked, 2)

    async def test_wrong_password_after_a_right_one_is_401(self) -> None:
        server, _, portal = self.secure()
        steps: list[Step] = [
            ("/version", ALICE),
            ("/version", WRONG),
            ("/version", ALICE),
            ("/version", {}),
            ("/version", basic("bob", "bob's own")),
        ]
        self.assertEqual(await self.converse(server, steps), [200, 401, 200, 401, 200])
        # the wrong password, the right one after it, nothing at all and bob: each asked
        self.assertEqual(portal.asked, 5)
        self.assertIn("user=alice client=127.0.0.1 outcome=failed", server.journal_text())

    async def test_still_401_before_the_path_is_looked_up(self) -> None:
        server, _, _ = self.secure()
        steps: list[Step] = [
            ("/version", ALICE),
            ("/no-such-module", WRONG),
            ("/no-such-module", {}),
            ("/no-such-module", ALICE),
        ]
        self.assertEqual(await self.converse(server, steps), [200, 401, 401, 404])

    async def test_failed_logins_are_never_kept_and_still_counted(self) -> None:
        server, _, portal = self.secure()
        self.assertEqual(await self.converse(server, [("/version", WRONG)] * 3), [401] * 3)
        self.assertEqual(portal.asked, 3)
        self.assertEqual(server.journal_text().count("outcome=failed"), 3)

    async def test_reused_login_is_throttled(self) -> None:
        server, _, _ = self.secure()

        def spend_the_budget() -> None:
            # other connections from the same address spend its ten failures
            for _ in range(10):
                converse(server.port, [("/version", WRONG)])

        steps: list[Step] = [("/version", ALICE), spend_the_budget, ("/version", ALICE)]
        self.assertEqual(await self.converse(server, steps), [200, 429])
        self.assertIn("user=alice client=127.0.0.1 outcome=throttled", server.journal_text())
        # another address's connection is not throttled
        self.assertEqual(
            await self.converse(server, [("/version", ALICE)] * 2, source=OTHER_CLIENT),
            [200, 200],
        )

    async def test_dropped_when_the_accounts_file_changes(self) -> None:
        server, accounts, portal = self.secure()
        steps: list[Step] = [
            ("/version", ALICE),
            lambda: write_accounts(accounts, {"alice": "a new password"}),
            ("/version", ALICE),
            ("/version", basic("alice", "a new password")),
            ("/version", basic("alice", "a new password")),
            lambda: write_accounts(accounts, {"carol": "carol's"}),
            ("/version", basic("alice", "a new password")),
        ]
        self.assertEqual(await self.converse(server, steps), [200, 401, 200, 200, 401])
        self.assertEqual(portal.asked, 4)

    async def test_dropped_when_the_file_is_touched(self) -> None:
        server, accounts, portal = self.secure()

        def touch() -> None:
            status = accounts.stat()
            os.utime(accounts, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))

        steps: list[Step] = [("/version", ALICE), touch, ("/version", ALICE)]
        self.assertEqual(await self.converse(server, steps), [200, 200])
        self.assertEqual(portal.asked, 2)

    async def test_the_last_request_of_a_connection_neither_keeps_nor_reuses(self) -> None:
        server, _, portal = self.secure()
        closing = {**ALICE, "Connection": "close"}
        steps: list[Step] = [("/version", ALICE), ("/version", closing)]
        self.assertEqual(await self.converse(server, steps), [200, 200])
        self.assertEqual(portal.asked, 2)
        self.assertEqual(await self.converse(server, [("/version", WRONG)]), [401])

    async def test_limit_in_requests(self) -> None:
        server, _, portal = self.secure(credential_reuse=2)
        self.assertEqual(await self.converse(server, [("/version", ALICE)] * 7), [200] * 7)
        # asked on the first, reused twice, asked on the fourth, twice, the seventh
        self.assertEqual(portal.asked, 3)

    async def test_zero_asks_the_portal_every_request(self) -> None:
        server, _, portal = self.secure(credential_reuse=0)
        self.assertEqual(await self.converse(server, [("/version", ALICE)] * 4), [200] * 4)
        self.assertEqual(portal.asked, 4)

    async def test_security_off_logs_in_once_per_connection(self) -> None:
        server = start_server(self)
        portal = PortalCount(self, server)
        self.assertEqual(await self.converse(server, [("/version", {})] * 4), [200] * 4)
        self.assertEqual(portal.asked, 1)
        self.assertEqual(await self.converse(server, [("/version", {})] * 2), [200, 200])
        self.assertEqual(portal.asked, 2)

    async def test_security_off_with_reuse_off(self) -> None:
        server = start_server(self, credential_reuse=0)
        portal = PortalCount(self, server)
        self.assertEqual(await self.converse(server, [("/version", {})] * 3), [200] * 3)
        self.assertEqual(portal.asked, 3)

    async def test_no_password_kept(self) -> None:
        server, _, _ = self.secure()
        kept: list[ConnectionLogin] = []

        def look() -> None:
            # read from the client's thread while the connection waits between requests
            for channel in server.service.factory.connections:
                login = channel._kept
                assert isinstance(login, ConnectionLogin)
                kept.append(login)

        steps: list[Step] = [("/version", ALICE), look, ("/version", ALICE)]
        self.assertEqual(await self.converse(server, steps), [200, 200])
        self.assertEqual(len(kept), 1)
        held = repr(vars(kept[0]))
        self.assertEqual(set(vars(kept[0])), {"digest", "generation", "uses_left", "viewer"})
        self.assertNotIn(SECRET, held)
        self.assertNotIn(ALICE["Authorization"].split()[1], held)
        self.assertEqual(len(kept[0].digest), 32)
