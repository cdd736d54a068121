# -*- test-case-name: tests.test_dispatch -*-
"""From a parsed request to a response: host check, login, module, format, render.

The order is the contract (SPEC §2, §3): the Host allow-list first (DNS rebinding),
then credentials (before the path is looked up, so an unknown path gets 401 and module
names do not leak), then the module, the method, and the module's own answer within
ModuleTimeout.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from importlib.resources import files
from ipaddress import ip_address
from typing import TYPE_CHECKING

from twisted.cred.credentials import Anonymous
from twisted.internet.defer import Deferred, TimeoutError, maybeDeferred
from twisted.logger import Logger

from twistedspy.auth import Gatekeeper, LoginFailed, LoginThrottled, Viewer, credentials_from
from twistedspy.events import record_failure
from twistedspy.http.negotiation import qualities
from twistedspy.http.parser import HTTPError, Request
from twistedspy.http.response import Outcome, Response, text_response
from twistedspy.interfaces import IFormModule, IInfoModule
from twistedspy.pagecache import PageCache, PageKey, max_age_of
from twistedspy.query import Query, Submission
from twistedspy.render import SECRET_KEYS, NavItem, PageContext, Renderer, refresh_seconds
from twistedspy.report import Committed, PageError, RawBody, Report

if TYPE_CHECKING:
    from twisted.cred.credentials import ICredentials
    from twisted.internet.interfaces import IReactorTime

    from twistedspy.context import BlockingRunner
    from twistedspy.settings import Settings

WWW_AUTHENTICATE = ("WWW-Authenticate", 'Basic realm="twistedspy", charset="UTF-8"')
INDEX = "index"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "127.0.0.1", "::1"})
STATIC: Mapping[str, tuple[str, str]] = {
    "/-/static/spy.css": ("spy.css", "text/css; charset=utf-8"),
    "/-/static/spy.js": ("spy.js", "text/javascript; charset=utf-8"),
    # Browsers ask for an icon on every page; without one, /favicon.ico's 404 is a
    # console error on each of them.
    "/-/static/favicon.svg": ("favicon.svg", "image/svg+xml; charset=utf-8"),
}


def host_name(host: str) -> str:
    """The name part of a `Host` value: `[::1]:8080` -> `::1`, `a.b:80` -> `a.b`."""
    if host.startswith("["):
        return host[1 : host.find("]")].lower()
    return host.rsplit(":", 1)[0].lower() if ":" in host else host.lower()


def is_loopback_name(name: str) -> bool:
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ip_address(name).is_loopback
    except ValueError:
        return False


class HostPolicy:
    """SPEC §3's allow-list for the `Host` header: the defence against DNS rebinding."""

    def __init__(self, settings: Settings) -> None:
        self._any = False
        self._names: frozenset[str] | None = None
        if settings.allowed_hosts is not None:
            names = {h.strip().lower() for h in settings.allowed_hosts if h.strip()}
            self._any = "*" in names
            self._names = frozenset(host_name(n) if n.startswith("[") else n for n in names)
        elif settings.security:
            self._any = True
        else:
            self._names = frozenset({settings.address.lower()})

    def allows(self, host: str) -> bool:
        if self._any or not host:
            # No Host at all (HTTP/1.0): not a browser, so not a rebinding attack.
            return True
        name = host_name(host)
        if self._names is not None and name in self._names:
            return True
        return self._names is not None and is_loopback_name(name)


def wants_json(request: Request, query: Query) -> bool:
    """`format=json`, or an `Accept` that prefers JSON to HTML (RFC 9110 §12.5.1)."""
    chosen = query.get("format")
    if chosen is not None:
        if chosen not in ("json", "html"):
            raise PageError("format must be html or json", 400)
        return chosen == "json"
    accept = request.header("accept")
    if not accept:
        return False
    weights = qualities(accept)
    json_q = weights.get("application/json", 0.0)
    html_q = max(weights.get("text/html", 0.0), weights.get("application/xhtml+xml", 0.0))
    return json_q > html_q


def is_cross_site(request: Request) -> bool:
    """
    Whether a POST comes from another site's page (CSRF, SPEC §2's 403 row).

    Browsers send `Sec-Fetch-Site`: trust it where present. Otherwise an `Origin` other
    than this server is cross-site, and no Origin at all (curl, scripts) is not.
    `Origin: null` is an opaque origin (a sandboxed frame, a `data:` page, a redirect
    across sites: RFC 6454 §7.3) that any site can make a form post with; Chromium also
    sends it for some same-origin posts, which it marks `Sec-Fetch-Site: same-origin`.
    So `null` passes with that mark only.
    """
    site = request.header("sec-fetch-site")
    origin = request.header("origin")
    if origin == "null":
        return site is None or site.lower() != "same-origin"
    if site is not None:
        return site.lower() not in ("same-origin", "none")
    if origin is None:
        return False
    host = request.host.lower()
    return origin.lower() not in (f"http://{host}", f"https://{host}")


_NO_QUERY = Query()


