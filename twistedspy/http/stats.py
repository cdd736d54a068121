# -*- test-case-name: tests.test_metrics -*-
"""The server's own counts for `/metrics`: requests by module and status, latency, stalls.

The connection (protocol.py) reports each response it writes here, beside the journal's
`request` event. It is the `server` collector of /metrics: the service adds it to the
metrics module (IMetricsAggregator), so no module needs to know of it. One RequestStats
belongs to one running service, so several servers in one process (the tests) keep
separate counts.

The counts are plain dicts and lists, without prometheus_client's locks: the reactor
thread is the only one that writes them (each response, each stall the watchdog sees) and
the only one that reads them (`IMetricsSource.metrics` is called on the reactor), so
nothing can interleave. The families are made from them only when a scrape asks, in the
shape prometheus_client's own Counter and Histogram give (docs/performance.md).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Container
from typing import Final

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

_REQUESTS: Final = "twistedspy_http_requests"
_REQUESTS_HELP: Final = "Requests answered by twistedspy, by module and status code."
_LATENCY: Final = "twistedspy_http_request_duration_seconds"
_LATENCY_HELP: Final = "Seconds from a whole request received to its response written, by module."
_STALLS: Final = "twistedspy_reactor_stalls"
_STALLS_HELP: Final = (
    "Times the reactor was blocked for over 250 ms (journal event reactor-stall)."
)
#: upper bounds as prometheus_client spells them (Go's float format), +Inf last
_LE: Final = (*(repr(float(b)) for b in LATENCY_BUCKETS), "+Inf")


class _Count:
    """One series of the request counter: its count and when it first counted."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0
        # time.time() read through the module, as prometheus_client stamps `_created`
        # (the golden test fixes it)
        self.created = time.time()


class _Latency:
    """One module's latency histogram: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("buckets", "created", "total")

    def __init__(self) -> None:
        self.buckets = [0] * len(_LE)
        self.total = 0.0
        self.created = time.time()


@implementer(IMetricsSource)
class RequestStats:
    """Request counts, latency and stalls, kept on the reactor and read by the metrics module."""

    name = "server"

    def __init__(self, modules: Callable[[], Container[str]] = frozenset) -> None:
        self._modules = modules
        #: (module label, status) -> its count, in the order the series first appeared
        self._requests: dict[tuple[str, int], _Count] = {}
        #: module label -> its histogram, in the order the modules first appeared
        self._latency: dict[str, _Latency] = {}
        self._stalls = 0
        self._stalls_created = time.time()

    def module_label(self, path: str | None) -> str:
        if path is None or path.startswith("/-/"):
            return SERVER
        name = path.strip("/") or "index"
        return name if name in self._modules() else UNKNOWN

    def observe(self, path: str | None, status: int, seconds: float) -> None:
        module = self.module_label(path)
        count = self._requests.get((module, status))
        if count is None:
            count = self._requests[module, status] = _Count()
        count.value += 1
        latency = self._latency.get(module)
        if latency is None:
            latency = self._latency[module] = _Latency()
        # the first bucket whose bound is at least `seconds` (le: less than or equal)
        latency.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        latency.total += seconds

    def count_stall(self) -> None:
        """One more reactor stall (see twistedspy.watchdog); called on the reactor."""
        self._stalls += 1

    def metrics(self) -> list[Metric]:
        """The families as prometheus_client's Counter and Histogram would give them."""
        requests = Metric(_REQUESTS, _REQUESTS_HELP, "counter")
        for (module, status), count in self._requests.items():
            labels = {"module": module, "status": str(status)}
            requests.add_sample(_REQUESTS + "_total", labels, float(count.value))
            requests.add_sample(_REQUESTS + "_created", labels, count.created)
        latency = Metric(_LATENCY, _LATENCY_HELP, "histogram")
        for module, histogram in self._latency.items():
            running = 0.0
            for le, in_bucket in zip(_LE, histogram.buckets, strict=True):
                running += in_bucket
                latency.add_sample(_LATENCY + "_bucket", {"module": module, "le": le}, running)
            latency.add_sample(_LATENCY + "_count", {"module": module}, running)
            latency.add_sample(_LATENCY + "_sum", {"module": module}, histogram.total)
            latency.add_sample(_LATENCY + "_created", {"module": module}, histogram.created)
        stalls = Metric(_STALLS, _STALLS_HELP, "counter")
        stalls.add_sample(_STALLS + "_total", {}, float(self._stalls))
        stalls.add_sample(_STALLS + "_created", {}, self._stalls_created)
        return [requests, latency, stalls]
