# -*- test-case-name: tests.test_procfs -*-
"""/proc/net/dev (proc(5)): each network interface's counters since boot."""

from __future__ import annotations

from dataclasses import dataclass

from twistedspy.procfs import PROC, read_text


@dataclass(frozen=True, slots=True)
class InterfaceCounters:
    name: str
    rx_bytes: int
    rx_packets: int
    rx_errors: int
    rx_drops: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    tx_drops: int
    collisions: int
    # the rest of node_exporter's netdev counters, after the ones the page shows
    rx_fifo: int = 0
    rx_frame: int = 0
    rx_compressed: int = 0
    rx_multicast: int = 0
    tx_fifo: int = 0
    tx_carrier: int = 0
    tx_compressed: int = 0


def parse_net_dev(text: str) -> tuple[InterfaceCounters, ...]:
    """
    Parse /proc/net/dev: two heading lines, then `name: 16 counters`. A name may hold
    any character but '/', ':' and white space (dev_valid_name in net/core/dev.c), so
    it ends at the line's last ':'; it is right-aligned with leading blanks.
    """
    interfaces = []
    for line in text.splitlines()[2:]:
        name, colon, counters = line.rpartition(":")
        if not colon:
            continue
        c = [int(v) for v in counters.split()]
        # receive: bytes packets errs drop fifo frame compressed multicast
        # transmit: bytes packets errs drop fifo colls carrier compressed
        interfaces.append(
            InterfaceCounters(
                name=name.strip(),
                rx_bytes=c[0],
                rx_packets=c[1],
                rx_errors=c[2],
                rx_drops=c[3],
                tx_bytes=c[8],
                tx_packets=c[9],
                tx_errors=c[10],
                tx_drops=c[11],
                collisions=c[13],
                rx_fifo=c[4],
                rx_frame=c[5],
                rx_compressed=c[6],
                rx_multicast=c[7],
                tx_fifo=c[12],
                tx_carrier=c[14],
                tx_compressed=c[15],
            )
        )
    return tuple(interfaces)


def read_net_dev(proc: str = PROC) -> tuple[InterfaceCounters, ...]:
    return parse_net_dev(read_text(f"{proc}/net/dev"))
