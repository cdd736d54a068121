# -*- test-case-name: tests.test_golden,tests.test_metrics -*-
"""The `version` module: what this machine runs, as /etc/issue and /etc/os-release say;
and for /metrics, node_exporter's uname and os families.

/etc/issue is written for getty, whose backslash escapes (agetty(8), "ISSUE ESCAPES")
would show raw on a web page: they are expanded where the value is known here and
removed where it is not (a tty name means nothing over HTTP).

The uname and os families are read in a thread (/etc/os-release is a file on disk) and
then serve scrapes for IDENTITY_MAX_AGE seconds: they change with a new host name, a
kernel or an upgrade, not from one scrape to the next, and a read costs a hand-off to a
thread (docs/performance.md).
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from twisted.internet.defer import Deferred, succeed
from twisted.plugin import IPlugin
from zope.interface import implementer

import twisted
from twistedspy import __version__
from twistedspy.collectors import Families, run_collectors
from twistedspy.context import ModuleContext
from twistedspy.inflight import SharedCollection
from twistedspy.interfaces import IInfoModule, IMetricsSource, IModuleFactory
from twistedspy.procfs import PROC
from twistedspy.procfs.kernel import read_domainname
from twistedspy.procfs.stat import read_boot_time
from twistedspy.query import Query
from twistedspy.report import Column, Page, Report, Table

_ESCAPE = re.compile(r"\\(\{[^}]*\}|[A-Za-z0-9\\])?")


def parse_os_release(text: str) -> dict[str, str]:
    """`KEY=value` lines, values shell-quoted (os-release(5))."""
    values: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            words = shlex.split(raw)
        except ValueError:
            continue
        values[key.strip()] = words[0] if words else ""
    return values


def expand_issue(text: str, uname: os.uname_result, now: float) -> str:
    """/etc/issue with agetty's escapes expanded or removed, never shown raw."""
    local = time.localtime(now)
    known = {
        "s": uname.sysname,
        "n": uname.nodename,
        "r": uname.release,
        "v": uname.version,
        "m": uname.machine,
        "o": socket.getfqdn().partition(".")[2] or "(none)",
        "O": socket.getfqdn(),
        "d": time.strftime("%a %b %d %Y", local),
        "t": time.strftime("%H:%M:%S", local),
        "\\": "\\",
    }

    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        if code is None:
            return ""
        return known.get(code, "")

    expanded = _ESCAPE.sub(replace, text)
    # What is left may carry terminal control sequences: drop every control character
    # but the newline.
    return "".join(ch for ch in expanded if ch == "\n" or ch.isprintable()).strip()


@dataclass(frozen=True, slots=True)
class SystemFacts:
    issue: str
    os_release: Mapping[str, str]
    uname: os.uname_result
    boot_time: float
    now: float
    #: (name, version) of the software serving the page: part of the facts so that
    #: golden pages do not change with the Python that runs the tests
    software: tuple[tuple[str, str], ...]


def software_versions() -> tuple[tuple[str, str], ...]:
    return (
        ("twistedspy", __version__),
        ("Twisted", twisted.__version__),
        ("Python", platform.python_version()),
        ("Python implementation", f"{platform.python_implementation()} {sys.platform}"),
    )


def read_small_file(path: str) -> str:
    """
    A small text file, or "" if it cannot be read. `open`, not `pathlib.Path`: Path
    interns each part of the name, and on a path read at every scrape those interned
    names die and are interned anew each time, which makes CPython's table of interned
    strings grow to its next size in the first minutes of a long run.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return file.read()
    except OSError:
        return ""


def read_os_release() -> dict[str, str]:
    """os-release(5): /etc/os-release, or the vendor's copy when that is missing."""
    text = read_small_file("/etc/os-release") or read_small_file("/usr/lib/os-release")
    return parse_os_release(text)


def read_system(proc: str = PROC) -> SystemFacts:
    uname = os.uname()
    now = time.time()
    return SystemFacts(
        issue=expand_issue(read_small_file("/etc/issue"), uname, now),
        os_release=read_os_release(),
        uname=uname,
        boot_time=read_boot_time(proc),
        now=now,
        software=software_versions(),
    )


#: seconds the uname and os families serve scrapes before they are read again
IDENTITY_MAX_AGE: Final = 60.0


@dataclass(frozen=True, slots=True)
class Identity:
    """What /metrics says of the system: the version page's facts that are labels there."""

    uname: os.uname_result
    domainname: str
    os_release: Mapping[str, str]


def read_identity(proc: str = PROC) -> Identity:
    return Identity(os.uname(), read_domainname(proc), read_os_release())


