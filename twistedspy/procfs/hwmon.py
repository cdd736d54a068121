# -*- test-case-name: tests.test_exporter_readers -*-
"""/sys/class/hwmon/hwmonN/ (Documentation/hwmon/sysfs-interface.rst): each hardware
monitoring chip's sensors, read as node_exporter 1.5's hwmon collector reads them
(collector/hwmon_linux.go), so that its `chip` and `sensor` labels and its values come
out the same.

The traps it shares with node_exporter: a sensor file the driver cannot answer now
(EIO, ENODATA, EAGAIN from a chip that is asleep or gone) is left out, not an error;
an old driver keeps its sensor files in the `device` directory, not in hwmonN; a chip
may have no `name` file, or neither a name nor a device. Reading a sensor may talk to
the hardware (an I2C bus, an NVMe drive), so callers keep this off the reactor.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from twistedspy.procfs import SYS, read_bytes

#: node_exporter's hwmonSensorTypes as of 1.5: the file name prefixes it reads (1.6
#: added `freq`)
SENSOR_TYPES: Final = frozenset(
    ("vrm", "beep_enable", "update_interval", "in", "cpu", "fan", "pwm", "temp", "curr",
     "power", "energy", "humidity", "intrusion")
)  # fmt: skip
#: <type><number>_<property>, as node_exporter splits a file name (greedy type: a file
#: named `power_state` is type `power_state`, not `power`)
_FILENAME: Final = re.compile(r"(?P<type>[^0-9]+)(?P<id>[0-9]*)?(_(?P<property>.+))?")
_INVALID: Final = re.compile(r"[^a-z0-9:_]")
#: Go's strconv.ParseFloat, for what a sysfs attribute may hold: no blanks around the
#: number, no `_` between digits (Python's float() accepts both)
_GO_FLOAT: Final = re.compile(
    r"[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE
)
#: one read(2) of this many bytes, as node_exporter's sysReadFile: a driver that answers
#: EAGAIN is asked once, not polled
_READ_SIZE: Final = 128
_INT64_MAX: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Sensor:
    """
    One sensor's files: `text` by property (`input`, `max`, `crit_alarm`, `label`; ``""``
    for a file with none, such as `pwm1` or `vrm`), each file's text with its newlines
    trimmed. A file that could not be read is absent.
    """

    name: str
    kind: str
    text: Mapping[str, str]

    @property
    def label(self) -> str | None:
        return self.text.get("label")

    def value(self, prop: str) -> float | None:
        """The property in SI units, as node_exporter scales it; None if no number."""
        return si_value(self.kind, prop, self.text[prop])


@dataclass(frozen=True, slots=True)
class Chip:
    """
    One hwmonN directory. `chip` is node_exporter's stable name for it (from the device
    it belongs to, else its `name`, else the directory); `chip_name` is the cleaned
    `name` file, None without one.
    """

    chip: str
    chip_name: str | None
    sensors: tuple[Sensor, ...]


@dataclass(frozen=True, slots=True)
class HwmonReading:
    """Every chip read, in directory order; `unreadable`: hwmonN directories that failed."""

    chips: tuple[Chip, ...]
    unreadable: tuple[str, ...] = ()


def clean_name(name: str) -> str:
    """node_exporter's cleanMetricName: lower case, `[a-z0-9:_]` only, no `_` at the ends."""
    return _INVALID.sub("_", name.lower()).strip("_")


def split_filename(filename: str) -> tuple[str, int, str] | None:
    """A sensor file name as type, number (0 when there is none) and property."""
    match = _FILENAME.fullmatch(filename)
    if match is None:
        return None
    number = int(match["id"]) if match["id"] else 0
    if number > _INT64_MAX:  # Go's Atoi fails: node_exporter skips the file
        return None
    return match["type"], number, match["property"] or ""


def parse_float(text: str) -> float | None:
    """Go's ParseFloat on an attribute's text: None where it fails (out of range too)."""
    if _GO_FLOAT.fullmatch(text) is None:
        return None
    value = float(text)
    if value in (float("inf"), float("-inf")) and "inf" not in text.lower():
        return None
    return value


