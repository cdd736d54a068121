# -*- test-case-name: tests.test_diskio -*-
"""/proc/diskstats (the kernel's Documentation/admin-guide/iostats.rst): each block
device's I/O counters since boot; and udev's record of a disk, for its model and serial.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from twistedspy.procfs import PROC, read_text

#: the bytes in a sector of /proc/diskstats, whatever the device's own sector size
#: (iostats.rst: "the kernel always uses 512-byte sectors" in these counters)
SECTOR_BYTES: Final = 512
#: udev's database of devices (udev(7)); `b<major>:<minor>` for a block device
UDEV_DATA: Final = "/run/udev/data"


@dataclass(frozen=True, slots=True)
class DiskCounters:
    """One line of /proc/diskstats; times in milliseconds (iostats.rst, fields 1-17)."""

    major: int
    minor: int
    name: str
    reads: int
    reads_merged: int
    read_sectors: int
    read_ms: int
    writes: int
    writes_merged: int
    written_sectors: int
    write_ms: int
    in_flight: int
    io_ms: int
    weighted_io_ms: int
    #: fields 12-15 (Linux 4.18) and 16-17 (5.5); None on kernels without them
    discards: int | None = None
    discards_merged: int | None = None
    discarded_sectors: int | None = None
    discard_ms: int | None = None
    flushes: int | None = None
    flush_ms: int | None = None

    @property
    def idle(self) -> bool:
        """No I/O at all since boot (what `iostat -z` leaves out)."""
        return self.reads == 0 and self.writes == 0 and self.in_flight == 0


def parse_diskstats(text: str) -> tuple[DiskCounters, ...]:
    """
    Parse /proc/diskstats: `major minor name` and 11, 15 or 17 counters a line (more
    fields on a newer kernel are ignored). A device name is the kernel's, white space
    impossible (block/genhd.c), but any other byte is kept as it comes.
    """
    disks = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 14:
            continue
        counters = [int(v) for v in fields[3:20]]
        optional: list[int | None] = [*counters[11:], *([None] * (17 - len(counters)))]
        disks.append(
            DiskCounters(int(fields[0]), int(fields[1]), fields[2], *counters[:11], *optional)
        )
    return tuple(disks)


def read_diskstats(proc: str = PROC) -> tuple[DiskCounters, ...]:
    return parse_diskstats(read_text(f"{proc}/diskstats"))


#: a partition's name: its disk's name, then digits, or `p` and digits after a name that
#: ends in a digit (nvme0n1p1, mmcblk0p2: block/partitions/core.c, bdev_add_partition)
_PARTITION = re.compile(r"(?P<disk>.+?)(?:(?<=\d)p|(?<!\d))\d+")


def parent_disk(name: str, names: set[str]) -> str | None:
    """The disk among `names` that partition `name` belongs to; None for a whole disk."""
    found = _PARTITION.fullmatch(name)
    if found is None or found["disk"] not in names:
        return None
    return found["disk"]


#: the ATA properties udev records of an ATA disk (its ata_id), that node_exporter exports
ATA_PROPERTIES: Final = (
    "ID_ATA_WRITE_CACHE",
    "ID_ATA_WRITE_CACHE_ENABLED",
    "ID_ATA_ROTATION_RATE_RPM",
)


@dataclass(frozen=True, slots=True)
class UdevDisk:
    """What udev recorded of a disk: node_exporter's node_disk_info labels, and for an
    ATA disk the ATA_PROPERTIES it has, as numbers."""

    path: str = ""
    wwn: str = ""
    model: str = ""
    serial: str = ""
    revision: str = ""
    ata: Mapping[str, float] = field(default_factory=dict)


def parse_udev_record(text: str) -> UdevDisk:
    """Parse a udev database record: `E:KEY=value` lines are the device's properties."""
    properties = {}
    for line in text.splitlines():
        key, equals, value = line.removeprefix("E:").partition("=")
        if line.startswith("E:") and equals:
            properties[key] = value
    return UdevDisk(
        path=properties.get("ID_PATH", ""),
        wwn=properties.get("ID_WWN", ""),
        model=properties.get("ID_MODEL", ""),
        serial=properties.get("ID_SERIAL_SHORT", ""),
        revision=properties.get("ID_REVISION", ""),
        ata=_ata_figures(properties) if properties.get("ID_ATA") else {},
    )


def _ata_figures(properties: Mapping[str, str]) -> dict[str, float]:
    figures = {}
    for name in ATA_PROPERTIES:
        with contextlib.suppress(KeyError, ValueError):  # absent, or not a number: left out
            figures[name] = float(properties[name])
    return figures


def read_udev_disk(major: int, minor: int, udev: str = UDEV_DATA) -> UdevDisk:
    """udev's record of a block device; empty where udev keeps none (containers)."""
    try:
        return parse_udev_record(read_text(f"{udev}/b{major}:{minor}"))
    except FileNotFoundError:
        return UdevDisk()
