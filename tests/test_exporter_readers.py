"""Tests for the /proc and /sys readers behind node_exporter's other default collectors
(twistedspy/procfs/{kernel,vmstat,interrupts,netclass,timex}.py): each against the
fixture tree and against the live machine, with the kernel's own files and tools
(`cat`, `ip`, `adjtimex(2)` through `ctypes`) as ground truth."""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.support import FIXTURES, PROC, SYS, require_tool
from twistedspy.procfs.arp import read_arp
from twistedspy.procfs.interrupts import (
    CpuSchedule,
    Interrupt,
    parse_interrupts,
    read_interrupts,
    read_schedstat,
)
from twistedspy.procfs.kernel import (
    Conntrack,
    Entropy,
    FileHandles,
    ProcessLimits,
    parse_limit,
    read_conntrack,
    read_entropy,
    read_file_handles,
    read_own_address_space_limit,
    read_process_limits,
)
from twistedspy.procfs.netclass import read_netclass
from twistedspy.procfs.processes import ProcfsProcessSource
from twistedspy.procfs.softnet import read_softnet
from twistedspy.procfs.timex import (
    STA_NANO,
    TIME_ERROR,
    Timex,
    discipline,
    read_clock_discipline,
    read_clock_sources,
)
from twistedspy.procfs.vmstat import parse_vmstat, read_vmstat


class KernelCountersTests(TestCase):
    def test_fixture_tree(self) -> None:
        self.assertEqual(read_file_handles(PROC), FileHandles(1724, 2466290))
        self.assertEqual(read_entropy(PROC), Entropy(256, 256))
        self.assertEqual(read_process_limits(PROC), ProcessLimits(32768, 192739))
        stats = {
            "found": 15, "invalid": 2, "ignore": 0, "insert": 0, "insert_failed": 0,
            "drop": 1, "early_drop": 0, "search_restart": 3,
        }  # fmt: skip
        self.assertEqual(read_conntrack(PROC), Conntrack(17, 262144, stats))

    def test_no_conntrack_module_is_none(self) -> None:
        self.assertIsNone(read_conntrack(self.mktemp()))

    def test_limits(self) -> None:
        text = (FIXTURES / "proc" / "self" / "limits").read_text()
        self.assertEqual(parse_limit(text, "Max address space"), float(2**64 - 1))
        self.assertEqual(parse_limit(text, "Max open files"), 20000)
        with self.assertRaises(ValueError):
            parse_limit(text, "Max nothing")

    def test_live_equal_the_files(self) -> None:
        nr = Path("/proc/sys/fs/file-nr").read_text().split()
        handles = read_file_handles()
        self.assertEqual(handles.maximum, int(nr[2]))
        self.assertGreater(handles.allocated, 0)
        self.assertEqual(
            read_entropy().pool_size_bits,
            int(Path("/proc/sys/kernel/random/poolsize").read_text()),
        )
        self.assertEqual(
            read_process_limits().pid_max, int(Path("/proc/sys/kernel/pid_max").read_text())
        )
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        expected = 2**64 - 1 if soft == resource.RLIM_INFINITY else soft
        self.assertEqual(read_own_address_space_limit(), float(expected))


class VmstatTests(TestCase):
    def test_fixture_and_junk(self) -> None:
        counters = read_vmstat(PROC)
        self.assertEqual(counters["pgmajfault"], 8168)
        self.assertEqual(counters["oom_kill"], 0)
        self.assertEqual(parse_vmstat("a 1\nbroken\nb -2\nc x\n"), {"a": 1, "b": -2})

    def test_live_every_line(self) -> None:
        lines = Path("/proc/vmstat").read_text().splitlines()
        counters = read_vmstat()
        self.assertEqual(list(counters), [line.split()[0] for line in lines])


class InterruptsTests(TestCase):
    def test_numbered_and_named_lines_and_err_left_out(self) -> None:
        text = (
            "           CPU0       CPU1\n"
            "  0:         36          0   IO-APIC   2-edge      timer\n"
            " 24:          1          0  IO-APIC   5-edge      ACPI:Ged\n"
            "NMI:          0          0   Non-maskable interrupts\n"
            "ERR:          0\n"
            "MIS:          0\n"
        )
        self.assertEqual(
            parse_interrupts(text),
            (
                Interrupt("0", "IO-APIC", "2-edge timer", (36, 0)),
                Interrupt("24", "IO-APIC", "5-edge ACPI:Ged", (1, 0)),
                Interrupt("NMI", "Non-maskable interrupts", "", (0, 0)),
            ),
        )

    def test_fixture_tree(self) -> None:
        found = {i.type: i for i in read_interrupts(PROC)}
        self.assertEqual(found["LOC"].info, "Local timer interrupts")
        self.assertNotIn("ERR", found)

    def test_live_cpu_columns(self) -> None:
        cpus = len(Path("/proc/interrupts").read_text().splitlines()[0].split())
        for interrupt in read_interrupts():
            self.assertEqual(len(interrupt.counts), cpus, interrupt)

    def test_schedstat_fixture(self) -> None:
        self.assertEqual(
            read_schedstat(PROC),
            (
                CpuSchedule("0", 123456789012, 2345678901, 345678),
                CpuSchedule("1", 98765432109, 876543210, 234567),
            ),
        )

    def test_schedstat_missing_is_an_error(self) -> None:
        with self.assertRaises(FileNotFoundError):
            read_schedstat(self.mktemp())


