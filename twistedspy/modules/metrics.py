# -*- test-case-name: tests.test_metrics -*-
"""The `metrics` module: the same facts as the pages, for Prometheus, at `/metrics`.

A small aggregator: each module that provides `IMetricsSource` contributes its own
families from its own reading (cpu.py, meminfo.py, ...; a drop-in module the same way,
docs/writing-modules.md), and the service adds its request counts. Names and labels are
node_exporter's wherever it has the metric (so that dashboards made for it, such as
Grafana's "Node Exporter Full", work unchanged); `twistedspy_*` names cover what it
lacks, and each collector's duration and success are reported here. The exposition is
written by `prometheus_client` (`generate_latest` over a registry made for each scrape),
which also escapes label values: process, user, interface and mount names are whatever
their owners chose.

Each collector runs with a deadline and fails alone: its
`twistedspy_scrape_collector_success` is then 0 and the others are still served.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import implementer

from twistedspy.context import ModuleContext
from twistedspy.interfaces import (
    IInfoModule,
    IMetricsAggregator,
    IMetricsSource,
    IModuleFactory,
    IReactorSafe,
)
from twistedspy.query import Query
from twistedspy.report import InvalidQuery, Page, RawBody

#: Prometheus text format 0.0.4, what `generate_latest` writes
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
COLLECT: Final = "collect[]"
EXCLUDE: Final = "exclude[]"


def scrape_families(results: Sequence[CollectorResult]) -> list[Metric]:
    duration = GaugeMetricFamily(
        "twistedspy_scrape_collector_duration_seconds",
        "twistedspy: duration of a collector scrape.",
        labels=["collector"],
    )
    success = GaugeMetricFamily(
        "twistedspy_scrape_collector_success",
        "twistedspy: whether a collector succeeded.",
        labels=["collector"],
    )
    for r in results:
        duration.add_metric([r.name], r.seconds)
        success.add_metric([r.name], 1 if r.ok else 0)
    return [duration, success]


def exposition(families: Iterable[Metric]) -> bytes:
    """The text format for these families, written by prometheus_client."""

    class Fixed:
        def __init__(self, found: list[Metric]) -> None:
            self.found = found

        def collect(self) -> Iterator[Metric]:
            return iter(self.found)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed(list(families)))
    return generate_latest(registry)


@dataclass(frozen=True, slots=True)
class CollectorResult:
    name: str
    families: Sequence[Metric]
    seconds: float
    ok: bool


@implementer(IMetricsSource)
class TimeSource:
    """node_exporter's time collector: the clock the scrape was answered by."""

    name = "time"

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    def metrics(self) -> list[Metric]:
        return [
            GaugeMetricFamily(
                "node_time_seconds", "System time in seconds since epoch (1970).", self._clock()
            )
        ]


# Reactor-safe: returns a Deferred; each collector reads through run_blocking.
@implementer(IInfoModule, IMetricsAggregator, IReactorSafe)
class MetricsModule:
    name = "metrics"
    title = "Metrics"
    description = "Prometheus exposition with node_exporter's names; collect[]= and exclude[]=."

    def __init__(
        self, context: ModuleContext, timer: Callable[[], float] = time.perf_counter
    ) -> None:
        self._context = context
        self._timer = timer
        self._deadline = context.settings.module_timeout / 2
        #: sources besides the served modules: the time, and what the service adds
        self._sources: list[IMetricsSource] = [TimeSource(context.reactor.seconds)]

    def add_source(self, source: IMetricsSource) -> None:
        self._sources.append(source)

    def collectors(self) -> dict[str, IMetricsSource]:
        """Every source by name, in name order; a module cannot shadow one added here."""
        found: dict[str, IMetricsSource] = {s.name: s for s in self._sources}
        for module in self._context.served():
            if IMetricsSource.providedBy(module):
                found.setdefault(module.name, IMetricsSource(module))
        return dict(sorted(found.items()))

    def chosen(self, query: Query) -> list[IMetricsSource]:
        """`collect[]=` names the collectors wanted (all by default), `exclude[]=` drops some."""
        collectors = self.collectors()
        wanted, dropped = query.getall(COLLECT), query.getall(EXCLUDE)
        unknown = sorted({*wanted, *dropped} - set(collectors))
        if unknown:
            raise InvalidQuery(
                f"no such collector: {', '.join(unknown)}; "
                f"the collectors are {', '.join(collectors)}"
            )
        return [
            source
            for name, source in collectors.items()
            if (not wanted or name in wanted) and name not in dropped
        ]

    def collect(self, query: Query) -> Deferred[Page]:
        return Deferred.fromCoroutine(self._scrape(self.chosen(query)))

    async def _scrape(self, sources: list[IMetricsSource]) -> Page:
        results = await DeferredList([self._timed(s) for s in sources], fireOnOneErrback=True)
        done = [r for _, r in results]
        families = [f for r in done for f in r.families]
        families.extend(scrape_families(done))
        return RawBody(exposition(families), CONTENT_TYPE)

    def _timed(self, source: IMetricsSource) -> Deferred[CollectorResult]:
        started = self._timer()
        running = _families(source)
        running.addTimeout(self._deadline, self._context.reactor)

        def finished(result: list[Metric] | Failure) -> CollectorResult:
            seconds = self._timer() - started
            if isinstance(result, Failure):
                self._context.log.failure(
                    "metrics collector {collector} failed", result, collector=source.name
                )
                return CollectorResult(source.name, [], seconds, ok=False)
            return CollectorResult(source.name, result, seconds, ok=True)

        return running.addBoth(finished)


def _families(source: IMetricsSource) -> Deferred[list[Metric]]:
    """What `source.metrics()` gives, as a Deferred; a raised exception as its failure."""
    try:
        found = source.metrics()
    except Exception:
        return fail()
    return found if isinstance(found, Deferred) else succeed(found)


@implementer(IPlugin, IModuleFactory)
class MetricsFactory:
    name = "metrics"

    def build(self, context: ModuleContext) -> IInfoModule:
        return MetricsModule(context)
