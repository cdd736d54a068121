# -*- test-case-name: tests.test_integration,tests.test_shutdown,tests.test_contract -*-
"""The one function that builds the running server, for every way of starting it.

`twistd -ny spy.tac`, `twistd spy` and the `twistedspy` script all end here, so they
cannot drift apart. Everything that can fail at start-up (journal, accounts, modules)
fails inside `makeService`, before anything listens: nothing starts half-way.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NoReturn, cast

from twisted.application.service import IService, MultiService
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger, LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from typing_extensions import override

from twistedspy import __version__
from twistedspy.accounts import AccountsError
from twistedspy.allocator import tune_malloc
from twistedspy.auth import make_gatekeeper
from twistedspy.config import ConfigError, check_listening
from twistedspy.context import ModuleContext
from twistedspy.dispatch import Dispatcher
from twistedspy.events import record, record_failure
from twistedspy.http.protocol import HTTPFactory
from twistedspy.http.stats import RequestStats
from twistedspy.interfaces import IInfoModule, IMetricsAggregator
from twistedspy.journal import JournalError, JournalObserver, JournalRoute, open_journal
from twistedspy.ownership import OwnershipError, own_path
from twistedspy.pools import WorkPool, saturation_check
from twistedspy.registry import LoadError, build, discover
from twistedspy.render import Renderer
from twistedspy.settings import Settings
from twistedspy.tls import harden
from twistedspy.watchdog import StallWatchdog

if TYPE_CHECKING:
    from twisted.internet.interfaces import IListeningPort, IReactorCore, IReactorTime

#: The waiting room for MaxClients' overflow (docs/configuration.md: further connections
#: wait, none is refused). Twisted's default of 50 lets the kernel drop SYNs in a burst,
#: and each drop costs the client a one-second retransmission; the kernel caps this at
#: somaxconn.
LISTEN_BACKLOG = 4096
#: Worker threads for module collection: a hung module holds at most one (one collection
#: per module in flight), so eight modules must hang before pages wait for a thread.
MODULE_THREADS = 8
#: Worker threads for bcrypt: a burst of logins queues here, never in front of a page.
LOGIN_THREADS = 4
#: One thread renders big pages (and builds big reports): the reactor then competes with
#: at most one GIL-heavy thread, and small pages stay quick (docs/performance.md).
RENDER_THREADS = 1
#: How long a clean stop waits for the responses under way ("a few seconds", docs/operations.md).
SHUTDOWN_GRACE = 5.0


class StartupError(Exception):
    """Why the server cannot start, in one line for the person starting it."""


def _with_backlog(endpoint: str) -> str:
    """Add our listen backlog to `tcp:`/`ssl:` endpoints that do not choose their own."""
    kind = endpoint.split(":", 1)[0]
    if kind in ("tcp", "tcp6", "ssl") and "backlog=" not in endpoint:
        return f"{endpoint}:backlog={LISTEN_BACKLOG}"
    return endpoint


def serving_line(endpoint: str, address: object) -> str:
    """
    The one line that says where the server listens, as a URL a person can click:
    `https` for a TLS endpoint, the host name for a wildcard address (which serves it on
    every interface), curl's way in for a Unix socket.
    """
    scheme = "https" if endpoint.split(":", 1)[0] == "ssl" else "http"
    if isinstance(address, UNIXAddress):
        path = os.fsdecode(address.name or b"")
        return (
            f"twistedspy {__version__} serving the Unix socket {path}"
            f" (curl --unix-socket {path} {scheme}://localhost/)"
        )
    if not isinstance(address, IPv4Address | IPv6Address):
        return f"twistedspy {__version__} serving {endpoint}"
    host, where = address.host, ""
    if ipaddress.ip_address(host.split("%", 1)[0]).is_unspecified:
        host, where = socket.gethostname(), " on every address"
    elif isinstance(address, IPv6Address):
        host = f"[{host}]"  # RFC 3986 §3.2.2: an IPv6 literal in brackets
    return f"twistedspy {__version__} serving {scheme}://{host}:{address.port}/{where}"


@dataclass(frozen=True, slots=True)
class Pools:
    """The three kinds of blocking work, each in threads of its own (docs/architecture.md)."""

    logins: WorkPool
    modules: WorkPool
    render: WorkPool

    def all(self) -> tuple[WorkPool, ...]:
        return (self.logins, self.modules, self.render)


class SpyService(MultiService):
    """Listens, serves, and on stop closes every connection before saying it stopped."""

    def __init__(self, settings: Settings, reactor: Any, journal: JournalObserver) -> None:
        super().__init__()
        self.log = Logger(
            namespace="twistedspy",
            source=self,
            observer=JournalRoute(journal, globalLogPublisher),
        )
        self.settings = settings
        self.reactor = reactor
        self.journal = journal
        self.pools = Pools(
            logins=WorkPool(reactor, "login", LOGIN_THREADS),
            modules=WorkPool(reactor, "module", MODULE_THREADS),
            render=WorkPool(reactor, "render", RENDER_THREADS),
        )
        self.modules: dict[str, IInfoModule] = {}
        self.requests = RequestStats(lambda: self.modules)
        self.watchdog = StallWatchdog(reactor, self.log, self.requests.count_stall)
        context = ModuleContext(
            settings=settings,
            reactor=cast("IReactorTime", reactor),
            run_blocking=self.pools.modules,
            served=lambda: list(self.modules.values()),
            log=self.log,
            run_computation=self.pools.render,
        )
        try:
            self.gatekeeper = make_gatekeeper(settings, reactor, self.pools.logins, self.log)
        except AccountsError as e:
            raise StartupError(str(e)) from None
        #: ModulesDir files that failed to import, journalled once the journal listens
        self.load_errors: list[LoadError] = []
        plugins = discover(settings.modules_dir, on_error=self.load_errors.append)
        self.modules.update(build(plugins, context, settings.modules))
        if settings.modules is not None:
            unknown = sorted(set(settings.modules) - set(self.modules))
            if unknown:
                raise StartupError(f"Modules: no such module: {', '.join(unknown)}")
        # A module that is also a Service (a background sampler) runs while we do.
        for module in self.modules.values():
            if IService.providedBy(module):
                cast("IService", module).setServiceParent(self)
            if IMetricsAggregator.providedBy(module):
                cast("IMetricsAggregator", module).add_source(self.requests)
        self.dispatcher = Dispatcher(
            settings=settings,
            modules=lambda: self.modules,
            gatekeeper=self.gatekeeper,
            renderer=Renderer(),
            clock=reactor,
            log=self.log,
            run_collection=self.pools.modules,
            run_computation=self.pools.render,
            watchdog=self.watchdog,
        )
        # Past ModuleTimeout, work still holding every thread of a pool is hung work, and
        # a stall that recent may come again: either way pages are not being served.
        limit = settings.module_timeout
        self.dispatcher.health_checks.extend(
            saturation_check(pool, limit) for pool in self.pools.all()
        )
        self.dispatcher.health_checks.append(self.watchdog.check(limit))
        # An accounts file changed into one that cannot be read whole lets nobody in.
        self.dispatcher.health_checks.append(self.gatekeeper.health_problem)
        self.factory = HTTPFactory(
            self.dispatcher,
            reactor,
            max_clients=settings.max_clients,
            max_clients_per_address=settings.max_clients_per_address,
            request_timeout=settings.request_timeout,
            request_line_timeout=settings.request_line_timeout,
            keepalive_timeout=settings.keepalive_timeout,
            log=self.log,
            stats=self.requests,
        )
        self.port: IListeningPort | None = None
        self._journal_flush: object = None

    @override
    def privilegedStartService(self) -> None:
        # Bind before twistd drops privileges and before the reactor runs, so that a port
        # in use stops start-up with the reason instead of a server that serves nothing.
        globalLogPublisher.addObserver(self.journal)
        endpoint = serverFromString(self.reactor, _with_backlog(self.settings.endpoint()))
        self.factory.extra_headers = harden(endpoint, self.settings)
        outcome: list[object] = []
        endpoint.listen(self.factory).addBoth(outcome.append)
        if not outcome:
            # Endpoints that listen later (none of the stream kinds we document).
            raise StartupError(f"cannot listen on {self.settings.endpoint()}: no answer")
        if isinstance(outcome[0], Failure):
            globalLogPublisher.removeObserver(self.journal)
            raise StartupError(
                f"cannot listen on {self.settings.endpoint()}: {outcome[0].getErrorMessage()}"
            )
        self.port = cast("IListeningPort", outcome[0])
        try:
            # Judged on the socket as bound: whatever the endpoint string said.
            check_listening(self.settings, self.port.getHost())
        except ConfigError as e:
            self.port.stopListening()
            self.port = None
            globalLogPublisher.removeObserver(self.journal)
            raise StartupError(str(e)) from None
        self.factory.add_port(self.port)
        super().privilegedStartService()

    @override
    def startService(self) -> None:
        if self.port is None:
            self.privilegedStartService()
        super().startService()
        # Worker threads run pure-Python collection and rendering; a thread that wants
        # the GIL waits up to the switch interval for it, and the reactor asks for it
        # several times a request. 1 ms instead of CPython's 5 ms keeps small pages
        # quick while a big one is built (bench/processes.py: /version p99 under load).
        sys.setswitchinterval(0.001)
        for pool in self.pools.all():
            pool.start()
        # The journal writes a reactor turn's lines at its end: what is logged while the
        # reactor shuts down, after the last turn, is written here (docs/operations.md).
        self._journal_flush = self.reactor.addSystemEventTrigger(
            "after", "shutdown", self.journal.flush
        )
        for error in self.load_errors:
            record_failure(
                self.log,
                "module-error",
                error.failure,
                file=error.file,
                error=error.failure.getErrorMessage(),
                outcome="left out",
            )
        address = self.port.getHost() if self.port is not None else None
        record(
            self.log,
            "start",
            address=getattr(address, "host", self.settings.endpoint()),
            port=getattr(address, "port", "-"),
            modules=",".join(self.modules),
            security="on" if self.settings.security else "off",
        )
        # For the person watching the terminal or twistd's log: not a journal event.
        self.log.info("{serving}", serving=serving_line(self.settings.endpoint(), address))
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            record(
                self.log,
                "warning",
                LogLevel.warn,
                message="running as root: twistedspy needs no privileges; run it as a plain user",
            )

    @override
    def stopService(self) -> Deferred[None]:
        """Stop accepting, finish what is under way, close, journal, end (docs/operations.md)."""
        if not self.running:
            return succeed(None)
        self.factory.stop_accepting()
        self.watchdog.stop()
        stopping: list[Deferred[Any]] = [maybeDeferred(MultiService.stopService, self)]
        if self.port is not None:
            stopping.append(Deferred.fromCoroutine(self._stop_listening()))
        stopping.append(self.factory.close_all(SHUTDOWN_GRACE))
        done = DeferredList(stopping, consumeErrors=True)

        def stopped(_: object) -> None:
            # A thread stuck in a module cannot be joined: the pool leaves it, and as a
            # daemon thread it does not hold the process's exit.
            for pool in self.pools.all():
                pool.stop()
            record(self.log, "stop", connections=len(self.factory.connections))
            globalLogPublisher.removeObserver(self.journal)
            self.journal.close()
            if self._journal_flush is not None:
                self.reactor.removeSystemEventTrigger(self._journal_flush)
                self._journal_flush = None

        return done.addCallback(stopped)

    async def _stop_listening(self) -> None:
        assert self.port is not None
        stopping = self.port.stopListening()
        if stopping is not None:
            await stopping


def makeService(settings: Settings, reactor: IReactorCore | None = None) -> SpyService:
    """The twistedspy service for these settings; raises StartupError with the reason."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor  # noqa: PLC0415

        reactor = cast("IReactorCore", global_reactor)
    try:
        settings = replace(
            settings,
            log_dir=own_path(settings.log_dir, "LogDir"),
            message_file=own_path(settings.message_file, "MessageFile"),
        )
        journal = open_journal(
            settings.log_dir, settings.log_mode, clock=cast("IReactorTime", reactor)
        )
    except (JournalError, OwnershipError) as e:
        raise StartupError(str(e)) from None
    try:
        return SpyService(settings, reactor, journal)
    except BaseException:
        journal.close()
        raise


def _exit_with(error: StartupError) -> NoReturn:
    # One line for the person starting it, not twistd's traceback (docs/configuration.md).
    sys.stderr.write(f"twistedspy: {error}\n")
    raise SystemExit(1) from None


class _CommandLineService(MultiService):
    """The service as twistd runs it: a failure to listen ends the process in one line."""

    @override
    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except StartupError as e:
            _exit_with(e)


def make_command_line_service(settings: Settings) -> MultiService:
    """`makeService` for `spy.tac` and `twistd spy`, where errors go to a person's terminal."""
    # Before any worker thread exists: a thread's arena is chosen at its first malloc.
    tune_malloc()
    try:
        spy = makeService(settings)
    except StartupError as e:
        _exit_with(e)
    wrapper = _CommandLineService()
    spy.setServiceParent(wrapper)
    return wrapper
