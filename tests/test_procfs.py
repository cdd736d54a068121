"""Tests for twistedspy/procfs/: each reader against the fixture tree (tests/fixtures/proc,
from a real machine, anonymised), against hostile files, and against the live machine with
the kernel's own tools (`cat`, `free`, `df`, `ps`) as ground truth.

Also the layering the /proc layer exists for: every /proc and /sys path is named only
here, no module imports another, and no core file imports a module.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.support import FIXTURES, PROC, require_tool
from twistedspy.procfs.kernel import read_domainname
from twistedspy.procfs.meminfo import MeminfoField, parse_meminfo, read_meminfo
from twistedspy.procfs.mounts import Mount, parse_mounts, read_mounts
from twistedspy.procfs.netdev import InterfaceCounters, parse_net_dev, read_net_dev
from twistedspy.procfs.processes import (
    ProcfsProcessSource,
    parse_cmdline,
    parse_stat,
    parse_status,
)
from twistedspy.procfs.stat import (
    CpuTimes,
    LoadAverage,
    parse_boot_time,
    parse_loadavg,
    parse_proc_stat,
    read_boot_time,
    read_loadavg,
    read_stat,
)

PACKAGE = Path(__file__).parent.parent / "twistedspy"


def run(*argv: str) -> str:
    """A tool's standard output (the ground truth), the tool found on PATH."""
    tool = require_tool(argv[0])
    return subprocess.run(
        [tool, *argv[1:]], check=True, capture_output=True, text=True, timeout=60
    ).stdout


def stat_line(name: bytes, *, extra_fields: int = 0) -> bytes:
    """A /proc/PID/stat line: state S, 7+3 ticks, 4 threads, started at tick 5000."""
    fields = (
        b"S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 4 0 5000 1000000 25 "
        b"18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"
    )
    return b"42 (" + name + b") " + fields + b" 0" * extra_fields + b"\n"


class StatTests(TestCase):
    def test_fixture(self) -> None:
        stat = parse_proc_stat((FIXTURES / "proc_stat.txt").read_text())
        self.assertEqual(
            stat.total, CpuTimes("cpu", 21223, 0, 6590, 126600, 1921, 0, 105, 28, 0, 0)
        )
        self.assertEqual([c.name for c in stat.cpus], ["cpu0", "cpu1"])
        self.assertEqual(stat.cpus[1].iowait, 1343)
        self.assertEqual(
            (stat.boot_time, stat.context_switches, stat.forks, stat.interrupts),
            (1763770000, 5273829, 19169, 2931415),
        )
        self.assertEqual((stat.procs_running, stat.procs_blocked), (2, 1))

    def test_fixture_tree(self) -> None:
        stat = read_stat(PROC)
        self.assertEqual(len(stat.cpus), 2)
        self.assertEqual(stat.boot_time, read_boot_time(PROC))
        self.assertEqual(read_loadavg(PROC), LoadAverage(0.79, 1.85, 1.07, 2, 109))

    def test_old_kernel_lines_without_steal(self) -> None:
        stat = parse_proc_stat("cpu 1 2 3 4\ncpu0 1 2 3 4\n")
        self.assertEqual(stat.total.steal, 0)
        self.assertEqual(stat.total.total, 10)

    def test_fields_a_newer_kernel_appends_are_ignored(self) -> None:
        stat = parse_proc_stat("cpu 1 2 3 4 5 6 7 8 9 10 11 12\nbtime 7\nnew_counter 5\n")
        self.assertEqual(stat.total, CpuTimes("cpu", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10))
        self.assertEqual(stat.boot_time, 7)

    def test_no_cpu_line_is_an_error(self) -> None:
        with self.assertRaises(ValueError):
            parse_proc_stat("intr 1\n")

    def test_boot_time_alone(self) -> None:
        self.assertEqual(
            parse_boot_time(b"cpu 1 2 3 4\nbtime 1700000000\nprocesses 5"), 1_700_000_000
        )
        self.assertEqual(parse_boot_time(b"cpu 1\nbtime 12"), 12)  # no newline at the end
        with self.assertRaises(ValueError):
            parse_boot_time(b"cpu 1 2 3 4\nxbtime 5\n")

    def test_loadavg(self) -> None:
        self.assertEqual(
            parse_loadavg("0.34 0.37 0.23 2/110 19169\n"), LoadAverage(0.34, 0.37, 0.23, 2, 110)
        )

    def test_live_cpus_and_boot_time_equal_the_kernel(self) -> None:
        stat = read_stat()
        online = run("cat", "/sys/devices/system/cpu/online").strip()
        count = 0
        for part in online.split(","):
            first, _, last = part.partition("-")
            count += int(last or first) - int(first) + 1
        self.assertEqual(len(stat.cpus), count)
        btime = next(line for line in run("cat", "/proc/stat").splitlines() if "btime" in line)
        self.assertEqual(stat.boot_time, int(btime.split()[1]))
        self.assertEqual(read_boot_time(), stat.boot_time)

    def test_live_loadavg_equals_cat(self) -> None:
        # The kernel recomputes it every 5 s: read both until one pair falls between.
        for _ in range(3):
            before = parse_loadavg(run("cat", "/proc/loadavg"))
            ours = read_loadavg()
            if parse_loadavg(run("cat", "/proc/loadavg")) == before:
                break
        self.assertEqual(
            (ours.one, ours.five, ours.fifteen), (before.one, before.five, before.fifteen)
        )


