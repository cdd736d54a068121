# -*- test-case-name: tests.test_sockets -*-
"""Prometheus families that a metrics source gives in part when some of its files fail.

node_exporter's collectors drop what they could not read and report the collector's
success as 0; a source here does the same by raising `PartialFamilies` with what it did
read, which the metrics module serves (twistedspy/modules/metrics.py).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client.metrics_core import Metric
from twisted.python.failure import Failure


class PartialFamilies(Exception):
    """
    What a source's `metrics()` raises when some of its families could not be read (a
    file missing or unreadable): the families it did read are served, and its
    `twistedspy_scrape_collector_success` is 0, as node_exporter drops a failed part.
    """

    def __init__(self, families: list[Metric], failures: list[Failure]) -> None:
        super().__init__("; ".join(f.getErrorMessage() for f in failures))
        self.families = families
        self.failures = failures


def family_groups(*groups: Callable[[], list[Metric]]) -> list[Metric]:
    """
    The families of every group (one file's reading, say); raises PartialFamilies with
    the others' when any group fails, so that one bad file drops only its own families.
    """
    families: list[Metric] = []
    failures: list[Failure] = []
    for group in groups:
        try:
            families += group()
        except Exception:
            failures.append(Failure())
    if failures:
        raise PartialFamilies(families, failures)
    return families