class NetClassTests(TestCase):
    def test_fixture_tree(self) -> None:
        found = {i.device: i for i in read_netclass(SYS)}
        self.assertEqual(sorted(found), ["eth0", "ifb0", "lo"])  # bonding_masters is a file
        eth0 = found["eth0"]
        self.assertEqual(eth0.text["ifalias"], 'uplink "A"')
        self.assertEqual(eth0.numbers["flags"], 0x1003)
        self.assertEqual(eth0.numbers["speed"], 1000)
        # what a down device cannot say is absent, not 0
        self.assertNotIn("carrier", found["ifb0"].numbers)
        self.assertNotIn("speed", found["lo"].numbers)

    def test_live_equal_ip_link(self) -> None:
        ip = require_tool("ip")
        shown = subprocess.run(
            [ip, "-o", "link", "show"], check=True, capture_output=True, text=True, timeout=30
        ).stdout
        links = {}
        for line in shown.splitlines():
            name = line.split(": ")[1].split("@")[0]
            links[name] = int(line.split(" mtu ")[1].split()[0])
        found = {i.device: i.numbers["mtu"] for i in read_netclass()}
        self.assertEqual(found, links)


class TimexTests(TestCase):
    def test_units_as_node_exporter(self) -> None:
        micro = discipline(
            0, Timex(offset=-250, freq=65536 * 3, maxerror=16000, esterror=500, tick=10000)
        )
        self.assertTrue(micro.synchronised)
        self.assertEqual(micro.offset_seconds, -0.00025)
        self.assertEqual(micro.frequency_ratio, 1.000003)
        self.assertEqual(micro.maxerror_seconds, 0.016)
        self.assertEqual(micro.tick_seconds, 0.01)
        nano = discipline(TIME_ERROR, Timex(offset=-250, status=STA_NANO, jitter=2000))
        self.assertFalse(nano.synchronised)
        self.assertEqual(nano.offset_seconds, -2.5e-07)
        self.assertEqual(nano.pps_jitter_seconds, 2e-06)

    def test_struct_is_the_kernels_size(self) -> None:
        # struct timex is 208 bytes on LP64 Linux (x86_64, arm64)
        if ctypes.sizeof(ctypes.c_long) == 8:
            self.assertEqual(ctypes.sizeof(Timex), 208)

    def test_live_tick_equals_the_kernels_hz(self) -> None:
        live = read_clock_discipline()
        # adjtimex(2): `tick` is the microseconds between clock ticks, 1/USER_HZ
        self.assertEqual(live.tick_seconds, 1 / os.sysconf("SC_CLK_TCK"))
        self.assertGreaterEqual(live.maxerror_seconds, 0)

    def test_clock_sources(self) -> None:
        (fixture,) = read_clock_sources(SYS)
        self.assertEqual((fixture.available, fixture.current), (("tsc", "kvm-clock"), "tsc"))
        base = Path("/sys/devices/system/clocksource/clocksource0")
        (live, *_) = read_clock_sources()
        self.assertEqual(live.current, (base / "current_clocksource").read_text().strip())


class ArpAndSoftnetTests(TestCase):
    def test_fixture_tree(self) -> None:
        self.assertEqual(read_arp(PROC), {"eth0": 2, "br-x": 1})
        (cpu0, cpu1) = read_softnet(PROC)
        self.assertEqual((cpu0.cpu, cpu1.cpu), ("0", "1"))
        self.assertGreater(cpu1.processed, 0)

    def test_live_equal_the_files(self) -> None:
        arp = Path("/proc/net/arp").read_text().splitlines()[1:]
        self.assertEqual(sum(read_arp().values()), len(arp))
        lines = Path("/proc/net/softnet_stat").read_text().splitlines()
        self.assertEqual(len(read_softnet()), len(lines))
        self.assertEqual(read_softnet()[0].dropped, int(lines[0].split()[1], 16))


class StatOnlyScanTests(TestCase):
    def test_live_agrees_with_the_full_scan(self) -> None:
        """
        The /metrics scan (stat files only) against the page's (stat and status): same
        processes; the same owner but where the stat file says root (a
        process that is not dumpable); resident memory near VmRSS.
        """
        lean = {p.pid: p for p in ProcfsProcessSource(cmdline=False, status=False)().processes}
        full = {p.pid: p for p in ProcfsProcessSource(cmdline=False)().processes}
        both = set(lean) & set(full)
        self.assertGreater(len(both), 0.9 * len(full))
        near = 0
        for pid in both:
            a, b = lean[pid], full[pid]
            # (names are not compared: a kernel worker renames itself with its work)
            self.assertIn(a.user, (b.user, "root"), pid)
            if abs((a.rss or 0) - (b.rss or 0)) <= max(0.1 * (b.rss or 0), 1 << 20):
                near += 1
        self.assertGreater(near, 0.9 * len(both))
