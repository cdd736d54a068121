"""The peer for bench/http_bench.py: `twisted.web` (Site + Resource) serving fixed bytes.

It answers each path it is given with exactly the body and Content-Type twistedspy sent
for that path. Given an ACCESS.log file, it writes twisted.web's own access log line for
every request there, as twistedspy writes a journal line for every request; given `-`,
it writes none (the peer the bars in docs/performance.md are set against).

Given an accounts file too, the same pages sit behind `HTTPAuthSessionWrapper` with Basic
credentials and a Portal asking twistedspy's own bcrypt checker (`AccountsChecker`, which
remembers verified logins as twistedspy does), checked in threads: twisted.web's way of
Security on.

Run: python bench/peer_web.py PORT PAGES.json ACCESS.log [ACCOUNTS], where PAGES.json maps
a path to [content_type, body as latin-1 text]. It prints "ready" once listening.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

from twisted.cred.portal import IRealm, Portal
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.web import http
from twisted.web.guard import BasicCredentialFactory, HTTPAuthSessionWrapper
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site
from zope.interface import Interface, implementer

from twistedspy.accounts import AccountsFile
from twistedspy.auth import REALM, AccountsChecker
from twistedspy.context import BlockingRunner


class FixedPages(Resource):
    """Every path answered from a dict, as a leaf: no child lookup per request."""

    isLeaf = True  # noqa: N815 - twisted.web's name

    def __init__(self, pages: dict[bytes, tuple[bytes, bytes]]) -> None:
        super().__init__()
        self._pages = pages

    def render_GET(  # noqa: N802 - twisted.web's name
        self, request: Request
    ) -> bytes:
        assert request.path is not None
        page = self._pages.get(request.path)
        if page is None:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"no such page\n"
        content_type, body = page
        request.setHeader(b"content-type", content_type)
        return body

    render_HEAD = render_GET  # noqa: N815 - twisted.web's name


class UnloggedSite(Site):
    """A Site that writes no access log: without a logPath, twisted.web would hand each
    line to Twisted's own log instead."""

    def log(self, request: http.Request) -> None:
        pass


@implementer(IRealm)
class PagesRealm:
    """Every user who logs in gets the same pages."""

    def __init__(self, pages: Resource) -> None:
        self._pages = pages

    def requestAvatar(
        self,
        avatarId: bytes | tuple[()],  # noqa: N803 - twisted.cred's name
        mind: object,
        *interfaces: type[Interface],
    ) -> tuple[type[Interface], object, Callable[[], None]]:
        if IResource not in interfaces:
            raise NotImplementedError("only IResource avatars")
        return (IResource, self._pages, lambda: None)


def guarded(pages: Resource, accounts: Path) -> IResource:
    """The pages behind Basic logins checked with twistedspy's bcrypt checker."""
    checker = AccountsChecker(AccountsFile(accounts), cast("BlockingRunner", deferToThread))
    portal = Portal(PagesRealm(pages), [checker])
    return HTTPAuthSessionWrapper(portal, [BasicCredentialFactory(REALM)])


def main() -> None:
    port, pages_file, access_log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    accounts = Path(sys.argv[4]) if len(sys.argv) > 4 else None
    with open(pages_file, encoding="utf-8") as f:
        raw: dict[str, list[str]] = json.load(f)
    pages = {
        path.encode("ascii"): (kind.encode("ascii"), body.encode("latin-1"))
        for path, (kind, body) in raw.items()
    }
    fixed = FixedPages(pages)
    root = fixed if accounts is None else guarded(fixed, accounts)
    site = Site(root, logPath=access_log) if access_log != "-" else UnloggedSite(root)
    reactor.listenTCP(port, site, backlog=4096, interface="127.0.0.1")  # type: ignore[arg-type]
    print("ready", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
