# -*- test-case-name: tests.test_metrics -*-
"""The `metrics` module: the same facts as the pages, for Prometheus, at `/metrics`.

A small aggregator: each module that provides `IMetricsSource` contributes its own
families from its own reading (cpu.py, meminfo.py, ...; a drop-in module the same way,
docs/writing-modules.md), and the service adds its request counts. Names and labels are
node_exporter's wherever it has the metric (so that dashboards made for it, such as
Grafana's "Node Exporter Full", work unchanged); `twistedspy_*` names cover what it
lacks, and each collector's duration and success are reported here. The exposition is
written by `prometheus_client` (`generate_latest`, family by family, a family unchanged
since the previous scrape reusing its text: `Exposition`), which also escapes label
values: process, user, interface and mount names are whatever their owners chose.

Each collector runs with a deadline and fails alone: its
`twistedspy_scrape_collector_success` is then 0 and the others are still served.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, cast

from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import implementer

from twistedspy.collectors import Families, merged
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
from twistedspy.sources import ClockSource, KernelSource, OwnProcessSource
from twistedspy.textfile import TextfileSource, names_taken

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


class _Fixed:
    """A collector of given families, which is all `generate_latest` asks of a registry."""

    def __init__(self, found: list[Metric]) -> None:
        self.found = found

    def collect(self) -> Iterator[Metric]:
        return iter(self.found)


def exposition(families: Iterable[Metric]) -> bytes:
    """The text format for these families, written by prometheus_client."""
    return generate_latest(_Fixed(list(families)))


#: how prometheus_client writes a value (untyped there)
float_text = cast("Callable[[float], str]", floatToGoString)
#: the end of a sample line of value 0
ZERO_TEXT: Final = float_text(0.0) + "\n"
#: the names of OpenMetrics samples that `generate_latest` moves out of their family
_MOVED_SUFFIXES: Final = ("_created", "_gsum", "_gcount")


@dataclass(slots=True)
class _Written:
    """What prometheus_client wrote for one family: its head, and each series' name and
    labels (the line up to its value)."""

    documentation: str
    type: str
    unit: str
    head: str
    #: (sample name, its labels as given) -> the start of its line
    series: dict[tuple[str, tuple[tuple[str, str], ...]], str]
    #: the samples last written, and their text, unless one of them was 0 (whose sign,
    #: which an equal -0.0 does not share, the text shows)
    samples: list[Sample] | None = None
    text: str = ""


def _alike(family: Metric, samples: Sequence[Sample]) -> Metric:
    """A family of the same name, help, type and unit as `family`, with `samples`."""
    alike = copy.copy(family)  # as it is: Metric() would check and change name and type
    alike.samples = list(samples)
    return alike


class Exposition:
    """
    The text format of each scrape, as prometheus_client's `generate_latest` writes it,
    with the writing kept: a family's head (HELP and TYPE), and each series' name and
    escaped labels, are written by prometheus_client the first time they are seen and
    kept; a scrape then writes only the values, in prometheus_client's own float
    format. Escaping every sample's labels at every scrape was most of the exposition's
    cost (docs/performance.md). A family with a sample that
    `generate_latest` would move or stamp (OpenMetrics `_created`, a timestamp) is
    written whole.
    """

    def __init__(self) -> None:
        self._written: dict[str, _Written] = {}

    def __call__(self, families: Sequence[Metric]) -> bytes:
        text = "".join([self._text(family) for family in families])
        if len(self._written) > 2 * len(families):
            # Families that are gone (a textfile removed, a collect[]= scrape) are
            # forgotten once they outnumber those served.
            names = {f.name for f in families}
            self._written = {n: w for n, w in self._written.items() if n in names}
        return text.encode()

    def _text(self, family: Metric) -> str:
        kept = self._written.get(family.name)
        if (
            kept is None
            or kept.documentation != family.documentation
            or kept.type != family.type
            or kept.unit != family.unit
        ):
            head = exposition([_alike(family, ())]).decode()
            kept = _Written(family.documentation, family.type, family.unit, head, {})
            self._written[family.name] = kept
        elif kept.samples is not None and kept.samples == family.samples:
            return kept.text  # no counter moved: the text of the last scrape
        series = kept.series
        lines = [kept.head]
        for sample in family.samples:
            if sample.timestamp is not None:
                return exposition([family]).decode()
            key = (sample.name, tuple(sample.labels.items()))
            start = series.get(key)
            if start is None:
                if sample.name.endswith(_MOVED_SUFFIXES):
                    return exposition([family]).decode()
                line = exposition([_alike(family, [sample._replace(value=0.0)])]).decode()
                start = series[key] = line[len(kept.head) : -len(ZERO_TEXT)]
            lines.append(f"{start}{float_text(sample.value)}\n")
        if len(series) > 2 * len(family.samples) + 16:
            # Series that are gone (a process's user, an unmounted disk) are forgotten
            # once they outnumber those served.
            served = {(s.name, tuple(s.labels.items())) for s in family.samples}
            kept.series = {k: v for k, v in series.items() if k in served}
        text = "".join(lines)
        if all(s.value for s in family.samples):
            kept.samples, kept.text = list(family.samples), text
        else:
            kept.samples = None
        return text


@dataclass(frozen=True, slots=True)
class CollectorResult:
    name: str
    families: Sequence[Metric]
    seconds: float
    ok: bool


# Reactor-safe: returns a Deferred; each collector reads through run_blocking.
@implementer(IInfoModule, IMetricsAggregator, IReactorSafe)
class MetricsModule:
    name = "metrics"
    title = "Metrics"
    description = "Prometheus exposition with node_exporter's names; collect[]= and exclude[]=."

    def __init__(
        self,
        context: ModuleContext,
        timer: Callable[[], float] = time.perf_counter,
        sources: Iterable[IMetricsSource] | None = None,
    ) -> None:
        self._context = context
        self._timer = timer
        self._deadline = context.settings.module_timeout / 2
        #: sources besides the served modules: those no page shows (twistedspy/sources.py),
        #: and what the service adds
        self._sources: list[IMetricsSource] = list(
            sources
            if sources is not None
            else (ClockSource(context.reactor.seconds), KernelSource(), OwnProcessSource())
        )
        #: asked last, with the names the others took (twistedspy/textfile.py)
        self._textfile = TextfileSource(
            context.settings.textfile_dir, context.run_blocking, context.log
        )
        self._exposition = Exposition()

    def add_source(self, source: IMetricsSource) -> None:
        self._sources.append(source)

    def collectors(self) -> dict[str, IMetricsSource]:
        """Every source by name, in name order; a module cannot shadow one added here."""
        found: dict[str, IMetricsSource] = {s.name: s for s in self._sources}
        found[self._textfile.name] = self._textfile
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
        first = [s for s in sources if s is not self._textfile]
        results = await DeferredList([self._timed(s) for s in first], fireOnOneErrback=True)
        done = [r for _, r in results]
        if self._textfile in sources:
            taken = (
                names_taken(f for r in done for f in r.families)
                if self._textfile.reads_files
                else set()
            )
            done.append(await self._timed(self._textfile, taken))
        families = [f for r in done for f in r.families]
        families.extend(scrape_families(done))
        return RawBody(self._exposition(merged(families)), CONTENT_TYPE)

    def _timed(
        self, source: IMetricsSource, taken: frozenset[str] | set[str] = frozenset()
    ) -> Deferred[CollectorResult]:
        started = self._timer()
        if source is self._textfile:
            running: Deferred[list[Metric]] = self._textfile.metrics_beside(taken)
        else:
            running = _families(source)
        if not running.called:  # a source that answered at once needs no timer
            running.addTimeout(self._deadline, self._context.reactor)

        def finished(result: list[Metric] | Failure) -> CollectorResult:
            # A source that measured its own work (collectors.Families) is reported by
            # that, not by the time its work waited for a thread.
            own = result.seconds if isinstance(result, Families) else None
            seconds = self._timer() - started if own is None else own
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
