# -*- test-case-name: tests.test_network -*-
"""The `network` module: each interface's counters from /proc/net/dev, and rates; and
for /metrics, node_exporter's netdev, netclass, arp and softnet families.

/proc/net/dev is read through twistedspy/procfs/netdev.py (psutil has no collision
counter). Rates come from the previous sample, kept between requests (the first is taken
when the module is built), so a request never sleeps to measure. The module is also a
Service: while the server runs, its sampler (twistedspy/history.py) reads /proc/net/dev
every five seconds, on the reactor (a ~25 µs read of kernel memory, like cpu.py's), for
the rate sparklines; /metrics reads it on the reactor too.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from twisted.internet.defer import Deferred
from twisted.plugin import IPlugin
from zope.interface import implementer

from twistedspy.collectors import run_collectors
from twistedspy.context import ModuleContext
from twistedspy.history import Recorder, SampledModule, Sampler, column
from twistedspy.inflight import SharedCollection
from twistedspy.interfaces import (
    IGlance,
    IInfoModule,
    IMetricsSource,
    IModuleFactory,
    IReactorSafe,
)
from twistedspy.procfs import PROC
from twistedspy.procfs.arp import read_arp
from twistedspy.procfs.netclass import NetClass, read_netclass
from twistedspy.procfs.netdev import InterfaceCounters, read_net_dev
from twistedspy.procfs.softnet import Softnet, read_softnet
from twistedspy.query import Query
from twistedspy.report import Cell, Column, Page, Report, Series, Table


@dataclass(frozen=True, slots=True)
class NetworkSample:
    #: a monotonic clock's seconds
    taken_at: float
    interfaces: tuple[InterfaceCounters, ...]


NetworkSource = Callable[[], NetworkSample]


def read_network_sample(proc: str = PROC) -> NetworkSample:
    return NetworkSample(time.monotonic(), read_net_dev(proc))


#: the rates first: they are what a person looks at, and they stay in view at 1280 px
COLUMNS = (
    Column("Interface"),
    Column("Receiving (bytes/s)", "rate"),
    Column("Sending (bytes/s)", "rate"),
    Column("Received", "bytes"),
    Column("Packets in", "int"),
    Column("Errors in", "int"),
    Column("Drops in", "int"),
    Column("Sent", "bytes"),
    Column("Packets out", "int"),
    Column("Errors out", "int"),
    Column("Drops out", "int"),
    Column("Collisions", "int"),
)


def _rate(now: int, before: int | None, seconds: float | None) -> float | None:
    if before is None or seconds is None or seconds <= 0 or now < before:
        return None  # no earlier sample, or the counter was reset
    return round((now - before) / seconds, 1)


def network_rows(sample: NetworkSample, previous: NetworkSample | None) -> list[tuple[Cell, ...]]:
    seconds = None if previous is None else sample.taken_at - previous.taken_at
    earlier = {} if previous is None else {i.name: i for i in previous.interfaces}
    rows: list[tuple[Cell, ...]] = []
    for i in sample.interfaces:
        e = earlier.get(i.name)
        rows.append(
            (
                i.name,
                _rate(i.rx_bytes, e.rx_bytes if e else None, seconds),
                _rate(i.tx_bytes, e.tx_bytes if e else None, seconds),
                i.rx_bytes,
                i.rx_packets,
                i.rx_errors,
                i.rx_drops,
                i.tx_bytes,
                i.tx_packets,
                i.tx_errors,
                i.tx_drops,
                i.collisions,
            )
        )
    return rows


#: where each quantity sits in a network history point
RECEIVED, SENT = range(2)


def traffic_point(before: NetworkSample | None, after: NetworkSample) -> array[float]:
    """
    Bytes per second received and sent by every interface but loopback since the
    sample before; NaN without one.
    """
    seconds = 0.0 if before is None else after.taken_at - before.taken_at
    if before is None or seconds <= 0:
        return array("d", [math.nan, math.nan])
    earlier = {i.name: i for i in before.interfaces}
    rx = tx = 0
    for i in after.interfaces:
        e = earlier.get(i.name)
        if i.name == "lo" or e is None:
            continue
        rx += max(0, i.rx_bytes - e.rx_bytes)  # a reset counter counts as no traffic
        tx += max(0, i.tx_bytes - e.tx_bytes)
    return array("d", [round(rx / seconds, 1), round(tx / seconds, 1)])


def traffic_history(points: Sequence[array[float]], step: float) -> list[Series]:
    """The sparklines of the ring of traffic points."""
    received, sent = column(points, RECEIVED), column(points, SENT)
    return [
        Series("Received, all interfaces but lo (bytes/s)", "bytes", received, step),
        Series("Sent, all interfaces but lo (bytes/s)", "bytes", sent, step),
    ]


#: node_exporter's netdev names, and the counter each comes from
_NETDEV_COUNTERS: Final = (
    ("receive_bytes", "rx_bytes"),
    ("receive_packets", "rx_packets"),
    ("receive_errs", "rx_errors"),
    ("receive_drop", "rx_drops"),
    ("receive_fifo", "rx_fifo"),
    ("receive_frame", "rx_frame"),
    ("receive_compressed", "rx_compressed"),
    ("receive_multicast", "rx_multicast"),
    ("transmit_bytes", "tx_bytes"),
    ("transmit_packets", "tx_packets"),
    ("transmit_errs", "tx_errors"),
    ("transmit_drop", "tx_drops"),
    ("transmit_colls", "collisions"),
    ("transmit_fifo", "tx_fifo"),
    ("transmit_carrier", "tx_carrier"),
    ("transmit_compressed", "tx_compressed"),
)


def network_families(interfaces: Sequence[InterfaceCounters]) -> list[Metric]:
    """/proc/net/dev as node_exporter's netdev collector names it."""
    families: list[Metric] = []
    for name, counter in _NETDEV_COUNTERS:
        family = CounterMetricFamily(
            f"node_network_{name}", f"Network device statistic {name}.", labels=["device"]
        )
        for interface in interfaces:
            family.add_metric([interface.name], getattr(interface, counter))
        families.append(family)
    return families


