# -*- test-case-name: tests.test_hostile -*-
"""A twistedspy server in its own process, as `make proof` measures it: RSS, fds, journal."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from twistedspy.allocator import with_no_thread_cache

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    folder: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_kib(self) -> int:
        """Resident set size, from /proc/PID/status (VmRSS, in KiB)."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert match is not None
        return int(match[1])

    def fds(self) -> int:
        return sum(1 for _ in Path(f"/proc/{self.pid}/fd").iterdir())

    def journal_text(self) -> str:
        return "".join(p.read_text() for p in sorted((self.folder / "logs").glob("*.log")))

    def get(self, path: str, headers: dict[str, str] | None = None, timeout: float = 30.0) -> int:
        """The status of one GET over a fresh connection."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the server and wait for it to end; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def stderr_text(self) -> str:
        return (self.folder / "stderr.txt").read_text(errors="replace")

    def twistd_log_text(self) -> str:
        """twistd's own log (its standard output in the foreground), where stderr goes too."""
        return (self.folder / "twistd.log").read_text(errors="replace")


def start(
    folder: Path,
    *options: str,
    preexec_fn: Callable[[], None] | None = None,
    env: dict[str, str] | None = None,
    module: str = "twistedspy.cli",
    tls: bool = False,
) -> ServerProcess:
    """Start `twistedspy` (or a wrapper `module` of its cli) on a free loopback port
    with its files in `folder`; `tls` for an `ssl:` listener, which plain HTTP cannot ask
    whether it is healthy (its start event, written once it listens, is enough)."""
    folder = folder.resolve()  # the server runs in it: relative paths would move
    folder.mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable,
        "-m",
        module,
        "--pidfile=",
        "--port=0",
        f"--log-dir={folder / 'logs'}",
        f"--message-file={folder / 'messages.jsonl'}",
        *options,
    ]
    # As the systemd units and `make run` start it: glibc's per-thread caches off.
    environment = with_no_thread_cache({**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    # A file, not a pipe: nobody reads a pipe while the server runs, and a full one would
    # stop it at its next write.
    with open(folder / "stderr.txt", "wb") as stderr, open(folder / "twistd.log", "wb") as out:
        process = subprocess.Popen(
            args,
            cwd=folder,
            env=environment,
            stdout=out,
            stderr=stderr,
            preexec_fn=preexec_fn,  # noqa: PLW1509 - only resource limits, set before exec
        )
    server = ServerProcess(process, 0, folder)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server ended at start-up: {server.stderr_text()}")
        match = re.search(r" start .*\bport=(\d+)", server.journal_text())
        if match:
            server.port = int(match[1])
            if tls or server.get("/-/healthy") == 200:
                return server
        time.sleep(0.1)
    process.kill()
    process.wait()
    raise RuntimeError(f"the server did not start within 60 s: {server.stderr_text()}")