def si_value(kind: str, prop: str, text: str) -> float | None:
    """
    An attribute in node_exporter's units: millidegrees, millivolts, milliamperes and
    milliseconds by 1000; microwatts, microjoules, power accuracy and humidity by a
    million; fan speeds, PWM duty, alarms and the rest as they are.
    """
    if kind == "beep_enable":
        return 1.0 if text == "1" else 0.0
    value = parse_float(text)
    if value is None:
        return None
    if prop in ("fault", "alarm", "beep") or kind == "vrm":
        return value
    if kind in ("in", "cpu", "curr", "update_interval") or (kind == "temp" and prop != "type"):
        return value * 0.001
    if kind == "power" and prop in ("average_interval", "average_interval_min",
                                    "average_interval_max"):  # fmt: skip
        return value * 0.001
    if kind in ("energy", "power", "humidity"):
        return value / 1000000.0
    return value


def _read_value(path: str) -> str:
    """One read(2) of a sensor file, its newlines trimmed; OSError if the driver fails."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, _READ_SIZE)
    finally:
        os.close(fd)
    return valid_utf8(data).strip("\n")


def valid_utf8(data: bytes) -> str:
    """Go's strings.ToValidUTF8(s, "\\uFFFD"): each run of invalid bytes becomes one U+FFFD."""
    return re.sub("[\udc80-\udcff]+", "\ufffd", data.decode("utf-8", "surrogateescape"))


def _collect(directory: str, data: dict[str, dict[str, str]]) -> None:
    """Every sensor file of `directory` into `data` (sensor, then property)."""
    for filename in sorted(os.listdir(directory)):  # noqa: PTH208 - plain strings
        split = split_filename(filename)
        if split is None or split[0] not in SENSOR_TYPES:
            continue
        kind, number, prop = split
        try:
            text = _read_value(f"{directory}/{filename}")
        except OSError:  # EIO, ENODATA, EAGAIN; EISDIR for hwmonN/power/
            continue
        data.setdefault(f"{kind}{number}", {})[prop] = text


def _chip(directory: str) -> str:
    """node_exporter's hwmonName: the device's bus and name, else `name`, else hwmonN."""
    try:
        device = Path(directory, "device").resolve(strict=True)
    except OSError:
        pass
    else:
        bus, name = clean_name(device.parent.name), clean_name(device.name)
        if bus and name:
            return f"{bus}_{name}"
        if name:
            return name
    chip_name = _chip_name(directory)
    if chip_name:
        return chip_name
    name = clean_name(Path(directory).resolve(strict=True).name)
    if not name:
        raise ValueError(f"no name for {directory}")
    return name


def _chip_name(directory: str) -> str | None:
    try:
        text = read_bytes(f"{directory}/name").decode("utf-8", "surrogateescape")
    except OSError:
        return None
    return clean_name(text) or None


def read_chip(directory: str) -> Chip:
    """One hwmonN directory; OSError if it cannot be listed, as node_exporter fails it."""
    chip = _chip(directory)
    data: dict[str, dict[str, str]] = {}
    _collect(directory, data)
    if Path(directory, "device").exists():
        _collect(f"{directory}/device", data)
    sensors = []
    for name, text in sorted(data.items()):
        split = split_filename(name)
        assert split is not None  # made by _collect from a name that split
        sensors.append(Sensor(name, split[0], text))
    return Chip(chip, _chip_name(directory), tuple(sensors))


def read_hwmon(sys: str = SYS) -> HwmonReading:
    """
    Every chip under /sys/class/hwmon. FileNotFoundError when the directory is missing
    (a machine without hwmon: node_exporter then reports its collector as failed, with
    no families). Entries that are not directories, or links to nothing, are skipped; a
    chip that cannot be read is named in `unreadable` and the others are still read.
    """
    base = f"{sys}/class/hwmon"
    chips = []
    unreadable = []
    for entry in sorted(os.listdir(base)):  # noqa: PTH208 - plain strings, as read_bytes
        directory = f"{base}/{entry}"
        if not Path(directory).is_dir():
            continue
        try:
            chips.append(read_chip(directory))
        except (OSError, ValueError):
            unreadable.append(entry)
    return HwmonReading(tuple(chips), tuple(unreadable))
