# -*- test-case-name: tests.test_dispatch -*-
"""From a parsed request to a response: the order of checks, then the module's page.

Every request for a module passes the same steps in the same order, written once
(`Dispatcher._steps`, docs/architecture.md): the Host allow-list (DNS rebinding), then
credentials (before the path is looked up, so an unknown path gets 401 and module names
do not leak), the format, the module, the method, the cross-site check of a post, the
page cache, and last the module's own answer and its rendering within one deadline.
Each step answers or passes on. Where the modules run (a worker thread unless they
declare `IReactorSafe`) is decided here too, and whether a module renders its own page
(`IPageRenderer`) (docs/writing-modules.md).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Hashable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred, TimeoutError, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from twistedspy.auth import (
    WWW_AUTHENTICATE,
    ConnectionLogin,
    Gatekeeper,
    LoginFailed,
    LoginThrottled,
    Viewer,
)
from twistedspy.events import record_failure
from twistedspy.http.negotiation import qualities
from twistedspy.http.parser import HTTPError, Request
from twistedspy.http.response import Outcome, Response, accepts_gzip, text_response, with_gzip
from twistedspy.inflight import SingleFlight
from twistedspy.interfaces import IFormModule, IInfoModule, IPageRenderer, IReactorSafe
from twistedspy.memo import BoundedMemo
from twistedspy.pagecache import PageCache, PageKey, max_age_of
from twistedspy.query import SECRET_KEYS, Query, Submission
from twistedspy.render import Renderer, refresh_seconds
from twistedspy.report import Committed, NavItem, PageContext, PageError, RawBody, Report

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from twistedspy.context import BlockingRunner
    from twistedspy.settings import Settings
    from twistedspy.watchdog import StallWatchdog

T = TypeVar("T")
INDEX = "index"
PAGE_METHODS = ("GET", "HEAD")
FORM_METHODS = ("GET", "HEAD", "POST")
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


#: Host values whose verdict HostPolicy keeps at most
_VERDICTS_MAX = 256


class HostPolicy:
    """The allow-list for the `Host` header, against DNS rebinding (docs/security.md)."""

    def __init__(self, settings: Settings) -> None:
        self._verdicts: dict[str, bool] = {}
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
        # The same few Host values come with every request: each judged once (bounded,
        # cleared when full, as the policy never changes).
        verdict = self._verdicts.get(host)
        if verdict is None:
            verdict = self._judge(host)
            if len(self._verdicts) >= _VERDICTS_MAX:
                self._verdicts.clear()
            self._verdicts[host] = verdict
        return verdict

    def _judge(self, host: str) -> bool:
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
    return accepts_json(request)


def _prefers_json(accept: str) -> bool:
    weights = qualities(accept)
    json_q = weights.get("application/json", 0.0)
    html_q = max(weights.get("text/html", 0.0), weights.get("application/xhtml+xml", 0.0))
    return json_q > html_q


#: the few `Accept` values clients send, each judged once: a browser's is long to weigh
#: (docs/performance.md), and it comes with every request
_json_preferred = BoundedMemo(_prefers_json, entries=64, longest=1024, size=len)


def accepts_json(request: Request) -> bool:
    """Whether the request's `Accept` prefers JSON to HTML."""
    accept = request.header("accept")
    return _json_preferred(accept) if accept else False


