"""The readers of one process's /proc files: each parser on the kernel's own text, and the
whole reader against this test's own process."""

from __future__ import annotations

import os
import resource
import socket
from pathlib import Path

from twisted.trial.unittest import TestCase

from twistedspy.procfs.process import (
    ProcessGone,
    classify_descriptors,
    environ_names,
    parse_limits,
    parse_sockets,
    read_process,
)

LIMITS = """\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max open files            1024                 1048576              files     
Max nice priority         0                    0                    
"""  # noqa: W291 - the kernel pads every line

TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 4243 1 0 20 4 30 10 -1
"""  # noqa: E501 - the kernel's own lines

TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0 100 0 0 10 0
"""  # noqa: E501 - the kernel's own lines


class ParserTests(TestCase):
    def test_limits(self) -> None:
        cpu, files, nice = parse_limits(LIMITS)
        self.assertEqual(
            (cpu.name, cpu.soft, cpu.hard, cpu.unit), ("Max cpu time", None, None, "seconds")
        )
        self.assertEqual((files.soft, files.hard, files.unit), (1024, 1048576, "files"))
        self.assertEqual((nice.name, nice.unit), ("Max nice priority", ""))

    def test_environ_keeps_names_only(self) -> None:
        names = environ_names(b"HOME=/root\0SECRET_TOKEN=hunter2\0EMPTY=\0=odd\0NOEQUALS\0")
        self.assertEqual(names, ("EMPTY", "HOME", "SECRET_TOKEN"))
        self.assertNotIn("hunter2", repr(names))

    def test_descriptors_by_kind(self) -> None:
        found = classify_descriptors(
            ["/dev/null", "socket:[12]", "pipe:[3]", "anon_inode:[eventfd]", "/tmp/x (deleted)"]
        )
        self.assertEqual((found.files, found.sockets, found.pipes, found.other), (2, 1, 1, 1))
        self.assertEqual(found.socket_inodes, frozenset({12}))
        self.assertEqual(found.total, 5)

    def test_sockets_v4_and_v6(self) -> None:
        listening, connected = parse_sockets(TCP, "tcp")
        self.assertEqual(
            (listening.local_address, listening.local_port, listening.state, listening.inode),
            ("127.0.0.1", 8080, "LISTEN", 4242),
        )
        self.assertEqual((connected.remote_port, connected.state), (50000, "ESTABLISHED"))
        [v6] = parse_sockets(TCP6, "tcp6")
        self.assertEqual((v6.local_address, v6.local_port, v6.state), ("::1", 80, "LISTEN"))


class LiveTests(TestCase):
    def test_this_process(self) -> None:
        listener = socket.socket(socket.AF_INET6 if socket.has_ipv6 else socket.AF_INET)
        self.addCleanup(listener.close)
        listener.bind(("::1" if socket.has_ipv6 else "127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        me = read_process(os.getpid())
        self.assertEqual(me.pid, os.getpid())
        self.assertEqual(me.cwd, str(Path.cwd()))
        assert me.uid is not None and me.descriptors is not None and me.sockets is not None
        self.assertEqual(me.uid.effective, os.geteuid())
        self.assertGreaterEqual(me.descriptors.sockets, 1)
        self.assertIn(port, [s.local_port for s in me.sockets if s.state == "LISTEN"])
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert me.open_files_limit is not None
        self.assertEqual((me.open_files_limit.soft, me.open_files_limit.hard), (soft, hard))
        self.assertEqual(me.parents[0].pid, os.getppid())
        assert me.rss is not None and me.uss is not None
        self.assertLessEqual(me.uss, me.rss)

    def test_no_such_process(self) -> None:
        self.assertRaises(ProcessGone, read_process, 1, "/nonexistent-proc")
