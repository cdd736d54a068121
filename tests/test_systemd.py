# -*- test-case-name: tests.test_systemd -*-
"""The units in contrib/, and socket activation with systemd's own tool."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.daemons import (
    ROOT,
    START_DEADLINE,
    child_environment,
    free_port,
    journal_text,
    socket_activated,
)
from tests.support import require_tool

CONTRIB = ROOT / "contrib"
UNITS = ("twistedspy.service", "twistedspy-socket.service", "twistedspy.socket")
INSTALLED_TWISTD = "/opt/twistedspy/bin/twistd"
HARDENING = (
    "DynamicUser=yes",
    "User=twistedspy",
    "NoNewPrivileges=yes",
    "CapabilityBoundingSet=\n",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "LogsDirectory=twistedspy",
    "StateDirectory=twistedspy",
)


class UnitFileTests(TestCase):
    def test_hardened(self) -> None:
        for name in ("twistedspy.service", "twistedspy-socket.service"):
            text = (CONTRIB / name).read_text()
            for line in HARDENING:
                self.assertIn(line, text, name)
            self.assertIn(f"ExecStart={INSTALLED_TWISTD} --nodaemon --pidfile= spy", text)
            self.assertIn("--log-dir=${LOGS_DIRECTORY}", text)
            self.assertIn("--message-file=${STATE_DIRECTORY}/messages.jsonl", text)
        socket_service = (CONTRIB / "twistedspy-socket.service").read_text()
        self.assertIn("--listen=systemd:domain=INET:index=0", socket_service)
        self.assertIn("FileDescriptorName=", (CONTRIB / "twistedspy.socket").read_text())

    def test_systemd_accepts_the_units(self) -> None:
        analyze = require_tool("systemd-analyze")
        twistd = shutil.which("twistd", path=str(Path(sys.executable).parent))
        assert twistd is not None, "twistd beside this Python"
        folder = Path(self.mktemp())
        folder.mkdir()
        for name in UNITS:
            # verify checks that ExecStart names an executable: point it at this twistd.
            text = (CONTRIB / name).read_text().replace(INSTALLED_TWISTD, twistd)
            (folder / name).write_text(text)
        done = subprocess.run(
            [analyze, "verify", "--man=no", *(f"./{name}" for name in UNITS)],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.assertEqual((done.returncode, done.stdout + done.stderr), (0, ""))


class SocketActivationTests(TestCase):
    def test_serves_on_the_socket_it_is_handed(self) -> None:
        folder = Path(self.mktemp()).resolve()
        folder.mkdir(parents=True)
        log_dir = folder / "logs"
        port = free_port()
        process = subprocess.Popen(
            socket_activated("127.0.0.1", port, log_dir),
            cwd=folder,
            env=child_environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.addCleanup(process.wait)
        self.addCleanup(process.send_signal, signal.SIGKILL)
        # systemd-socket-activate binds at once and starts twistd on the first connection.
        deadline = time.monotonic() + START_DEADLINE
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                connection.request("GET", "/version?format=json")
                break
            except ConnectionRefusedError:
                connection.close()
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        self.assertEqual(response.status, 200)
        self.assertEqual(json.loads(body)["module"], "version")
        journal = journal_text(log_dir)
        self.assertRegex(journal, rf" info start address=127\.0\.0\.1 port={port} ")
        os.kill(process.pid, signal.SIGTERM)
        self.assertIn(process.wait(START_DEADLINE), (0, -signal.SIGTERM))
        self.assertIn(" info stop ", journal_text(log_dir))