def is_cross_site(request: Request) -> bool:
    """
    Whether a POST comes from another site's page (CSRF: 403, docs/security.md).

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

#: a step's answer: a response, or None to pass on to the next step
Answer = Outcome | None
#: a health check: None while all is well, else the reason in one line
HealthCheck = Callable[[], str | None]


@dataclass(slots=True)
class Asking:
    """One request on its way through the steps, with what they have found so far."""

    request: Request
    client: str
    #: the query a module sees: login and password left out, once, where it is parsed
    query: Query
    #: login and password, for the login step alone
    secrets: Query
    #: the format answers are written in (HTML while `format=` is invalid)
    as_json: bool
    #: an invalid `format=` or `refresh=`, answered 400 once Host and credentials have
    #: passed (not once the page is made)
    format_error: PageError | None
    name: str
    #: the connection's last login, which the login step may reuse (twistedspy/auth.py)
    kept: ConnectionLogin | None = None
    #: whether the login step has let the request in (anonymously, with Security off)
    admitted: bool = False
    user: str | None = None
    module: IInfoModule | None = None

    @classmethod
    def of(cls, request: Request, client: str, kept: ConnectionLogin | None = None) -> Asking:
        name = request.path.strip("/") or INDEX
        if not request.query:
            # No format= nor refresh= to check: the common case, without the query's steps.
            return cls(
                request, client, _NO_QUERY, _NO_QUERY, accepts_json(request), None, name, kept
            )
        query, secrets = Query.parse_apart(request.query, SECRET_KEYS)
        as_json, format_error = False, None
        try:
            as_json = wants_json(request, query)
            refresh_seconds(query)
        except PageError as error:
            format_error = error
        return cls(request, client, query, secrets, as_json, format_error, name, kept)

    def page_key(self) -> PageKey:
        """
        What a kept page may depend on: the user is part of it, so no page crosses from
        one user to another; login and password are not, as the module never sees them.
        """
        return (self.name, self.as_json, self.query.pairs(), self.user)

    def authorization(self) -> str | None:
        """The request's `Authorization` value, read only if the login step needs it."""
        return self.request.header("authorization")


def runs_on_reactor(module: IInfoModule, method: Callable[..., object]) -> bool:
    """Whether `method` is called on the reactor: declared safe, or a coroutine function."""
    return IReactorSafe.providedBy(module) or inspect.iscoroutinefunction(method)


#: a body longer than this bytes is compressed off the reactor (docs/architecture.md)
GZIP_OFF_REACTOR = 64 * 1024


def _compressed(render: Callable[[], Response]) -> Response:
    """`render`'s page with its compressed body made too: in the thread that renders it."""
    return with_gzip(render())