def _parse_query(raw: str) -> Query:
    return Query.parse(raw) if raw else _NO_QUERY


def _page_key(name: str, as_json: bool, query: Query, user: str | None) -> PageKey:
    """
    What a kept page may depend on: the user is part of it, so no page crosses from
    one user to another; login and password are not, as the module never sees them.
    """
    return (name, as_json, tuple((k, v) for k, v in query.pairs() if k not in SECRET_KEYS), user)


class Dispatcher:
    """The site the connections talk to (see `twistedspy.http.protocol.Site`)."""

    def __init__(
        self,
        *,
        settings: Settings,
        modules: Callable[[], Mapping[str, IInfoModule]],
        gatekeeper: Gatekeeper,
        renderer: Renderer,
        clock: IReactorTime,
        log: Logger,
        run_computation: BlockingRunner | None = None,
    ) -> None:
        self.settings = settings
        self._modules = modules
        self.gatekeeper = gatekeeper
        self.renderer = renderer
        self.clock = clock
        self.log = log
        #: renders pages off the reactor, one at a time (see ModuleContext.run_computation)
        self.run_computation = run_computation
        self.hosts = HostPolicy(settings)
        #: finished pages of modules that declare `max_age` (see twistedspy.pagecache)
        self.pages = PageCache(clock)
        package = files("twistedspy") / "static"
        self._healthy = text_response(200, "twistedspy is healthy.\n")
        self._static = {
            path: Response(200, (package / name).read_bytes(), content_type)
            for path, (name, content_type) in STATIC.items()
        }

    # -- Site

    def respond(self, request: Request, client: str) -> Outcome | Deferred[Outcome]:
        """The answer; one ready at once (a health check, a cached page) as it is."""
        if request.path.startswith("/-/"):
            # Health checks and static files: nothing to wait for, so no coroutine.
            return Outcome(self._public(request))
        outcome, attempt = self._answer_from_cache(request, client)
        if outcome is not None:
            return outcome
        return Deferred.fromCoroutine(self._respond(request, client, attempt))

    def error_response(self, error: HTTPError) -> Response:
        return self.renderer.error(error.status, error.message, as_json=False, close=True)

    def journal_path(self, request: Request) -> str:
        """The path and query as the journal keeps them: never with a password."""
        if not request.query:
            return request.path
        query = Query.parse(request.query)
        kept = "&".join(f"{k}={'***' if k == 'password' else v}" for k, v in query.pairs())
        return request.path + ("?" + kept if kept else "")

    # -- the way through

    def _context(self, modules: Mapping[str, IInfoModule]) -> PageContext:
        nav = [NavItem(m.name, m.title) for m in modules.values()]
        return PageContext(self.renderer.host, nav, self.clock.seconds())

    def _credentials(self, request: Request, query: Query) -> ICredentials:
        # Security off asks for nothing (SPEC §1): whatever a request carries, even an
        # Authorization meant for something else, is not read, so it cannot fail.
        if not self.settings.security:
            return Anonymous()
        return credentials_from(
            query.get("login"), query.get("password"), request.header("authorization")
        )

    def _answer_from_cache(
        self, request: Request, client: str
    ) -> tuple[Outcome | None, Deferred[Viewer] | None]:
        """
        The common case without a coroutine: a GET or HEAD for a page in the cache, once
        the same checks as `_respond` have passed in the same order (Host, then the
        login through the Portal). Anything else (an error to answer, a login still
        running, a page to make) is `_respond`'s, given the login attempt if one was
        begun: a request logs in once.
        """
        if request.method not in ("GET", "HEAD") or not len(self.pages):
            return None, None
        if not self.hosts.allows(request.host):
            return None, None
        query = _parse_query(request.query)
        try:
            as_json = wants_json(request, query)
        except PageError:
            return None, None
        name = request.path.strip("/") or INDEX
        module = self._modules().get(name)
        # Only a module with a max_age can have a page kept: anything else goes the long
        # way before any login is begun (which then still comes before the 404).
        if module is None or max_age_of(module) <= 0:
            return None, None
        try:
            credentials = self._credentials(request, query)
        except LoginFailed:
            return None, None  # malformed credentials: answered the long way
        forwarded = request.header_values("x-forwarded-for")
        attempt = self.gatekeeper.login(credentials, client, forwarded)
        admitted: list[Viewer] = []

        def now(viewer: Viewer) -> Viewer:
            admitted.append(viewer)
            return viewer

        # Runs at once if the Portal has answered already (an anonymous login does).
        attempt.addCallback(now)
        if not admitted:
            return None, attempt
        user = admitted[0].user
        cached = self.pages.get(_page_key(name, as_json, query, user), module)
        if cached is None:
            return None, attempt
        return Outcome(cached, user), None

    async def _respond(
        self, request: Request, client: str, attempt: Deferred[Viewer] | None = None
    ) -> Outcome:
        query = _parse_query(request.query)
        modules = self._modules()
        context = self._context(modules)
        try:
            as_json = wants_json(request, query)
            refresh_seconds(query)  # refused with 400 here, not once the page is made
        except PageError as error:
            return Outcome(
                self.renderer.error(error.status, error.message, as_json=False, context=context)
            )

        def fail(status: int, message: str, *headers: tuple[str, str]) -> Outcome:
            response = self.renderer.error(
                status, message, as_json=as_json, context=context, headers=headers
            )
            return Outcome(response)

        if not self.hosts.allows(request.host):
            return fail(421, f"This server does not answer for the host {request.host!r}.")
        try:
            if attempt is None:
                credentials = self._credentials(request, query)
                forwarded = request.header_values("x-forwarded-for")
                attempt = self.gatekeeper.login(credentials, client, forwarded)
            viewer = await attempt
        except LoginThrottled as throttled:
            return fail(
                429,
                "Too many failed logins from your address; try again later.",
                ("Retry-After", str(throttled.retry_after)),
            )
        except LoginFailed:
            return fail(401, "This page needs a valid user name and password.", WWW_AUTHENTICATE)
        except Exception:
            # The checker itself broke (a worker thread failed, say): nobody is let in, the
            # client gets a plain error page, and the journal gets the traceback.
            record_failure(self.log, "login-error", client=client)
            return fail(500, "The credentials could not be checked; the journal has the details.")
        user = viewer.user

        name = request.path.strip("/") or INDEX
        module = modules.get(name)
        if module is None:
            return Outcome(fail(404, f"There is no module {name!r} here.").response, user)
        allowed = ("GET", "HEAD", "POST") if IFormModule.providedBy(module) else ("GET", "HEAD")
        if request.method not in allowed:
            outcome = fail(
                405,
                f"{request.method} is not allowed here; use {', '.join(allowed)}.",
                ("Allow", ", ".join(allowed)),
            )
            return Outcome(outcome.response, user)

        if request.method == "POST" and is_cross_site(request):
            message = "A form on another site cannot post here."
            return Outcome(fail(403, message).response, user)
        visible = Query(tuple((k, v) for k, v in query.pairs() if k not in SECRET_KEYS))

        async def page() -> Response:
            try:
                found = await self._collect(module, request, visible, client, user)
            except PageError as error:
                return fail(error.status, error.message, *error.headers).response
            except TimeoutError:
                message = f"The module {name!r} did not answer within the time allowed."
                return fail(504, message).response
            except Exception:
                record_failure(self.log, "module-error", module=name, client=client)
                message = f"The module {name!r} failed; the journal has the details."
                return fail(500, message).response
            if isinstance(found, RawBody):
                return Response(200, found.content, found.content_type)
            if as_json:
                render = functools.partial(self.renderer.json, name, found, context)
            else:
                render = functools.partial(self.renderer.html, name, found, visible, context)
            if self.run_computation is None:
                return render()
            # A page of a thousand processes takes tens of milliseconds to render: off the
            # reactor, so that other clients' small pages do not queue behind it.
            return await self.run_computation(render)

        # A POST changes something: never answered from, nor kept in, the page cache.
        max_age = 0.0 if request.method == "POST" else max_age_of(module)
        if max_age <= 0:
            return Outcome(await page(), user)
        key = _page_key(name, as_json, visible, user)
        cached = self.pages.get(key, module)
        if cached is None:
            cached = await self.pages.fill(
                key, module, max_age, lambda: Deferred.fromCoroutine(page())
            )
        return Outcome(cached, user)

    async def _collect(
        self,
        module: IInfoModule,
        request: Request,
        query: Query,
        client: str,
        user: str | None,
    ) -> Report | RawBody:
        if request.method == "POST":
            assert IFormModule.providedBy(module)
            submission = Submission(
                body=request.body,
                content_type=request.header("content-type") or "",
                client=client,
                user=user,
                query=query,
            )
            pending = maybeDeferred(module.submit, submission)
        else:
            pending = maybeDeferred(module.collect, query)
        pending.addTimeout(self.settings.module_timeout, self.clock)
        try:
            page = await pending
        except Committed as committed:
            # Past ModuleTimeout, but with work begun that cannot be undone: its outcome
            # is the truthful answer, not 504.
            page = await committed.outcome
        if not isinstance(page, Report | RawBody):
            raise TypeError(f"module {module.name!r} returned {type(page).__name__}")
        return page

    def _public(self, request: Request) -> Response:
        """`/-/` paths reveal nothing of the machine and need no credentials."""
        if request.method not in ("GET", "HEAD"):
            return self.renderer.error(
                405,
                "Only GET and HEAD are allowed here.",
                as_json=False,
                headers=(("Allow", "GET, HEAD"),),
            )
        if request.path == "/-/healthy":
            problem = self.gatekeeper.health_problem()
            if problem is not None:
                return text_response(503, f"twistedspy cannot serve pages: {problem}.\n")
            return self._healthy
        static = self._static.get(request.path)
        if static is None:
            return self.renderer.error(404, "There is no such file.", as_json=False)
        return static
