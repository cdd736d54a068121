# -*- test-case-name: tests.test_first_minute -*-
"""
The first minute with twistedspy: where it says it serves, what twistd's own log shows of
the journal's events, and Ctrl+C on `make run` (docs/operations.md).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.trial.unittest import SkipTest, TestCase

from tests.daemons import ROOT, START_DEADLINE, TWISTD, SpyProcess, child_environment
from tests.servers import fetch
from tests.support import require_tool
from twistedspy import __version__
from twistedspy.service import serving_line


class ServingLineTests(TestCase):
    """The start-up line for each kind of endpoint: a URL a person can click."""

    def test_tcp(self) -> None:
        self.assertEqual(
            serving_line("tcp:8080:interface=127.0.0.1", IPv4Address("TCP", "127.0.0.1", 8080)),
            f"twistedspy {__version__} serving http://127.0.0.1:8080/",
        )

    def test_tls(self) -> None:
        line = serving_line("ssl:8443:privateKey=k.pem", IPv4Address("TCP", "10.0.0.5", 8443))
        self.assertTrue(line.endswith(" serving https://10.0.0.5:8443/"), line)

    def test_ipv6_in_brackets(self) -> None:
        line = serving_line("tcp6:8080:interface=\\:\\:1", IPv6Address("TCP", "::1", 8080))
        self.assertTrue(line.endswith(" serving http://[::1]:8080/"), line)

    def test_every_address_names_the_host(self) -> None:
        for address in (
            IPv4Address("TCP", "0.0.0.0", 8080),
            IPv6Address("TCP", "::", 8080),
        ):
            line = serving_line("tcp:8080", address)
            self.assertTrue(
                line.endswith(f" serving http://{socket.gethostname()}:8080/ on every address"),
                line,
            )

    def test_unix_socket_says_how_to_reach_it(self) -> None:
        line = serving_line("unix:/run/spy.sock", UNIXAddress(b"/run/spy.sock"))
        self.assertIn("serving the Unix socket /run/spy.sock", line)
        self.assertIn("curl --unix-socket /run/spy.sock http://localhost/", line)


class TwistdLogTests(TestCase):
    """What a person running `twistd -n spy` in a terminal reads."""

    def test_root_warning_and_serving_line_read_in_full(self) -> None:
        if os.geteuid() != 0:
            raise SkipTest("the root warning needs the server started as root")
        folder = Path(self.mktemp()).resolve()
        folder.mkdir(parents=True)
        log_dir = folder / "logs"
        running = SpyProcess.start(
            [*TWISTD, "-n", "--pidfile=", "spy", "-p", "0", "--log-dir", str(log_dir)],
            folder,
            log_dir,
        )
        self.addCleanup(running.kill)
        # The journal's `start` event is written just before the lines under test.
        deadline = time.monotonic() + START_DEADLINE
        while "running as root" not in running.output_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        running.stop()
        output = running.output_text()
        self.assertIn(
            f"[twistedspy#info] twistedspy {__version__} serving"
            f" http://127.0.0.1:{running.port}/\n",
            output,
        )
        message = "running as root: twistedspy needs no privileges; run it as a plain user"
        self.assertIn(f'[twistedspy#warn] warning message="{message}"\n', output)
        self.assertIn(f'warn warning message="{message}"', running.journal())


class MakeRunTests(TestCase):
    """Ctrl+C on `make run`, as a terminal sends it: to the whole foreground group."""

    def test_ctrl_c_ends_cleanly(self) -> None:
        make = require_tool("make")
        folder = Path(self.mktemp()).resolve()
        folder.mkdir(parents=True)
        log_dir = folder / "logs"
        config = folder / "spy.conf"
        config.write_text(f"Port = 0\nLogDir = {log_dir}\nMessageFile = {folder / 'm.jsonl'}\n")
        output = folder / "output.txt"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                # The twistd of this very test run, without make's set-up step (STAMP=).
                [
                    make,
                    "--no-print-directory",
                    "run",
                    "STAMP=",
                    f"BIN={Path(sys.executable).parent}",
                ],
                cwd=ROOT,
                env=child_environment(TWISTEDSPY_CONFIG=str(config)),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def kill() -> None:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

        self.addCleanup(kill)
        deadline = time.monotonic() + START_DEADLINE
        serving = None
        while serving is None and time.monotonic() < deadline:
            self.assertIsNone(process.poll(), output.read_text())
            time.sleep(0.05)
            serving = re.search(r" serving http://127.0.0.1:(\d+)/", output.read_text())
        assert serving is not None, output.read_text()
        # Once it answers, the reactor runs and has its signal handlers: a person's Ctrl+C
        # comes later than that, and one sooner would meet Python's KeyboardInterrupt.
        self.assertEqual(fetch(int(serving[1]), "GET", "/-/healthy", {}).status, 200)
        os.killpg(process.pid, signal.SIGINT)
        status = process.wait(timeout=START_DEADLINE)
        text = output.read_text()
        self.assertIn("Received SIGINT, shutting down.", text)
        self.assertIn("Server Shut Down.", text)
        # make re-raises the SIGINT it got itself (as a shell shows nothing for), but
        # reports no failed recipe: no "Error 130", no "Interrupt".
        self.assertIn(status, (0, -signal.SIGINT))
        self.assertIsNone(re.search(r"make: \*\*\*|Error 130|Interrupt", text), text)
        self.assertRegex(" ".join(p.read_text() for p in log_dir.glob("*.log")), r" info stop ")