def _in_thread(method: Callable[[Any], object], argument: object) -> object:
    """A plain module's method, called in a worker thread, where nothing can wait for a
    Deferred or a coroutine: a module returning one must run on the reactor."""
    page = method(argument)
    if isinstance(page, Deferred | Coroutine):
        if isinstance(page, Coroutine):
            page.close()
        raise TypeError(
            f"{method.__qualname__} returned a {type(page).__name__} in a worker thread; "
            "a module that returns one provides IReactorSafe"
        )
    return page


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
        run_collection: BlockingRunner,
        run_computation: BlockingRunner | None = None,
        watchdog: StallWatchdog | None = None,
    ) -> None:
        self.settings = settings
        self._modules = modules
        self.gatekeeper = gatekeeper
        self.renderer = renderer
        self.clock = clock
        self.log = log
        #: runs a module's plain `collect` or `submit` in the module collection pool
        self.run_collection = run_collection
        #: renders pages off the reactor (see ModuleContext.run_computation)
        self.run_computation = run_computation
        #: watches the reactor while answers are made, and times what modules run on it,
        #: so that a stall names its module
        self.watchdog = watchdog
        self.hosts = HostPolicy(settings)
        #: finished pages of modules that declare `max_age` (see twistedspy.pagecache)
        self.pages = PageCache(clock)
        #: what `/-/healthy` asks, in order; the first reason given answers 503
        self.health_checks: list[HealthCheck] = []
        #: one collection in flight per module: module name -> (module, its flight)
        self._flights: dict[str, tuple[IInfoModule, SingleFlight[object]]] = {}
        package = files("twistedspy") / "static"
        self._healthy = text_response(200, "twistedspy is healthy.\n")
        self._healthy_outcome = Outcome(self._healthy)
        self._static = {
            path: Response(200, (package / name).read_bytes(), content_type)
            for path, (name, content_type) in STATIC.items()
        }
        #: the order of checks (docs/architecture.md): each step answers, or passes on
        #: with None; one that has to wait returns a Deferred
        self._steps: tuple[Callable[[Asking], Answer | Deferred[Answer]], ...] = (
            self._check_host,
            self._log_in,
            self._check_format,
            self._find_module,
            self._check_method,
            self._check_origin,
            self._from_cache,
            self._make_page,
        )

    # -- Site

    def connection_login(self) -> ConnectionLogin:
        """What a new connection keeps of its logins, given back with each of its requests."""
        return ConnectionLogin()

    def respond(
        self, request: Request, client: str, kept: object = None
    ) -> Outcome | Deferred[Outcome]:
        """
        The answer; one ready at once (a health check, a cached page) as it is. `kept` is
        what `connection_login` made for the connection the request came on.
        """
        if request.path.startswith("/-/"):
            # Health checks and static files: nothing to wait for, so no coroutine.
            response = self._public(request)
            if response is self._healthy:
                return self._healthy_outcome
            return Outcome(response)
        # A request after which the connection closes has no next request to keep its
        # login for.
        login = kept if request.keep_alive and isinstance(kept, ConnectionLogin) else None
        asking = Asking.of(request, client, login)
        if self.watchdog is None:
            return self._through(asking, 0)
        # Watched from here until its answer is ready: a stall meanwhile keeps a client
        # waiting (twistedspy/watchdog.py).
        asked_at = self.watchdog.asked()
        return self.watchdog.answered(asked_at, self._through(asking, 0))

    def error_response(self, error: HTTPError) -> Response:
        return self.renderer.error(error.status, error.message, as_json=False, close=True)

    def journal_path(self, request: Request) -> str:
        """The path and query as the journal keeps them: never with a password."""
        if not request.query:
            return request.path
        query = Query.parse(request.query)
        kept = "&".join(f"{k}={'***' if k == 'password' else v}" for k, v in query.pairs())
        return request.path + ("?" + kept if kept else "")

    # -- the steps

    def _through(self, asking: Asking, first: int) -> Outcome | Deferred[Outcome]:
        """The steps from `first` on, until one answers; those after a step that has to
        wait (a login being checked, a page being made) follow once it is done."""
        for index in range(first, len(self._steps)):
            answer = self._steps[index](asking)
            if answer is None:
                continue
            if isinstance(answer, Deferred):
                return answer.addCallback(self._resume, asking, index + 1)
            return answer
        raise AssertionError("the last step always answers")

    def _resume(
        self, answer: Answer, asking: Asking, following: int
    ) -> Outcome | Deferred[Outcome]:
        return answer if answer is not None else self._through(asking, following)

    def _check_host(self, asking: Asking) -> Answer:
        if self.hosts.allows(asking.request.host):
            return None
        host = asking.request.host
        return self._error(asking, 421, f"This server does not answer for the host {host!r}.")

    def _log_in(self, asking: Asking) -> Answer | Deferred[Answer]:
        attempt = self.gatekeeper.admit(
            asking.secrets,
            asking.authorization,
            asking.client,
            asking.request.header_values("x-forwarded-for"),
            asking.kept,
        )
        if isinstance(attempt, Viewer):
            # The connection's login, reused: no Deferred at all.
            asking.admitted, asking.user = True, attempt.user
            return None
        answer = attempt.addCallbacks(
            self._logged_in, self._refused, callbackArgs=(asking,), errbackArgs=(asking,)
        )
        # Let in at once (anonymously, or a login the checker remembers): the next step
        # follows now, with no Deferred in between (a cached page's way).
        return None if asking.admitted else answer

    def _logged_in(self, viewer: Viewer, asking: Asking) -> Answer:
        asking.admitted, asking.user = True, viewer.user
        return None

    def _refused(self, failure: Failure, asking: Asking) -> Answer:
        if isinstance(failure.value, LoginThrottled):
            return self._error(
                asking,
                429,
                "Too many failed logins from your address; try again later.",
                ("Retry-After", str(failure.value.retry_after)),
            )
        if isinstance(failure.value, LoginFailed):
            return self._error(
                asking,
                401,
                "This page needs a valid user name and password.",
                ("WWW-Authenticate", WWW_AUTHENTICATE),
            )
        # The checker itself broke (a worker thread failed, say): nobody is let in, the
        # client gets a plain error page, and the journal gets the traceback.
        record_failure(self.log, "login-error", failure, client=asking.client)
        message = "The credentials could not be checked; the journal has the details."
        return self._error(asking, 500, message)

    def _check_format(self, asking: Asking) -> Answer:
        error = asking.format_error
        return None if error is None else self._error(asking, error.status, error.message)

    def _find_module(self, asking: Asking) -> Answer:
        asking.module = self._modules().get(asking.name)
        if asking.module is None:
            return self._error(asking, 404, f"There is no module {asking.name!r} here.")
        return None

    def _check_method(self, asking: Asking) -> Answer:
        allowed = FORM_METHODS if IFormModule.providedBy(asking.module) else PAGE_METHODS
        method = asking.request.method
        if method in allowed:
            return None
        listed = ", ".join(allowed)
        message = f"{method} is not allowed here; use {listed}."
        return self._error(asking, 405, message, ("Allow", listed))

    def _check_origin(self, asking: Asking) -> Answer:
        if asking.request.method == "POST" and is_cross_site(asking.request):
            return self._error(asking, 403, "A form on another site cannot post here.")
        return None

    def _from_cache(self, asking: Asking) -> Answer:
        # A POST changes something: never answered from, nor kept in, the page cache.
        if asking.request.method == "POST" or not len(self.pages):
            return None
        assert asking.module is not None
        page = self.pages.get(asking.page_key(), asking.module)
        return None if page is None else Outcome(page, asking.user)

    def _make_page(self, asking: Asking) -> Deferred[Answer]:
        return Deferred.fromCoroutine(self._page(asking))

    # -- the page

    async def _page(self, asking: Asking) -> Answer:
        """The module's page, collected and rendered within one deadline."""
        module = asking.module
        assert module is not None
        deadline = self.clock.seconds() + self.settings.module_timeout
        max_age = 0.0 if asking.request.method == "POST" else max_age_of(module)
        if max_age <= 0:
            return Outcome(await self._made(asking, module, deadline), asking.user)
        # Requests for the same page meanwhile wait for this one; its deadline is the
        # earliest of theirs.
        made = self.pages.fill(
            asking.page_key(),
            module,
            max_age,
            lambda: Deferred.fromCoroutine(self._made(asking, module, deadline)),
        )
        return Outcome(await made, asking.user)

    async def _made(self, asking: Asking, module: IInfoModule, deadline: float) -> Response:
        try:
            found = await self._collected(asking, module, deadline)
        except PageError as error:
            return self._error_page(asking, error.status, error.message, *error.headers)
        except TimeoutError:
            return self._timed_out(asking)
        except Exception:
            record_failure(self.log, "module-error", module=module.name, client=asking.client)
            message = f"The module {module.name!r} failed; the journal has the details."
            return self._error_page(asking, 500, message)
        gzipped = accepts_gzip(asking.request.header("accept-encoding"))
        if isinstance(found, RawBody):
            raw = Response(200, found.content, found.content_type)
            if self.run_computation is None or not (gzipped and len(raw.body) > GZIP_OFF_REACTOR):
                return raw
            make: Callable[[], Response] = functools.partial(with_gzip, raw)
        else:
            context = self._context()
            if asking.as_json:
                render = functools.partial(self.renderer.json, module.name, found, context)
            else:
                render = functools.partial(
                    self.renderer.html, module.name, found, asking.query, context
                )
            if self.run_computation is None:
                return render()
            make = functools.partial(_compressed, render) if gzipped else render
        # A page of a thousand processes takes tens of milliseconds to render, and its
        # megabyte some 10 ms to compress: off the reactor, so that other clients' small
        # pages do not queue behind it.
        try:
            return await self._within(self.run_computation(make), deadline)
        except TimeoutError:
            return self._timed_out(asking)

    async def _collected(
        self, asking: Asking, module: IInfoModule, deadline: float
    ) -> Report | RawBody:
        request = asking.request
        if request.method == "POST":
            assert IFormModule.providedBy(module)
            submission = Submission(
                body=request.body,
                content_type=request.header("content-type") or "",
                client=asking.client,
                user=asking.user,
                query=asking.query,
            )
            if runs_on_reactor(module, module.submit):
                # Its own Deferred, not shared: ModuleTimeout cancels it, and a post whose
                # write has begun answers that with Committed (see IFormModule).
                pending = self._on_reactor(module, module.submit, submission)
            else:
                # Each post is its own work, never shared, but it takes its turn with the
                # module's collections: one thread at most for the module, all the same.
                key: Hashable = object()
                pending = self._flight(module)(
                    key, lambda: self.run_collection(_in_thread, module.submit, submission)
                )
        else:
            query = asking.query
            flight_key: Hashable = query.pairs()
            if IPageRenderer.providedBy(module):
                # The page comes back finished in the format asked for: the format is
                # part of what a shared run gives.
                render_page = functools.partial(
                    module.render_page, as_json=asking.as_json, context=self._context()
                )
                start = functools.partial(self._on_reactor, module, render_page, query)
                flight_key = (flight_key, asking.as_json)
            elif runs_on_reactor(module, module.collect):
                start = functools.partial(self._on_reactor, module, module.collect, query)
            else:
                start = functools.partial(self.run_collection, _in_thread, module.collect, query)
            pending = self._flight(module)(flight_key, start)
        try:
            page = await self._within(pending, deadline)
        except Committed as committed:
            # Past ModuleTimeout, but with work begun that cannot be undone: its outcome
            # is the truthful answer, not 504.
            page = await committed.outcome
        if not isinstance(page, Report | RawBody):
            raise TypeError(f"module {module.name!r} returned {type(page).__name__}")
        return page

    def _flight(self, module: IInfoModule) -> SingleFlight[object]:
        known = self._flights.get(module.name)
        if known is None or known[0] is not module:
            known = self._flights[module.name] = (module, SingleFlight())
        return known[1]

    def _on_reactor(
        self, module: IInfoModule, method: Callable[[Any], Any], argument: object
    ) -> Deferred[object]:
        """Call a module's method on the reactor, timed for the stall watchdog."""
        try:
            if self.watchdog is None:
                result = method(argument)
            else:
                result = self.watchdog.timed(module.name, method, argument)
        except Exception:
            return fail()
        if isinstance(result, Deferred):
            return result
        if isinstance(result, Coroutine):
            return Deferred.fromCoroutine(result)
        return succeed(result)

    def _within(self, pending: Deferred[T], deadline: float) -> Deferred[T]:
        """`pending`, failing with TimeoutError at the request's deadline."""
        return pending.addTimeout(max(0.0, deadline - self.clock.seconds()), self.clock)

    # -- answers

    def _context(self) -> PageContext:
        nav = [NavItem(m.name, m.title) for m in self._modules().values()]
        return PageContext(self.renderer.host, nav, self.clock.seconds())

    def _error_page(
        self, asking: Asking, status: int, message: str, *headers: tuple[str, str]
    ) -> Response:
        # Before the login has let it in, an answer shows no navigation (module names).
        context = self._context() if asking.admitted else None
        return self.renderer.error(
            status, message, as_json=asking.as_json, context=context, headers=headers
        )

    def _error(
        self, asking: Asking, status: int, message: str, *headers: tuple[str, str]
    ) -> Outcome:
        return Outcome(self._error_page(asking, status, message, *headers), asking.user)

    def _timed_out(self, asking: Asking) -> Response:
        message = f"The module {asking.name!r} did not answer within the time allowed."
        return self._error_page(asking, 504, message)

    def _public(self, request: Request) -> Response:
        """`/-/` paths reveal nothing of the machine and need no credentials."""
        if request.method not in PAGE_METHODS:
            return self.renderer.error(
                405,
                "Only GET and HEAD are allowed here.",
                as_json=False,
                headers=(("Allow", ", ".join(PAGE_METHODS)),),
            )
        if request.path == "/-/healthy":
            return self._health()
        static = self._static.get(request.path)
        if static is None:
            return self.renderer.error(404, "There is no such file.", as_json=False)
        return static

    def _health(self) -> Response:
        for check in self.health_checks:
            reason = check()
            if reason is not None:
                return text_response(503, f"twistedspy cannot serve pages: {reason}.\n")
        return self._healthy
