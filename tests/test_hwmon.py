"""Tests for /sys/class/hwmon (twistedspy/procfs/hwmon.py) and node_exporter's hwmon
families made from it (twistedspy/modules/cpu.py), against the fixture tree
tests/fixtures/sys/class/hwmon: six chips, their hwmonN entries links into
/sys/devices as on a real machine. The machine the tests run on may have no hwmon, so
node_exporter 1.5's own answer for that tree, taken once, is the ground truth
(tests/golden/hwmon-node_exporter.prom); with prometheus-node-exporter installed it is
asked again."""

from __future__ import annotations

import errno
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import ParamSpec, TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import TestCase

from tests.contexts import module_context
from tests.support import PROC, SYS, require_tool
from twistedspy.collectors import PartlyCollected
from twistedspy.modules.cpu import CpuModule, hwmon_families, read_cpu_sample
from twistedspy.procfs import hwmon
from twistedspy.procfs.hwmon import (
    HwmonReading,
    clean_name,
    parse_float,
    read_hwmon,
    split_filename,
)

P = ParamSpec("P")
T = TypeVar("T")
NODE_EXPORTER = Path(__file__).parent / "golden" / "hwmon-node_exporter.prom"


class Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def exposition(reading: HwmonReading) -> str:
    """The text prometheus_client writes for the hwmon families of `reading`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed(hwmon_families(reading)))
    return generate_latest(registry).decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, str, str]]:
    """Each node_hwmon_* sample's value, family type and HELP, by name and labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("node_hwmon_"):
            for s in family.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                found[key] = (s.value, family.type, family.documentation)
    return found