class MeminfoTests(TestCase):
    def test_fixture_tree(self) -> None:
        meminfo = read_meminfo(PROC)
        self.assertEqual(meminfo.fields[0], MeminfoField("MemTotal", 24683792 * 1024, True))
        values = meminfo.values()
        self.assertEqual(values["HugePages_Total"], 0)
        self.assertEqual(values["Active(anon)"], 84 * 1024)
        self.assertEqual(
            len(meminfo.fields), len((FIXTURES / "proc/meminfo").read_text().splitlines())
        )

    def test_units_new_fields_and_junk(self) -> None:
        meminfo = parse_meminfo(
            "MemTotal:  10 kB\nHugePages_Total:  3\nNewField2030:  7 kB\nbroken line\nX: y kB\n"
        )
        self.assertEqual(
            meminfo.fields,
            (
                MeminfoField("MemTotal", 10240, True),
                MeminfoField("HugePages_Total", 3, False),
                MeminfoField("NewField2030", 7168, True),
            ),
        )

    def test_live_totals_equal_free(self) -> None:
        mem, swap = (line.split() for line in run("free", "-b").splitlines()[1:3])
        values = read_meminfo().values()
        self.assertEqual(values["MemTotal"], int(mem[1]))
        self.assertEqual(values["SwapTotal"], int(swap[1]))


class NetDevTests(TestCase):
    def test_fixture(self) -> None:
        interfaces = parse_net_dev((FIXTURES / "net_dev.txt").read_text())
        self.assertEqual([i.name for i in interfaces], ["lo", "<b>&x\u00e9.0", "eth0"])
        self.assertEqual(
            interfaces[1],
            InterfaceCounters("<b>&x\u00e9.0", 1234567890123, 10, 1, 2, 500, 5, 3, 4, 7),
        )

    def test_fixture_tree(self) -> None:
        interfaces = read_net_dev(PROC)
        self.assertEqual([i.name for i in interfaces], ["lo", "ifb0", "ifb1", "eth0"])
        self.assertEqual(interfaces[0].rx_bytes, interfaces[0].tx_bytes)

    def test_live_interfaces_equal_sysfs(self) -> None:
        names = run("ls", "/sys/class/net").split()
        self.assertEqual(sorted(i.name for i in read_net_dev()), sorted(names))


class MountsTests(TestCase):
    def test_escapes(self) -> None:
        text = "/dev/sdc1 /media/my\\040disk\\134x vfat rw 0 0\nproc /proc proc rw 0 0\n"
        self.assertEqual(
            parse_mounts(text),
            (Mount("/dev/sdc1", "/media/my disk\\x", "vfat"), Mount("proc", "/proc", "proc")),
        )

    def test_fixture_tree(self) -> None:
        mounts = read_mounts(PROC)
        self.assertEqual(mounts[5], Mount("/dev/vda", "/", "ext4"))
        self.assertEqual(mounts[6], Mount("/dev/vdb", "/srv/my data", "ext4"))
        self.assertEqual(len(mounts), 20)

    def test_live_mounts_equal_df(self) -> None:
        lines = run("df", "-a", "--output=source,target").splitlines()[1:]
        listed = [tuple(line.split(None, 1)) for line in lines]
        self.assertEqual([(m.device, m.mount_point) for m in read_mounts()], listed)


