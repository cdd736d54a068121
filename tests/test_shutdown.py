# -*- test-case-name: tests.test_shutdown -*-
"""SIGINT and SIGTERM during a slow response, on a real process
(docs/operations.md, "Stopping")."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time
from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.daemons import CLI, SLOW_PLUGIN, START_DEADLINE, STUCK_PLUGIN, TWISTD, SpyProcess


class InFlightRequest(threading.Thread):
    """A GET in a thread, so that the test can signal the server while it waits."""

    def __init__(self, port: int, path: str) -> None:
        super().__init__(daemon=True)
        self.port, self.path = port, path
        self.status: int | None = None
        self.body = b""
        self.length: int | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("GET", self.path, headers={"Accept": "application/json"})
            response = connection.getresponse()
            self.status = response.status
            self.length = int(response.headers["Content-Length"])
            # http.client raises IncompleteRead if fewer bytes come than announced.
            self.body = response.read()
        except BaseException as e:
            self.error = e
        finally:
            connection.close()


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


class CleanStopTests(TestCase):
    def setUp(self) -> None:
        self.folder = Path(self.mktemp()).resolve()
        self.moddir = self.folder / "modules"
        self.moddir.mkdir(parents=True)
        (self.moddir / "spy_slow.py").write_text(SLOW_PLUGIN)
        self.log_dir = self.folder / "logs"
        self.pidfile = self.folder / "twistd.pid"
        self.started = self.folder / "slow-started"

    def spawn(self, command: list[str], port: int = 0) -> SpyProcess:
        argv = [*command, "-p", str(port), "--log-dir", str(self.log_dir), "-m", str(self.moddir)]
        running = SpyProcess.start(
            argv, self.folder, self.log_dir, SPY_TEST_STARTED=str(self.started)
        )
        self.addCleanup(running.kill)
        return running

    def stop_during_slow_response(self, command: list[str], number: int) -> None:
        running = self.spawn(command)
        self.assertEqual(self.pidfile.read_text().strip(), str(running.process.pid))
        request = InFlightRequest(running.port, "/slow?s=2")
        request.start()
        deadline = time.monotonic() + START_DEADLINE
        while not self.started.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertTrue(self.started.exists(), running.output_text())

        running.signal(number)
        # Stop accepting comes first: new connections are refused while the slow
        # response is still being finished (the process is still there).
        while not refused(running.port) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertIsNone(running.process.poll())
        self.assertTrue(refused(running.port))

        status = running.wait()
        request.join(START_DEADLINE)
        self.assertIsNone(request.error, running.output_text())
        self.assertEqual(request.status, 200)
        self.assertEqual(len(request.body), request.length)
        [table] = json.loads(request.body)["tables"]
        self.assertEqual(len(table["rows"]), 1000)
        # twistd re-raises the signal after a clean stop (service managers count both).
        self.assertIn(status, (0, -number), running.output_text())

        journal = running.journal()
        self.assertRegex(journal, r" info request .*path=\"?/slow\?s=2\"? status=200 ")
        self.assertRegex(journal.splitlines()[-1], r"^\S+ info stop\b")
        self.assertFalse(self.pidfile.exists())

        # A restart right after binds the same port at once (SO_REUSEADDR despite the
        # connection just closed by the server sitting in TIME_WAIT).
        again = self.spawn(command, running.port)
        self.assertEqual(again.port, running.port)
        self.assertIn(again.stop(), (0, -signal.SIGTERM))

    def test_sigint_under_twistd(self) -> None:
        self.stop_during_slow_response(
            [*TWISTD, "-n", f"--pidfile={self.pidfile}", "spy"], signal.SIGINT
        )

    def test_sigterm_under_the_script(self) -> None:
        self.stop_during_slow_response([*CLI, f"--pidfile={self.pidfile}"], signal.SIGTERM)

    def test_idle_keep_alive_connection_closed(self) -> None:
        # A persistent connection with nothing under way must not delay the stop: it is
        # closed at once, and the process ends well before the grace period.
        running = self.spawn([*TWISTD, "-n", f"--pidfile={self.pidfile}", "spy"])
        connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=60)
        self.addCleanup(connection.close)
        connection.request("GET", "/-/healthy")
        self.assertEqual(connection.getresponse().read(), b"twistedspy is healthy.\n")
        running.signal(signal.SIGTERM)
        self.assertIn(running.wait(), (0, -signal.SIGTERM))
        self.assertIn(" info stop ", running.journal())
        self.assertFalse(self.pidfile.exists())

    def test_stuck_worker_does_not_hold_the_stop(self) -> None:
        # A worker thread blocked for a minute (a hung mount) costs its request a 504;
        # the stop must not wait for that thread.
        (self.moddir / "spy_stuck.py").write_text(STUCK_PLUGIN)
        running = self.spawn(
            [*TWISTD, "-n", f"--pidfile={self.pidfile}", "spy", "--module-timeout=0.5"]
        )
        request = InFlightRequest(running.port, "/stuck")
        request.start()
        request.join(START_DEADLINE)
        self.assertEqual(request.status, 504, request.error)
        running.signal(signal.SIGTERM)
        self.assertIn(running.wait(), (0, -signal.SIGTERM), running.output_text())
        self.assertIn(" info stop ", running.journal())
        self.assertFalse(self.pidfile.exists())
