# -*- test-case-name: tests.test_collectors -*-
"""node_exporter's collectors inside twistedspy's sources: each family group read, timed
and judged on its own, reported as `node_scrape_collector_duration_seconds` and
`node_scrape_collector_success` under node_exporter's collector names (`vmstat`,
`netclass`, ...), so that its dashboards' scrape panels work.

A module's source runs several such collectors (the cpu module: cpu, loadavg, stat,
interrupts, schedstat); one that fails (a missing file, a kernel without the feature)
costs only its own families, and its success is 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from time import perf_counter
from typing import ParamSpec, TypeVar

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

P = ParamSpec("P")
T = TypeVar("T")

#: a collector: reads what it needs and returns its families, or raises
NodeCollector = Callable[[], Iterable[Metric]]


class PartlyCollected(Exception):
    """
    Raised by a collector that read part of what it reads: node_exporter serves what a
    collector sent before it returned its error, and reports the collector's success
    as 0 (its hwmon collector, when one chip's directory cannot be read).
    """

    def __init__(self, families: Iterable[Metric], reason: str) -> None:
        super().__init__(reason)
        self.families = list(families)


class Families(list[Metric]):
    """
    Families, with the seconds the work that built them took, measured where it ran (a
    worker thread, say): the metrics module reports that, not the time the work waited
    for a thread (docs/writing-modules.md).
    """

    seconds: float = 0.0


def timed_into(
    spent: list[float], work: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """
    `work(*args, **kwargs)`, its seconds appended to `spent`: a source whose work runs
    in several worker-thread calls sums them for its `Families.seconds` (an append is
    atomic, so the calls may share one list).
    """
    started = perf_counter()
    try:
        return work(*args, **kwargs)
    finally:
        spent.append(perf_counter() - started)


def run_collectors(collectors: Mapping[str, NodeCollector]) -> list[Metric]:
    """
    Run each collector in turn: their families, then each one's duration and success,
    as `Families` (typed as the list it is, which the sources' signatures name).
    """
    found = Families()
    duration = GaugeMetricFamily(
        "node_scrape_collector_duration_seconds",
        "node_exporter: Duration of a collector scrape.",
        labels=["collector"],
    )
    success = GaugeMetricFamily(
        "node_scrape_collector_success",
        "node_exporter: Whether a collector succeeded.",
        labels=["collector"],
    )
    total = 0.0
    for name, collect in collectors.items():
        started = perf_counter()
        try:
            found.extend(collect())
            ok = True
        except PartlyCollected as partly:
            found.extend(partly.families)
            ok = False
        except Exception:  # a collector fails alone: its success says so
            ok = False
        seconds = perf_counter() - started
        total += seconds
        duration.add_metric([name], seconds)
        success.add_metric([name], 1 if ok else 0)
    found += [duration, success]
    found.seconds = total
    return found


def joined(*parts: list[Metric]) -> Families:
    """
    Several `run_collectors` answers as one source's: the families, the
    node_scrape_collector_* ones joined, and the seconds of each part's own work (a
    part run in a worker thread measured there).
    """
    found = Families(merged([family for part in parts for family in part]))
    found.seconds = sum(part.seconds for part in parts if isinstance(part, Families))
    return found


def merged(families: Iterable[Metric]) -> list[Metric]:
    """
    One family per name, in first-seen order: each source reports its own collectors'
    node_scrape_collector_* samples, and the exposition may name a family only once.
    The families given are left as they are (a source may keep them for a later scrape).
    """
    by_name: dict[str, Metric] = {}
    for family in families:
        seen = by_name.get(family.name)
        if seen is None:
            by_name[family.name] = family
            continue
        if seen.type != family.type:
            raise ValueError(f"family {family.name} is both {seen.type} and {family.type}")
        joined = Metric(seen.name, seen.documentation, seen.type, seen.unit)
        joined.samples = [*seen.samples, *family.samples]
        by_name[family.name] = joined
    return list(by_name.values())