#: node_exporter's netclass gauges: its name for each /sys/class/net attribute
_NETCLASS_GAUGES: Final = (
    ("address_assign_type", "addr_assign_type"),
    ("carrier", "carrier"),
    ("device_id", "dev_id"),
    ("dormant", "dormant"),
    ("flags", "flags"),
    ("iface_id", "ifindex"),
    ("iface_link", "iflink"),
    ("iface_link_mode", "link_mode"),
    ("mtu_bytes", "mtu"),
    ("name_assign_type", "name_assign_type"),
    ("net_dev_group", "netdev_group"),
    ("protocol_type", "type"),
    ("transmit_queue_length", "tx_queue_len"),
)
_NETCLASS_COUNTERS: Final = (
    ("carrier_changes_total", "carrier_changes"),
    ("carrier_up_changes_total", "carrier_up_count"),
    ("carrier_down_changes_total", "carrier_down_count"),
)
#: node_network_info's labels after `device`: /sys/class/net text attributes
_INFO_LABELS: Final = ("address", "broadcast", "duplex", "ifalias", "operstate")


def netclass_families(interfaces: Sequence[NetClass]) -> list[Metric]:
    """
    /sys/class/net as node_exporter's netclass collector: an attribute a device does not
    give is no series for it; speed (Mbit/s, -1 when unknown) is turned into bytes/s
    as node_exporter turns it, -1 into -125000.
    """
    up = GaugeMetricFamily(
        "node_network_up", "Value is 1 if operstate is 'up', 0 otherwise.", labels=["device"]
    )
    info = GaugeMetricFamily(
        "node_network_info",
        "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
        labels=["device", *_INFO_LABELS],
    )
    speed = GaugeMetricFamily(
        "node_network_speed_bytes", "Network device property: speed_bytes", labels=["device"]
    )
    gauges = {
        name: GaugeMetricFamily(
            f"node_network_{name}", f"Network device property: {name}", labels=["device"]
        )
        for name, _ in _NETCLASS_GAUGES
    }
    counters = {
        name: CounterMetricFamily(
            f"node_network_{name}", f"Network device property: {name}", labels=["device"]
        )
        for name, _ in _NETCLASS_COUNTERS
    }
    for i in interfaces:
        operstate = i.text.get("operstate", "")
        up.add_metric([i.device], 1 if operstate == "up" else 0)
        info.add_metric([i.device, *(i.text.get(k, "") for k in _INFO_LABELS)], 1)
        for name, attribute in _NETCLASS_GAUGES:
            if attribute in i.numbers:
                gauges[name].add_metric([i.device], i.numbers[attribute])
        for name, attribute in _NETCLASS_COUNTERS:
            if attribute in i.numbers:
                counters[name].add_metric([i.device], i.numbers[attribute])
        if "speed" in i.numbers:
            speed.add_metric([i.device], i.numbers["speed"] * 1000 * 1000 // 8)
    return [up, info, speed, *gauges.values(), *counters.values()]


def arp_families(entries: Mapping[str, int]) -> list[Metric]:
    """/proc/net/arp as node_exporter's arp collector."""
    family = GaugeMetricFamily("node_arp_entries", "ARP entries by device", labels=["device"])
    for device, count in sorted(entries.items()):
        family.add_metric([device], count)
    return [family]


def softnet_families(cpus: Sequence[Softnet]) -> list[Metric]:
    """/proc/net/softnet_stat as node_exporter 1.5's softnet collector."""
    processed = CounterMetricFamily(
        "node_softnet_processed", "Number of processed packets", labels=["cpu"]
    )
    dropped = CounterMetricFamily(
        "node_softnet_dropped", "Number of dropped packets", labels=["cpu"]
    )
    squeezed = CounterMetricFamily(
        "node_softnet_times_squeezed",
        "Number of times processing packets ran out of quota",
        labels=["cpu"],
    )
    for cpu in cpus:
        processed.add_metric([cpu.cpu], cpu.processed)
        dropped.add_metric([cpu.cpu], cpu.dropped)
        squeezed.add_metric([cpu.cpu], cpu.time_squeezed)
    return [processed, dropped, squeezed]


GLANCE_COLUMNS: Final = (
    Column("Receiving", "rate"),
    Column("Sending", "rate"),
    Column("Over (s)", "float"),
)


# Reactor-safe: returns a Deferred; the file read goes to run_blocking.
@implementer(IInfoModule, IMetricsSource, IGlance, IReactorSafe)
class NetworkModule(SampledModule):
    name = "network"
    title = "Network"
    description = "Each interface: traffic, errors, drops, collisions and current rates."

    def __init__(
        self,
        context: ModuleContext,
        source: NetworkSource = read_network_sample,
        history_source: NetworkSource = read_network_sample,
        netclass: Callable[[], Sequence[NetClass]] = read_netclass,
        proc: str = PROC,
    ) -> None:
        self._source = source
        self._netclass = netclass
        self._proc = proc
        self.sampler: Sampler[array[float]] = Sampler(
            Recorder(history_source, traffic_point), context.reactor, context.log
        )
        self._previous: NetworkSample | None = None
        # Each run pairs its sample with the one before, so every request sharing a run
        # measures over the same interval.
        self._read: SharedCollection[tuple[NetworkSample | None, NetworkSample]] = (
            SharedCollection(lambda: context.run_blocking(source).addCallback(self._pair))
        )
        #: fires once the first sample, the base of the first request's rates, is in
        self.primed: Deferred[None] = self._read().addCallbacks(
            lambda _: None, lambda f: context.log.failure("first network sample failed", f)
        )

    def _pair(self, sample: NetworkSample) -> tuple[NetworkSample | None, NetworkSample]:
        previous, self._previous = self._previous, sample
        return previous, sample

    def collect(self, query: Query) -> Deferred[Page]:
        return self._read().addCallback(self._report)

    def glance(self) -> Sequence[Table]:
        """Every interface but loopback, over the sampler's last interval."""
        points = [p for p in self.sampler.samples if not math.isnan(p[RECEIVED])]
        if not points:
            return []
        row = (points[-1][RECEIVED], points[-1][SENT], self.sampler.interval)
        return [Table("Network, all interfaces but lo", GLANCE_COLUMNS, (row,))]

    def metrics(self) -> list[Metric]:
        # On the reactor, as the sampler reads it (module docstring); not through the
        # page's run, which would move the base of the page's rates. /sys/class/net is
        # kernel memory too: about 20 small reads an interface.
        return run_collectors(
            {
                "netdev": lambda: network_families(self._source().interfaces),
                "netclass": lambda: netclass_families(self._netclass()),
                "arp": lambda: arp_families(read_arp(self._proc)),
                "softnet": lambda: softnet_families(read_softnet(self._proc)),
            }
        )

    def _report(self, pair: tuple[NetworkSample | None, NetworkSample]) -> Page:
        previous, sample = pair
        interval = (
            ""
            if previous is None
            else f" over the last {sample.taken_at - previous.taken_at:.1f} s"
        )
        return Report(
            title=self.title,
            tables=(Table("Interfaces", COLUMNS, network_rows(sample, previous)),),
            notes=(f"Counters since boot; rates{interval}.",),
            series=traffic_history(self.sampler.samples, self.sampler.interval),
        )


@implementer(IPlugin, IModuleFactory)
class NetworkFactory:
    name = "network"

    def build(self, context: ModuleContext) -> IInfoModule:
        return NetworkModule(context)