class KernelTests(TestCase):
    def test_fixture_tree(self) -> None:
        self.assertEqual(read_domainname(PROC), "(none)")

    def test_live_domainname_equals_cat(self) -> None:
        self.assertEqual(read_domainname(), run("cat", "/proc/sys/kernel/domainname").strip())


class ProcessParseTests(TestCase):
    def test_names_that_look_like_fields(self) -> None:
        for name in (b"a) b) (c", b"x) R 1 (y", b") (", b"two\nlines", b"(", b")", b" "):
            stat = parse_stat(stat_line(name))
            self.assertEqual(stat.name, name.decode(), name)
            self.assertEqual(
                (stat.state, stat.cpu_ticks, stat.threads, stat.start_ticks, stat.rss_pages),
                ("S", 10, 4, 5000, 25),
                name,
            )

    def test_fields_a_newer_kernel_appends(self) -> None:
        self.assertEqual(parse_stat(stat_line(b"x", extra_fields=12)), parse_stat(stat_line(b"x")))

    def test_name_not_utf8(self) -> None:
        self.assertEqual(parse_stat(stat_line(b"\xff\xfe")).name, "\\xff\\xfe")

    def test_stat_of_this_process(self) -> None:
        with open(f"/proc/{os.getpid()}/stat", "rb") as f:
            stat = parse_stat(f.read())
        self.assertEqual(stat.state, "R")
        self.assertGreaterEqual(stat.threads, 1)

    def test_status_ids_are_effective(self) -> None:
        status = b"Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t100\t5\t5\t5\nVmRSS:\t  1652 kB\n"
        fields = parse_status(status)
        self.assertEqual((fields.uid, fields.gid, fields.rss), (0, 5, 1652 * 1024))
        fields = parse_status(b"Name:\tkthreadd\n")
        self.assertEqual((fields.uid, fields.gid, fields.rss), (None, None, None))

    def test_status_context_switches(self) -> None:
        status = (
            b"Name:\tvoluntary_ctxt_switches:\t99\\n\nUid:\t0\t0\t0\t0\n"
            b"voluntary_ctxt_switches:\t3\nnonvoluntary_ctxt_switches:\t40\n"
            b"x86_Thread_features:\t\n"  # a line a newer kernel appends after them
        )
        self.assertEqual(parse_status(status).switches, 43)
        self.assertEqual(parse_status(b"Name:\told\n").switches, 0)

    def test_status_name_line_cannot_fake_fields(self) -> None:
        status = b"Name:\tx\\nUid:\t7\nUid:\t1000\t3\t3\t3\nGid:\t1\t2\t2\t2\n"
        self.assertEqual(parse_status(status).uid, 3)

    def test_cmdline(self) -> None:
        self.assertEqual(parse_cmdline(b"sleep\x0060\x00"), ("sleep", "60"))
        self.assertEqual(parse_cmdline(b""), ())
        self.assertEqual(parse_cmdline(b"a\x00\x00b\x00"), ("a", "", "b"))
        self.assertEqual(parse_cmdline(b"\xff\x00"), ("\\xff",))
        # a process that rewrote its argv as one string (setproctitle) has no NULs
        self.assertEqual(parse_cmdline(b"postgres: checkpointer "), ("postgres: checkpointer ",))


