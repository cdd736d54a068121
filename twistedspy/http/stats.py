# -*- test-case-name: tests.test_metrics -*-
"""The server's own counts for `/metrics`: requests by module and status, latency, stalls.

The connection (protocol.py) reports each response it writes here, beside the journal's
`request` event. It is the `server` collector of /metrics: the service adds it to the
metrics module (IMetricsAggregator), so no module needs to know of it. One RequestStats
belongs to one running service, so several servers in one process (the tests) keep
separate counts.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric
from zope.interface import implementer

from twistedspy.interfaces import IMetricsSource

#: the module label of paths that name no served module: a client choosing random paths
#: must not create a new series with each (unbounded label values)
UNKNOWN: Final = "unknown"
#: the module label of `/-/` paths (health check, static files) and unparsed requests
SERVER: Final = "-"
#: seconds; from a cached page (~1 ms) to a module timing out (10 s by default)
LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@implementer(IMetricsSource)
class RequestStats:
    """Counters and a histogram in a registry of their own, read by the metrics module."""

    name = "server"

    def __init__(self, modules: Callable[[], Container[str]] = frozenset) -> None:
        self._modules = modules
        self._registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "twistedspy_http_requests",
            "Requests answered by twistedspy, by module and status code.",
            ["module", "status"],
            registry=self._registry,
        )
        self._latency = Histogram(
            "twistedspy_http_request_duration_seconds",
            "Seconds from a whole request received to its response written, by module.",
            ["module"],
            buckets=LATENCY_BUCKETS,
            registry=self._registry,
        )
        self._stalls = Counter(
            "twistedspy_reactor_stalls",
            "Times the reactor was blocked for over 250 ms (journal event reactor-stall).",
            registry=self._registry,
        )
        #: (module label, status) -> the request counter and latency histogram it feeds
        self._series: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def module_label(self, path: str | None) -> str:
        if path is None or path.startswith("/-/"):
            return SERVER
        name = path.strip("/") or "index"
        return name if name in self._modules() else UNKNOWN

    def observe(self, path: str | None, status: int, seconds: float) -> None:
        module = self.module_label(path)
        key = (module, status)
        series = self._series.get(key)
        if series is None:
            # `labels()` checks and looks up its label values under a lock each call (most
            # of observe's cost); the child it returns for the same values is always the
            # same object, so it is looked up once. Few keys: modules times statuses.
            series = (self._requests.labels(module, str(status)), self._latency.labels(module))
            self._series[key] = series
        series[0].inc()
        series[1].observe(seconds)

    def count_stall(self) -> None:
        """One more reactor stall (see twistedspy.watchdog)."""
        self._stalls.inc()

    def metrics(self) -> list[Metric]:
        return list(self._registry.collect())
