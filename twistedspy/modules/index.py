# -*- test-case-name: tests.test_golden,tests.test_pages_live -*-
"""The `index` module: how to connect, what each status means, and the modules served."""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import implementer

from twistedspy.context import ModuleContext
from twistedspy.interfaces import IInfoModule, IModuleFactory, IReactorSafe
from twistedspy.query import Query
from twistedspy.report import Column, Report, Table

#: Every status the server answers, in the words a user needs (SPEC §2).
STATUS_CODES: tuple[tuple[int, str, str], ...] = (
    (200, "OK", "The page was served, or the message was stored."),
    (400, "Bad Request", "The request, a header or a query parameter is malformed."),
    (401, "Unauthorized", "Security is on and the user name or password is missing or wrong."),
    (403, "Forbidden", "A form on another site tried to post here."),
    (404, "Not Found", "There is no such module, or it is not enabled."),
    (405, "Method Not Allowed", "Modules answer GET and HEAD; the message form also POST."),
    (408, "Request Timeout", "The request did not arrive whole in time."),
    (413, "Content Too Large", "The body is larger than 64 KiB."),
    (414, "URI Too Long", "The request line is longer than 8 KiB."),
    (415, "Unsupported Media Type", "A posted message must be a URL-encoded form."),
    (421, "Misdirected Request", "The Host header names a host this server does not serve."),
    (429, "Too Many Requests", "Too many failed logins from your address; wait and retry."),
    (431, "Request Header Fields Too Large", "A header line is over 8 KiB, or over 100 fields."),
    (500, "Internal Server Error", "A module failed; the journal has the details."),
    (501, "Not Implemented", "Transfer-Encoding is not supported in requests."),
    (504, "Gateway Timeout", "A module did not answer in time (a hung mount, say)."),
    (505, "HTTP Version Not Supported", "Only HTTP/1.0 and HTTP/1.1 are spoken."),
)


# Reactor-safe: the settings and the module list, all in memory.
@implementer(IInfoModule, IReactorSafe)
class IndexModule:
    name = "index"
    title = "Index"
    description = "How to connect, what the status codes mean, and the modules served."
    #: seconds a rendered page stays true (see IInfoModule): the modules listed change
    #: only when the service is rebuilt
    max_age = 1.0

    def __init__(self, context: ModuleContext) -> None:
        self._context = context

    def collect(self, query: Query) -> Report:
        settings = self._context.settings
        modules = Table(
            title="Modules",
            columns=["module", "title", "description"],
            rows=[[m.name, m.title, m.description] for m in self._context.served()],
        )
        usage = Table(
            title="How to ask",
            columns=["form", "meaning"],
            rows=[
                ["/MODULE", "a module's page as HTML, e.g. /version"],
                [
                    "/MODULE?format=json",
                    "the same facts as JSON (or send Accept: application/json)",
                ],
                ["/MODULE?login=USER&password=PASS", "log in with the query, when security is on"],
                ["Authorization: Basic …", "log in as browsers do after a 401 (security on)"],
                ["/MODULE?refresh=N", "reload the page every N seconds (5 to 3600)"],
                ["/metrics", "Prometheus text format, when the metrics module is served"],
                ["/-/healthy", "200 when the server runs; needs no login, shows nothing else"],
            ],
        )
        statuses = Table(
            title="Status codes",
            columns=[Column("status", "int"), "reason", "meaning"],
            rows=[list(row) for row in STATUS_CODES],
        )
        security = "on: every page needs a login" if settings.security else "off"
        return Report(
            title="twistedspy",
            notes=[
                f"Watch this machine from a browser, curl or Prometheus. Security is {security}.",
            ],
            tables=[modules, usage, statuses],
        )


@implementer(IPlugin, IModuleFactory)
class IndexFactory:
    name = "index"

    def build(self, context: ModuleContext) -> IInfoModule:
        return IndexModule(context)
