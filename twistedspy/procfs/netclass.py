# -*- test-case-name: tests.test_exporter_readers -*-
"""/sys/class/net/IFACE/ (Documentation/ABI/testing/sysfs-class-net): each interface's
link state and settings, as node_exporter's netclass collector reads them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from twistedspy.procfs import SYS, read_text

#: the text attributes node_exporter puts in node_network_info's labels (and operstate)
TEXT_ATTRIBUTES: Final = ("address", "broadcast", "duplex", "ifalias", "operstate")
#: the numeric attributes (decimal, or hexadecimal with `0x`: dev_id, flags)
NUMBER_ATTRIBUTES: Final = (
    "addr_assign_type", "carrier", "carrier_changes", "carrier_down_count", "carrier_up_count",
    "dev_id", "dormant", "flags", "ifindex", "iflink", "link_mode", "mtu", "name_assign_type",
    "netdev_group", "speed", "tx_queue_len", "type",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class NetClass:
    """
    One interface's attributes. An attribute the driver does not give (reading it fails
    with EINVAL: `speed` of a link that is down, `carrier` of a device never up) is
    absent, not 0.
    """

    device: str
    text: Mapping[str, str]
    numbers: Mapping[str, int]


def _attribute(directory: int, name: str) -> str | None:
    try:
        return read_text(name, directory).rstrip("\n")
    except OSError:  # EINVAL for what the device cannot say now
        return None


def read_netclass(sys: str = SYS) -> tuple[NetClass, ...]:
    """
    Every interface under /sys/class/net, in name order; files there are not devices.
    Each attribute is opened from its device's directory, held open: the kernel then
    walks `/sys/class/net/IFACE` (a symlink into /sys/devices) once per interface, not
    once per attribute.
    """
    base = f"{sys}/class/net"
    found = []
    for device in sorted(os.listdir(base)):  # noqa: PTH208 - plain strings, as read_text takes
        try:
            directory = os.open(f"{base}/{device}", os.O_RDONLY | os.O_DIRECTORY)
        except NotADirectoryError:
            # bonding_masters, when the bonding driver is loaded, is a file, not a device
            continue
        try:
            text = {
                name: value
                for name in TEXT_ATTRIBUTES
                if (value := _attribute(directory, name)) is not None
            }
            numbers = {}
            for name in NUMBER_ATTRIBUTES:
                value = _attribute(directory, name)
                if value is not None and value.strip():
                    numbers[name] = int(value, 0)
        finally:
            os.close(directory)
        found.append(NetClass(device, text, numbers))
    return tuple(found)