class ProcessScanTests(TestCase):
    def test_fixture_tree(self) -> None:
        snapshot = ProcfsProcessSource(PROC)()
        by_pid = {p.pid: p for p in snapshot.processes}
        # 4246 has a directory but no stat: it exited during the scan
        self.assertEqual(sorted(by_pid), [1, 2, 14, 812, 1520, 1521, 4242, 4243, 4244, 4245])
        self.assertEqual(
            {pid: by_pid[pid].name for pid in (4242, 4243, 4244)},
            {4242: "evil) R 1 (x y", 4243: "two\nlines", 4244: "a ) ( b"},
        )
        kthreadd, zombie, nobody = by_pid[2], by_pid[1521], by_pid[4245]
        self.assertEqual((kthreadd.name, kthreadd.cmdline, kthreadd.rss), ("kthreadd", (), 0))
        self.assertEqual((zombie.state, zombie.cmdline, zombie.rss), ("Z", (), 0))
        self.assertEqual((nobody.user, nobody.rss), (self.user_named(65534), 9504 * 1024))
        self.assertEqual(by_pid[1].cmdline, ("/sbin/init",))
        ticks = os.sysconf("SC_CLK_TCK")
        boot = read_boot_time(PROC)
        self.assertEqual(by_pid[4242].start_time, boot + 73522 / ticks)
        self.assertEqual(by_pid[4242].cpu_seconds, 2 / ticks)
        self.assertEqual(by_pid[1].threads, 18)

    def user_named(self, uid: int) -> str:
        import pwd

        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return str(uid)

    def test_without_command_lines(self) -> None:
        snapshot = ProcfsProcessSource(PROC, cmdline=False)()
        self.assertEqual({p.cmdline for p in snapshot.processes}, {None})
        self.assertEqual(len(snapshot.processes), 10)

    def test_a_process_gone_between_its_files_is_left_out(self) -> None:
        tree = Path(self.mktemp())
        shutil.copytree(PROC, tree)
        (tree / "4242" / "status").unlink()  # exited after stat was read
        (tree / "4243" / "cmdline").unlink()
        pids = {p.pid for p in ProcfsProcessSource(str(tree))().processes}
        self.assertNotIn(4242, pids)
        self.assertNotIn(4243, pids)
        self.assertIn(4244, pids)

    def test_command_lines_are_kept_until_the_process_has_run(self) -> None:
        """A process that has not been on a CPU since its command line was read keeps
        it; one whose CPU ticks or context switches moved, or a new process under the
        same PID, is read again."""
        tree = Path(self.mktemp())
        shutil.copytree(PROC, tree)
        source = ProcfsProcessSource(str(tree))
        self.assertEqual(self.cmdline(source, 4245), self.cmdline(source, 4245))
        first = self.cmdline(source, 4245)
        (tree / "4245" / "cmdline").write_bytes(b"renamed\0")
        self.assertEqual(self.cmdline(source, 4245), first)  # kept: nothing has moved
        status = tree / "4245" / "status"
        status.write_bytes(
            status.read_bytes().replace(
                b"voluntary_ctxt_switches:\t", b"voluntary_ctxt_switches:\t9"
            )
        )
        self.assertEqual(self.cmdline(source, 4245), ("renamed",))
        (tree / "4245" / "cmdline").write_bytes(b"again\0")
        stat = tree / "4245" / "stat"
        fields = stat.read_bytes().split(b" ")
        fields[21] = b"99999"  # field 22, start time: another process under the same PID
        stat.write_bytes(b" ".join(fields))
        self.assertEqual(self.cmdline(source, 4245), ("again",))
        (tree / "4245" / "cmdline").write_bytes(b"ticks\0")
        fields[13] = str(int(fields[13]) + 1).encode()  # field 14, utime
        stat.write_bytes(b" ".join(fields))
        self.assertEqual(self.cmdline(source, 4245), ("ticks",))

    def test_unchanged_files_are_not_parsed_again_and_a_changed_one_is(self) -> None:
        """A process whose stat and status read as before keeps its sample; one that
        changed its effective user (setuid(2)) with nothing else moved is read again."""
        tree = Path(self.mktemp())
        shutil.copytree(PROC, tree)
        source = ProcfsProcessSource(str(tree))
        first = {p.pid: p for p in source().processes}
        second = {p.pid: p for p in source().processes}
        self.assertIs(second[4245], first[4245])
        status = tree / "4245" / "status"
        uid = next(line for line in status.read_bytes().splitlines() if line.startswith(b"Uid:"))
        status.write_bytes(status.read_bytes().replace(uid, b"Uid:\t0\t0\t0\t0"))
        third = {p.pid: p for p in source().processes}
        self.assertEqual(third[4245].user, self.user_named(0))
        self.assertNotEqual(first[4245].user, third[4245].user)
        self.assertEqual(third[4245].cmdline, first[4245].cmdline)

    def cmdline(self, source: ProcfsProcessSource, pid: int) -> tuple[str, ...] | None:
        return next(p.cmdline for p in source().processes if p.pid == pid)

    def test_live_rewritten_command_line_equals_ps(self) -> None:
        """A real process that rewrites its argv (perl's `$0 =`, as setproctitle(3)
        does) between two scans: the second scan shows what ps shows."""
        perl = require_tool("perl")
        child = subprocess.Popen(
            [
                perl,
                "-e",
                "$| = 1; print qq(ready\\n); <STDIN>; $0 = q(renamed by itself); sleep 60",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert child.stdin is not None and child.stdout is not None
        self.addCleanup(child.stdout.close)
        self.addCleanup(child.stdin.close)
        self.addCleanup(child.wait)
        self.addCleanup(child.kill)
        self.assertEqual(child.stdout.readline(), b"ready\n")
        source = ProcfsProcessSource()
        before = self.cmdline(source, child.pid)
        self.assertEqual(before, (perl, "-e", before[2] if before else ""))
        child.stdin.write(b"go\n")
        child.stdin.flush()
        argv = ("ps", "-ww", "-o", "args=", "-p", str(child.pid))
        for _ in range(3000):  # until it has renamed itself (a generous 30 s at most)
            if run(*argv) == "renamed by itself\n":
                break
            time.sleep(0.01)
        self.assertEqual(self.cmdline(source, child.pid), ("renamed by itself",))

    def test_live_hostile_names_as_the_kernel_has_them(self) -> None:
        """Real processes that named themselves like stat fields, read as `cat` reads them."""
        code = "import sys,time\nopen('/proc/self/comm','w').write(sys.argv[1])\ntime.sleep(60)"
        children = {}
        for name in ("evil) R 1 (x", "two\nlines", "a ) ( b"):
            child = subprocess.Popen([sys.executable, "-c", code, name])
            self.addCleanup(child.wait)
            self.addCleanup(child.kill)
            children[child.pid] = name
        for pid, name in children.items():
            for _ in range(3000):  # until it has renamed itself (a generous 30 s at most)
                if run("cat", f"/proc/{pid}/comm") == f"{name}\n":
                    break
                time.sleep(0.01)
        by_pid = {p.pid: p for p in ProcfsProcessSource()().processes}
        for pid, name in children.items():
            self.assertEqual(by_pid[pid].name, run("cat", f"/proc/{pid}/comm")[:-1])
            self.assertEqual(by_pid[pid].name, name)
            self.assertEqual(by_pid[pid].state, "S")

    def test_live_scan_equals_ps(self) -> None:
        """Every process both saw: the same name and effective user as ps shows."""
        # -ww: no terminal to fit, or ps cuts the last column at 80 characters
        argv = ("ps", "-e", "-ww", "-o", "pid=,user:64=,comm=")
        before = run(*argv)
        snapshot = ProcfsProcessSource()()
        after = run(*argv)
        ours = {p.pid: p for p in snapshot.processes}
        stable = set(before.splitlines()) & set(after.splitlines())
        compared = 0
        for line in stable:
            pid, user, comm = line.strip().split(None, 2)
            if int(pid) not in ours:
                continue
            compared += 1
            self.assertEqual((ours[int(pid)].user, ours[int(pid)].name), (user, comm), line)
        self.assertGreater(compared, len(ours) / 2)


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


#: a string that names a /proc or /sys file (or the start of one, in an f-string)
KERNEL_PATH = re.compile(r"/(proc|sys)(/\S*)?$")


class LayeringTests(TestCase):
    def test_no_module_imports_another(self) -> None:
        for path in sorted((PACKAGE / "modules").glob("*.py")):
            siblings = {
                name for name in imports_of(path) if name.startswith("twistedspy.modules.")
            }
            self.assertEqual(siblings, set(), path.name)

    def test_no_core_file_imports_a_module(self) -> None:
        for path in sorted(PACKAGE.rglob("*.py")):
            if path.parent.name == "modules":
                continue
            found = {n for n in imports_of(path) if n.startswith("twistedspy.modules")}
            self.assertEqual(found, set(), path)

    def test_procfs_is_plain_python(self) -> None:
        for path in sorted((PACKAGE / "procfs").glob("*.py")):
            outside = {
                n
                for n in imports_of(path)
                if n.split(".")[0] in {"twisted", "prometheus_client", "jinja2", "zope"}
                or (n.startswith("twistedspy") and not n.startswith("twistedspy.procfs"))
            }
            self.assertEqual(outside, set(), path.name)

    def test_nothing_imports_psutil(self) -> None:
        """psutil is no dependency of twistedspy's (pyproject.toml): only bench/ uses it."""
        for path in sorted(PACKAGE.rglob("*.py")):
            self.assertNotIn("psutil", {n.split(".")[0] for n in imports_of(path)}, path)

    def test_every_proc_and_sys_path_is_named_in_procfs(self) -> None:
        for path in sorted(PACKAGE.rglob("*.py")):
            if path.parent.name == "procfs":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    self.assertIsNone(KERNEL_PATH.match(node.value), f"{path}: {node.value!r}")