class ReaderTests(TestCase):
    def test_chip_names_come_from_the_device_then_name_then_directory(self) -> None:
        reading = read_hwmon(SYS)
        self.assertEqual(
            [(c.chip, c.chip_name) for c in reading.chips],
            [
                ("platform_coretemp_0", "coretemp"),
                ("platform_nct6775_656", "nct6798"),
                ("nvme_nvme0", "nvme"),
                ("i2c_0_0_0058", "pmbus"),
                ("hwmon4", None),  # neither a device nor a name
                ("platform_w83627hf_656", None),  # its name is in device/, not hwmon5/
            ],
        )
        self.assertEqual(reading.unreadable, ())

    def test_sensor_text_is_the_fixture_files(self) -> None:
        core = read_hwmon(SYS).chips[0]
        self.assertEqual([s.name for s in core.sensors], ["temp1", "temp2", "temp3"])
        temp1 = core.sensors[0]
        self.assertEqual(temp1.kind, "temp")
        self.assertEqual(temp1.label, "Package id 0")
        self.assertEqual(
            dict(temp1.text),
            {
                "crit": "100000",
                "crit_alarm": "0",
                "input": "45000",
                "label": "Package id 0",
                "max": "80000",
            },
        )

    def test_values_are_in_node_exporters_units(self) -> None:
        chips = {c.chip: {s.name: s for s in c.sensors} for c in read_hwmon(SYS).chips}
        core, sio, psu = (
            chips["platform_coretemp_0"],
            chips["platform_nct6775_656"],
            chips["i2c_0_0_0058"],
        )
        self.assertEqual(core["temp1"].value("input"), 45.0)  # millidegrees
        self.assertEqual(core["temp3"].value("crit_alarm"), 0.001)  # as node_exporter
        self.assertEqual(sio["in0"].value("input"), 1.048)  # millivolts
        self.assertEqual(sio["fan1"].value("input"), 1105.0)  # RPM as it is
        self.assertEqual(sio["fan2"].value("alarm"), 1.0)
        self.assertEqual(sio["temp1"].value("type"), 4.0)
        self.assertEqual(psu["curr1"].value("input"), 1.375)  # milliamperes
        self.assertEqual(psu["power1"].value("input"), 16.5)  # microwatts
        self.assertEqual(psu["power1"].value("average_interval"), 1.0)  # milliseconds
        self.assertEqual(psu["energy1"].value("input"), 123.456789)  # microjoules

    def test_sensors_under_device_are_read_for_an_old_driver(self) -> None:
        (old,) = (c for c in read_hwmon(SYS).chips if c.chip == "platform_w83627hf_656")
        self.assertEqual(
            {s.name: dict(s.text) for s in old.sensors},
            {
                "beep_enable0": {"": "1"},
                "cpu0": {"vid": "1350"},
                "fan1": {"div": "2", "input": "3000"},
                "in0": {"input": "1232"},
                "temp1": {"input": "35000"},
                "vrm0": {"": "90"},
            },
        )

    def test_labels_keep_their_text_and_invalid_utf8_becomes_one_replacement(self) -> None:
        chips = {c.chip: {s.name: s for s in c.sensors} for c in read_hwmon(SYS).chips}
        self.assertEqual(
            chips["platform_nct6775_656"]["temp3"].label,
            'AUXTIN0 "front" \\ panel\nsecond line',
        )
        self.assertEqual(chips["i2c_0_0_0058"]["in1"].label, "vin\ufffd")

    def test_a_file_the_driver_cannot_answer_is_left_out(self) -> None:
        """EIO, ENODATA, EAGAIN: the sensor keeps its other files; nothing fails."""
        real = hwmon._read_value
        failing = {"temp1_input": errno.EIO, "temp2_max": errno.ENODATA, "fan1_input": 11}

        def flaky(path: str) -> str:
            code = failing.get(Path(path).name)
            if code is not None:
                raise OSError(code, os.strerror(code), path)
            return real(path)

        self.patch(hwmon, "_read_value", flaky)
        reading = read_hwmon(SYS)
        self.assertEqual(reading.unreadable, ())
        core = {s.name: s for s in reading.chips[0].sensors}
        self.assertNotIn("input", core["temp1"].text)
        self.assertEqual(core["temp1"].text["max"], "80000")
        self.assertNotIn("max", core["temp2"].text)
        text = exposition(reading)
        self.assertNotIn(
            'node_hwmon_temp_celsius{chip="platform_coretemp_0",sensor="temp1"}', text
        )
        self.assertIn('node_hwmon_temp_celsius{chip="platform_coretemp_0",sensor="temp2"}', text)

    def test_a_real_read_error_is_left_out_too(self) -> None:
        """A directory where a sensor file should be: read(2) fails with EISDIR."""
        root = Path(self.mktemp())
        chip = root / "class" / "hwmon" / "hwmon0"
        (chip / "temp1_input").mkdir(parents=True)
        (chip / "temp2_input").write_text("30000\n")
        (chip / "name").write_text("acpitz\n")
        (found,) = read_hwmon(str(root)).chips
        self.assertEqual(
            [(s.name, dict(s.text)) for s in found.sensors], [("temp2", {"input": "30000"})]
        )

    def test_entries_that_are_not_chips_are_skipped(self) -> None:
        root = Path(self.mktemp())
        base = root / "class" / "hwmon"
        base.mkdir(parents=True)
        (base / "hwmon0").symlink_to("../../devices/gone/hwmon0")  # a device removed
        (base / "README").write_text("not a chip\n")
        self.assertEqual(read_hwmon(str(root)), HwmonReading(()))

    def test_no_hwmon_directory_is_an_error_for_the_collector(self) -> None:
        with self.assertRaises(FileNotFoundError):
            read_hwmon(self.mktemp())

    def test_a_chip_that_cannot_be_listed_is_named_and_the_others_read(self) -> None:
        real = hwmon.read_chip

        def vanishing(directory: str) -> hwmon.Chip:
            if directory.endswith("hwmon1"):
                raise FileNotFoundError(directory)
            return real(directory)

        self.patch(hwmon, "read_chip", vanishing)
        reading = read_hwmon(SYS)
        self.assertEqual(reading.unreadable, ("hwmon1",))
        self.assertEqual(len(reading.chips), 5)
        with self.assertRaises(PartlyCollected) as raised:
            hwmon_families(reading)
        names = {f.name for f in raised.exception.families}
        self.assertIn("node_hwmon_temp_celsius", names)


class ParsingTests(TestCase):
    def test_split_filename_as_node_exporter(self) -> None:
        self.assertEqual(split_filename("temp1_crit_alarm"), ("temp", 1, "crit_alarm"))
        self.assertEqual(split_filename("pwm1"), ("pwm", 1, ""))
        self.assertEqual(split_filename("beep_enable"), ("beep_enable", 0, ""))
        self.assertEqual(split_filename("power_state"), ("power_state", 0, ""))
        self.assertEqual(split_filename("temp01_input"), ("temp", 1, "input"))
        self.assertIsNone(split_filename("temp99999999999999999999_input"))
        self.assertIsNone(split_filename("1abc"))

    def test_clean_name(self) -> None:
        self.assertEqual(clean_name("coretemp\n"), "coretemp")
        self.assertEqual(clean_name("0000:00:18.3"), "0000:00:18_3")
        self.assertEqual(clean_name('"x" Y-z'), "x__y_z")

    def test_parse_float_refuses_what_go_refuses(self) -> None:
        self.assertEqual(parse_float("-273150"), -273150.0)
        self.assertEqual(parse_float("1e3"), 1000.0)
        for text in (" 45000", "45000 ", "1_000", "", "abc", "1e400"):
            self.assertIsNone(parse_float(text), text)


