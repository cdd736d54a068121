# -*- test-case-name: tests.test_textfile -*-
"""The textfile collector: `*.prom` files in TextfileDir added to /metrics on each
scrape, as node_exporter's textfile collector adds them (so that scripts written for it,
such as Debian's prometheus-node-exporter-collectors, keep working).

As node_exporter: every file is read afresh on each scrape; `node_textfile_mtime_seconds`
gives each file read (its `file` label the whole path) and `node_textfile_scrape_error`
is 1 when any file could not be used. A file that cannot be parsed, that carries
timestamps, or that names a family twistedspy exposes itself is an error for that file
alone: none of its families are served, and the scrape goes on (docs/configuration.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from twistedspy.collectors import run_collectors
from twistedspy.context import BlockingRunner
from twistedspy.interfaces import IMetricsSource

#: node_exporter reads a file of any size; a cap here keeps a runaway script from making
#: every scrape slow (such a file is an error, as a bad one is)
MAX_FILE_BYTES: Final = 4 * 1024 * 1024


class TextfileError(ValueError):
    """Why one file was left out."""


@dataclass(frozen=True, slots=True)
class Textfile:
    path: str
    mtime: float
    families: tuple[Metric, ...]


def _suffixes(name: str) -> set[str]:
    return {name, f"{name}_total", f"{name}_created", f"{name}_sum", f"{name}_count",
            f"{name}_bucket", f"{name}_info"}  # fmt: skip


def parse_textfile(path: str, text: str, mtime: float, taken: Collection[str]) -> Textfile:
    """
    One file's families, or TextfileError. `taken` holds every family and sample name
    the other collectors expose: a file that names one of them would make two families
    of one name, which no Prometheus accepts.
    """
    try:
        # a TYPE line without samples is no family: prometheus_client would write its
        # TYPE line anyway, beside the family its samples were parsed into
        families = tuple(f for f in text_string_to_metric_families(text) if f.samples)
    except (ValueError, IndexError, KeyError) as e:  # the parser's ways of saying no
        raise TextfileError(f"{path}: not the text format: {e}") from e
    taken = set(taken)
    for family in families:
        if _suffixes(family.name) & taken or any(s.name in taken for s in family.samples):
            raise TextfileError(f"{path}: {family.name} is a family twistedspy exposes itself")
        if any(s.timestamp is not None for s in family.samples):
            raise TextfileError(f"{path}: {family.name} has timestamps, which are not allowed")
        if family.type == "counter":
            _keep_counter_names(family, text)
    return Textfile(path, mtime, families)


def _keep_counter_names(family: Metric, text: str) -> None:
    """
    prometheus_client's parser names a counter's samples NAME_total even where the file
    wrote plain NAME (as old scripts do), and its writer would expose them so; node_exporter
    keeps the file's names, and dashboards query them. A counter whose samples the file
    did not write with `_total` is kept under the file's name, untyped.
    """
    for sample in family.samples:
        written = re.search(rf"^{re.escape(sample.name)}[{{\s]", text, re.MULTILINE)
        if sample.name.endswith("_total") and written is None:
            family.type = "unknown"
            family.samples = [
                s._replace(name=s.name.removesuffix("_total")) for s in family.samples
            ]
            return


def read_textfiles(
    directory: Path, taken: Collection[str], log: Logger
) -> tuple[list[Textfile], bool]:
    """Every `*.prom` file in name order; the files read, and whether any failed."""
    read, failed = [], False
    #: families the files read so far gave: a later file may not give one again
    given: set[str] = set()
    try:
        paths = sorted(p for p in directory.iterdir() if p.name.endswith(".prom"))
    except OSError as e:
        log.error("textfile folder {folder} cannot be read: {error}", folder=directory, error=e)
        return [], True
    for found_path in paths:
        path = str(found_path)
        try:
            with found_path.open("rb") as file:
                mtime = os.fstat(file.fileno()).st_mtime
                data = file.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                raise TextfileError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
            found = parse_textfile(path, data.decode("utf-8"), mtime, {*taken, *given})
        except (OSError, UnicodeDecodeError, TextfileError) as e:
            log.error("textfile {path} left out: {error}", path=path, error=e)
            failed = True
            continue
        given.update(family.name for family in found.families)
        read.append(found)
    return read, failed


def textfile_families(files: Iterable[Textfile], failed: bool) -> list[Metric]:
    families: list[Metric] = []
    mtimes = GaugeMetricFamily(
        "node_textfile_mtime_seconds",
        "Unixtime mtime of textfiles successfully read.",
        labels=["file"],
    )
    for found in files:
        families.extend(found.families)
        mtimes.add_metric([found.path], found.mtime)
    if mtimes.samples:
        families.append(mtimes)
    families.append(
        GaugeMetricFamily(
            "node_textfile_scrape_error",
            "1 if there was an error opening or reading a file, 0 otherwise",
            1 if failed else 0,
        )
    )
    return families


@implementer(IMetricsSource)
class TextfileSource:
    """
    The textfile collector. The metrics module calls `metrics_beside` once the other
    collectors have answered, with the names they took.
    """

    name = "textfile"

    def __init__(self, directory: Path | None, run_blocking: BlockingRunner, log: Logger) -> None:
        self._directory = directory
        self._run_blocking = run_blocking
        self._log = log

    def metrics(self) -> Deferred[list[Metric]]:
        return self.metrics_beside(frozenset())

    @property
    def reads_files(self) -> bool:
        """Whether there is a folder to read: without one, what others took matters not."""
        return self._directory is not None

    def metrics_beside(self, taken: Collection[str]) -> Deferred[list[Metric]]:
        if self._directory is None:
            # Nothing to read: on the reactor, sparing a hand-off to a thread.
            return succeed(self._read(taken))
        # In the pool: the folder may be on any file system, a slow or hung one included.
        return self._run_blocking(self._read, taken)

    def _read(self, taken: Collection[str]) -> list[Metric]:
        def collect() -> list[Metric]:
            if self._directory is None:
                return textfile_families([], failed=False)
            return textfile_families(*read_textfiles(self._directory, taken, self._log))

        return run_collectors({"textfile": collect})


def names_taken(families: Iterable[Metric]) -> set[str]:
    """Every family and sample name in `families`: what a textfile may not name."""
    return {name for f in families for name in (f.name, *(s.name for s in f.samples))}
