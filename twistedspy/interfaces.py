# -*- test-case-name: tests.test_module_plugins -*-
"""The contracts an info module and the server agree on (docs/writing-modules.md).

A module is a Twisted plugin: an object providing `IInfoModule` (ready to serve, like
the `hello.py` of docs/writing-modules.md) or `IModuleFactory` (built once per running
service, for modules that need the settings, a thread pool or background state).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from twistedspy.context import ModuleContext
    from twistedspy.query import Query, Submission
    from twistedspy.report import Page


class IInfoModule(Interface):
    """
    One page of facts, served at `/<name>`.

    Optional attribute, read with `getattr` (so it is not declared below, and a module
    without it, such as `hello.py` in docs/writing-modules.md, still provides it):

    `max_age`: how many seconds a rendered page stays true (a float, default 0). Within
    that time a GET or HEAD with the same format, the same query (login and password
    left out) and the same user is answered with the same bytes, without calling
    `collect` again; after it, by the reactor's clock, `collect` is called afresh. 0, a
    missing attribute, or anything but a positive number: every request calls `collect`.
    A module whose page depends on more than that (the message module, which shows what
    was just posted) must not declare it. POSTs are never cached.
    """

    name = Attribute("The URL path segment: lower-case letters, digits, '-' and '_'.")
    title = Attribute("A short human title, shown in the page heading and navigation.")
    description = Attribute("One line for the index page.")

    def collect(query: Query) -> Page | Deferred[Page]:
        """
        Gather the facts for one GET request.

        A plain `collect` runs in a worker thread, so it may block (read files, run a
        command); one that provides `IReactorSafe`, or is a coroutine function, runs on
        the reactor and may return a Deferred. One collection per module is in flight at
        a time, shared by the requests with the same query that wait for it.

        Raise L{twistedspy.report.InvalidQuery} for a parameter the module does not
        accept: the client gets 400 with its message.
        """


class IFormModule(IInfoModule):
    """A module that also accepts `POST` (the message form)."""

    def submit(submission: Submission) -> Page | Deferred[Page]:
        """
        Store what a client posted and say what was stored; runs where `collect` does.

        ModuleTimeout cancels the Deferred. Work that has begun and cannot be undone
        fails it with L{twistedspy.report.Committed} instead of giving up, so that the
        client hears what became of its post rather than 504.
        """


class IModuleFactory(Interface):
    """A plugin that builds its module once for each running service."""

    name = Attribute("The name of the module it builds.")

    def build(context: ModuleContext) -> IInfoModule:
        """Make the module, given the service's settings, reactor and thread pool."""


class IReactorSafe(Interface):
    """
    A marker: this module's `collect` (and `submit`) may be called on the reactor.

    Declare it (`@implementer(IInfoModule, IReactorSafe)`) only for a module that
    returns at once: it keeps what it shows in memory, or it returns a Deferred and does
    its blocking work elsewhere (`ModuleContext.run_blocking`). Everything else runs in
    a worker thread. A module that provides it and blocks anyway stalls every client,
    and the stall watchdog journals it by name.
    """


if TYPE_CHECKING:
    from twistedspy.report import PageContext


class IPageRenderer(Interface):
    """
    A module that may hand back its GET and HEAD pages already rendered.

    Where it is provided, the dispatcher calls `render_page` instead of `collect`, on the
    reactor (so the module also provides `IReactorSafe`), with the format and what the
    layout shows around the page. A `RawBody` in the answer is served as it is; a
    `Report` is rendered by the server as any other. It exists so that a page too big to
    build beside the reactor can be built in another process (docs/architecture.md, "The
    process worker").
    """

    def render_page(query: Query, as_json: bool, context: PageContext) -> Page | Deferred[Page]:
        """The page for `query` in JSON or HTML, finished or as a Report to render."""


if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric


class IMetricsSource(Interface):
    """
    Prometheus families for `/metrics`, from the same reading the module's page uses.

    An info module may provide this beside `IInfoModule`; the metrics module asks every
    served module that does, times each one and reports its duration and success
    (docs/writing-modules.md shows a drop-in module doing it).
    """

    name = Attribute(
        "The collector's name: the `collector` label of twistedspy_scrape_collector_*, "
        "and what `collect[]=` and `exclude[]=` choose. A module's own name."
    )

    def metrics() -> list[Metric] | Deferred[list[Metric]]:
        """
        The families now. Called on the reactor thread: return families made from what
        is in memory, or a Deferred (from the context's `run_blocking`, say) for work that
        reads files or may block. A failure costs only this collector's families.
        """


class IMetricsAggregator(Interface):
    """A module that exposes other sources' families too (the metrics module)."""

    def add_source(source: IMetricsSource) -> None:
        """Include `source` in every scrape: the service adds its own request counts."""


if TYPE_CHECKING:
    from collections.abc import Sequence

    from twistedspy.report import Table


class IGlance(Interface):
    """
    A module's latest reading in a few figures, for the landing page.

    An info module may provide this beside `IInfoModule`; the index shows each served
    module's tables under a link to its page, and lists every marked cell (a value past
    a threshold) among "Past a threshold".
    """

    name = Attribute("The module's name: the index links the figures to `/<name>`.")

    def glance() -> Sequence[Table] | Deferred[Sequence[Table]]:
        """
        The figures now. Called on the reactor for every landing page: answer from what
        a sampler already holds (no scan of /proc/*, nothing that may block), or with a
        Deferred for a reading that must wait in a thread under a deadline.
        """