#: node_exporter's os collector: the os-release fields it copies into labels
OS_RELEASE_LABELS: Final = (
    "build_id", "id", "id_like", "image_id", "image_version", "name", "pretty_name",
    "variant", "variant_id", "version", "version_codename", "version_id",
)  # fmt: skip


def identity_families(identity: Identity) -> list[Metric]:
    return run_collectors(
        {"uname": lambda: uname_families(identity), "os": lambda: os_families(identity.os_release)}
    )


def uname_families(identity: Identity) -> list[Metric]:
    """node_exporter's uname collector."""
    uname = identity.uname
    info = GaugeMetricFamily(
        "node_uname_info",
        "Labeled system information as provided by the uname system call.",
        labels=["domainname", "machine", "nodename", "release", "sysname", "version"],
    )
    info.add_metric(
        [identity.domainname, uname.machine, uname.nodename, uname.release, uname.sysname,
         uname.version],
        1,
    )  # fmt: skip
    return [info]


def os_families(os_release: Mapping[str, str]) -> list[Metric]:
    """node_exporter's os collector: os-release(5) fields as labels, and VERSION_ID."""
    os_info = GaugeMetricFamily(
        "node_os_info",
        "A metric with a constant '1' value labeled by os-release fields.",
        labels=list(OS_RELEASE_LABELS),
    )
    os_info.add_metric([os_release.get(k.upper(), "") for k in OS_RELEASE_LABELS], 1)
    families: list[Metric] = [os_info]
    try:
        # node_exporter: VERSION_ID as a number, when it is one ("12", "22.04")
        version = float(os_release.get("VERSION_ID", ""))
    except ValueError:
        return families
    os_version = GaugeMetricFamily(
        "node_os_version",
        "Metric containing the major.minor part of the OS version.",
        labels=["id", "id_like", "name"],
    )
    os_version.add_metric([os_release.get(k, "") for k in ("ID", "ID_LIKE", "NAME")], version)
    families.append(os_version)
    return families


def version_report(facts: SystemFacts) -> Report:
    release = facts.os_release
    system = Table(
        title="System",
        columns=["field", "value"],
        rows=[
            ["operating system", release.get("PRETTY_NAME", release.get("NAME", ""))],
            ["/etc/issue", facts.issue],
            ["kernel", f"{facts.uname.sysname} {facts.uname.release}"],
            ["kernel build", facts.uname.version],
            ["architecture", facts.uname.machine],
            ["host name", facts.uname.nodename],
        ],
    )
    uptime = Table(
        title="Uptime",
        columns=[Column("booted", "time"), Column("uptime", "seconds")],
        rows=[[facts.boot_time, round(facts.now - facts.boot_time)]],
    )
    software = Table(
        title="Software",
        columns=["name", "version"],
        rows=[list(pair) for pair in facts.software],
    )
    os_release = Table(
        title="/etc/os-release",
        columns=["key", "value"],
        rows=[[key, value] for key, value in release.items()],
    )
    return Report(title="Version", tables=[system, uptime, software, os_release])


@implementer(IInfoModule, IMetricsSource)
class VersionModule:
    name = "version"
    title = "Version"
    description = "The operating system, kernel, host name, uptime and software versions."
    #: seconds a rendered page stays true (see IInfoModule): uptime shows whole seconds
    max_age = 1.0

    def __init__(
        self,
        context: ModuleContext,
        source: Callable[[], SystemFacts],
        identity: Callable[[], Identity] = read_identity,
    ) -> None:
        self._context = context
        self._source = source
        # Not the page's facts: those expand /etc/issue, which may ask DNS (socket.getfqdn).
        self._identity: SharedCollection[list[Metric]] = SharedCollection(
            lambda: context.run_blocking(lambda: identity_families(identity()))
        )
        self._kept: tuple[float, list[Metric]] | None = None

    def collect(self, query: Query) -> Page:
        # Plain: it reads files (/etc/os-release...), so the dispatcher runs it in a thread.
        return version_report(self._source())

    def metrics(self) -> Deferred[list[Metric]]:
        now = self._context.reactor.seconds()
        if self._kept is not None and now - self._kept[0] < IDENTITY_MAX_AGE:
            return succeed(Families(self._kept[1]))  # no work done for this scrape: seconds 0
        return self._identity().addCallback(self._keep, now)

    def _keep(self, families: list[Metric], at: float) -> list[Metric]:
        self._kept = (at, families)
        return families


@implementer(IPlugin, IModuleFactory)
class VersionFactory:
    name = "version"

    def build(self, context: ModuleContext) -> IInfoModule:
        return VersionModule(context, read_system)