class FamiliesTests(TestCase):
    def test_families_equal_node_exporters_for_the_fixture(self) -> None:
        """Names, types, HELP, labels and values: node_exporter 1.5 on the same tree."""
        self.assertEqual(samples(exposition(read_hwmon(SYS))), samples(NODE_EXPORTER.read_text()))

    def test_exposition_lines(self) -> None:
        text = exposition(read_hwmon(SYS))
        for line in (
            "# TYPE node_hwmon_temp_celsius gauge",
            "# HELP node_hwmon_temp_celsius Hardware monitor for temperature (input)",
            'node_hwmon_temp_celsius{chip="platform_coretemp_0",sensor="temp1"} 45.0',
            'node_hwmon_temp_crit_celsius{chip="platform_coretemp_0",sensor="temp1"} 100.0',
            'node_hwmon_temp_max_celsius{chip="platform_coretemp_0",sensor="temp1"} 80.0',
            'node_hwmon_temp_crit_alarm_celsius{chip="platform_coretemp_0",sensor="temp3"} 0.001',
            'node_hwmon_chip_names{chip="platform_coretemp_0",chip_name="coretemp"} 1.0',
            'node_hwmon_sensor_label{chip="platform_coretemp_0",label="Package id 0",'
            'sensor="temp1"} 1.0',
            'node_hwmon_sensor_label{chip="platform_nct6775_656",'
            'label="AUXTIN0 \\"front\\" \\\\ panel\\nsecond line",sensor="temp3"} 1.0',
            'node_hwmon_in_volts{chip="platform_nct6775_656",sensor="in0"} 1.048',
            'node_hwmon_fan_rpm{chip="platform_nct6775_656",sensor="fan1"} 1105.0',
            'node_hwmon_power_watt{chip="i2c_0_0_0058",sensor="power1"} 16.5',
            'node_hwmon_curr_amps{chip="i2c_0_0_0058",sensor="curr1"} 1.375',
            "# TYPE node_hwmon_energy_joule_total counter",
            'node_hwmon_energy_joule_total{chip="i2c_0_0_0058",sensor="energy1"} 123.456789',
            'node_hwmon_temp_celsius{chip="hwmon4",sensor="temp1"} 27.8',
        ):
            self.assertIn(line + "\n", text)
        # hwmon4's freq1_* are node_exporter 1.6's, not 1.5's
        self.assertNotIn("freq", text)

    def test_node_exporter_says_the_same_now(self) -> None:
        """The stored answer is still what the installed node_exporter gives."""
        exporter = require_tool("prometheus-node-exporter")
        from tests.test_prometheus import free_port

        port = free_port()
        process = subprocess.Popen(
            [
                exporter,
                f"--web.listen-address=127.0.0.1:{port}",
                f"--path.sysfs={SYS}",
                "--collector.disable-defaults",
                "--collector.hwmon",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(process.wait)
        self.addCleanup(process.terminate)
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    theirs = r.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.assertEqual(samples(theirs), samples(NODE_EXPORTER.read_text()))


class CpuModuleTests(TestCase):
    """The cpu module serves the hwmon collector beside its own."""

    def scrape_success(self, found: list[Metric]) -> dict[str, float]:
        (success,) = (f for f in found if f.name == "node_scrape_collector_success")
        return {s.labels["collector"]: s.value for s in success.samples}

    def test_without_hwmon_the_collector_fails_and_has_no_families(self) -> None:
        """node_exporter 1.5 on a machine without /sys/class/hwmon: success 0, no series."""
        cpu = CpuModule(module_context(), lambda: read_cpu_sample(PROC), PROC, self.mktemp())
        found = cpu.metrics()
        assert isinstance(found, list)  # nothing to read: no thread
        self.assertEqual([f.name for f in found if f.name.startswith("node_hwmon_")], [])
        self.assertEqual(self.scrape_success(found)["hwmon"], 0)
        self.assertEqual(self.scrape_success(found)["cpu"], 1)

    async def test_with_hwmon_the_chips_are_read_in_a_thread(self) -> None:
        ran: list[str] = []

        def blocking(f: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
            ran.append(getattr(f, "__name__", ""))
            return succeed(f(*args, **kwargs))

        context = replace(module_context(), run_blocking=blocking)
        cpu = CpuModule(context, lambda: read_cpu_sample(PROC), PROC, SYS)
        answer = cpu.metrics()
        assert isinstance(answer, Deferred)
        found = await answer
        self.assertEqual(ran, ["run_collectors"])
        self.assertIn("node_hwmon_temp_celsius", [f.name for f in found])
        self.assertEqual(
            self.scrape_success(found),
            dict.fromkeys(("cpu", "loadavg", "stat", "interrupts", "schedstat", "hwmon"), 1),
        )
