"""twistedspy as a real process, started the ways an administrator starts it.

The process runs in its own session: a child started from a non-interactive shell may
inherit SIGINT ignored (docs/architecture.md, "Shutdown"), and a session of its own also
keeps a signal meant for it away from the test runner. Its port is read from the
journal's `start` event, so every test can ask for port 0. `make proof` starts its
servers here too, and reads their memory and descriptors.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import require_tool
from twistedspy.allocator import with_no_thread_cache
from twistedspy.config import CONFIG_ENV

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TWISTD = [PYTHON, "-c", "from twisted.scripts.twistd import run; run()"]
CLI = [PYTHON, "-m", "twistedspy.cli"]
#: a safety net for a process that never says it started; not a measured time
START_DEADLINE = 60.0

_START = re.compile(r"^\S+ info start .*\bport=(\d+)", re.MULTILINE)


def drop_in_source(
    name: str,
    collect: str,
    *,
    imports: str = "",
    title: str | None = None,
    description: str = "A module a test drops in.",
    factory: bool = False,
    reactor_safe: bool = False,
) -> str:
    """
    The text of a ModulesDir file: one info module called `name`, whose
    `collect(self, query)` runs the statements `collect`, after `imports`. With `factory`,
    the plugin is an `IModuleFactory` and the module gets the service's `self.context`;
    with `reactor_safe`, the module declares `IReactorSafe` (its collect runs on the
    reactor, as one returning a Deferred must).
    """
    interfaces = "IInfoModule, IReactorSafe" if reactor_safe else "IInfoModule"
    body = textwrap.indent(textwrap.dedent(collect).strip(), " " * 8)
    plugin = (
        "@implementer(IPlugin, IModuleFactory)\n"
        "class Factory:\n"
        f"    name = {name!r}\n\n"
        "    def build(self, context):\n"
        "        return Module(context)\n\n\n"
        "plugin = Factory()\n"
        if factory
        else "plugin = Module()\n"
    )
    return (
        f"{textwrap.dedent(imports).strip()}\n"
        "from twisted.plugin import IPlugin\n"
        "from zope.interface import implementer\n\n"
        "from twistedspy.interfaces import IInfoModule, IModuleFactory, IReactorSafe\n"
        "from twistedspy.report import Report, Table\n\n\n"
        f"@implementer({'' if factory else 'IPlugin, '}{interfaces})\n"
        "class Module:\n"
        f"    name = {name!r}\n"
        f"    title = {title or name.capitalize()!r}\n"
        f"    description = {description!r}\n\n"
        "    def __init__(self, context=None):\n"
        "        self.context = context\n\n"
        "    def collect(self, query):\n"
        f"{body}\n\n\n"
        f"{plugin}"
    )


#: A module that takes its time, for requests that are still in flight when a signal
#: comes. It touches the file named by $SPY_TEST_STARTED when a collection begins.
SLOW_PLUGIN = drop_in_source(
    "slow",
    """
    Path(os.environ["SPY_TEST_STARTED"]).touch()
    rows = [[n, "x" * 100] for n in range(1000)]
    report = Report(title="Slow", tables=[Table(title="rows", columns=["n", "x"], rows=rows)])
    return deferLater(reactor, float(query.get("s", "1")), lambda: report)
    """,
    imports="""
    import os
    from pathlib import Path

    from twisted.internet import reactor
    from twisted.internet.task import deferLater
    """,
    description="Answers after ?s= seconds.",
    # It returns a Deferred: safe to call on the reactor, and it must be called there.
    reactor_safe=True,
)

#: A plain module whose collection blocks its worker thread for `?s=` seconds (ten minutes
#: by default), as a hung mount does. It touches $SPY_TEST_STARTED, if set, as it begins.
STUCK_PLUGIN = drop_in_source(
    "stuck",
    """
    started = os.environ.get("SPY_TEST_STARTED")
    if started:
        Path(started).touch()
    time.sleep(float(query.get("s", "600")))
    return Report(title="Woke up")
    """,
    imports="""
    import os
    import time
    from pathlib import Path
    """,
    description="Sleeps, in its thread.",
)


def child_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != CONFIG_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(":")
    env.update(extra)
    return env


def run_to_exit(
    argv: list[str], *, cwd: Path, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """Run a command that ends by itself (help, a refused start-up), with its output."""
    return subprocess.run(
        argv,
        cwd=cwd,
        env=child_environment(**extra_env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def socket_activated(address: str, port: int, log_dir: Path) -> list[str]:
    """
    `twistd spy` under systemd's own `systemd-socket-activate`, handed the socket it binds
    on `address:port` (it binds at once and starts twistd on the first connection).
    """
    activate = require_tool("systemd-socket-activate")
    return [
        activate,
        f"--listen={address}:{port}",
        # twistd's systemd: endpoint needs LISTEN_FDNAMES as well as LISTEN_FDS; the tool sets
        # it only when given a name, as FileDescriptorName= does.
        "--fdname=twistedspy",
        f"--setenv=PYTHONPATH={child_environment()['PYTHONPATH']}",
        *TWISTD,
        "-n",
        "--pidfile=",
        "spy",
        "--listen=systemd:domain=INET:index=0",
        f"--log-dir={log_dir}",
    ]


def journal_text(log_dir: Path) -> str:
    return "".join(p.read_text() for p in sorted(log_dir.glob("*.log")))


@dataclass
class SpyProcess:
    """One running twistedspy; `stop()` (or the test's cleanup) ends it."""

    process: subprocess.Popen[bytes]
    folder: Path
    log_dir: Path
    output: Path
    port: int = field(default=0)

    @classmethod
    def start(
        cls,
        argv: list[str],
        folder: Path,
        log_dir: Path,
        *,
        preexec_fn: Callable[[], None] | None = None,
        **env: str,
    ) -> SpyProcess:
        """Start `argv` in `folder` and wait for the journal's `start` event in `log_dir`."""
        # A file, not a pipe: nobody reads a pipe while the server runs, and a full one
        # would stop it at its next write.
        output = folder / f"output-{time.monotonic_ns()}.txt"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                argv,
                cwd=folder,
                env=child_environment(**env),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec_fn,  # noqa: PLW1509 - only resource limits, set before exec
            )
        running = cls(process, folder, log_dir, output)
        running.port = running._wait_for_start()
        return running

    def _wait_for_start(self) -> int:
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            match = _START.search(journal_text(self.log_dir)) if self.log_dir.is_dir() else None
            if match is not None:
                return int(match.group(1))
            if self.process.poll() is not None:
                raise AssertionError(
                    f"twistedspy exited with {self.process.returncode}: {self.output_text()}"
                )
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"twistedspy did not start: {self.output_text()}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def journal(self) -> str:
        return journal_text(self.log_dir)

    def rss_kib(self) -> int:
        """Resident set size, from /proc/PID/status (VmRSS, in KiB)."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert match is not None
        return int(match[1])

    def fds(self) -> int:
        return sum(1 for _ in Path(f"/proc/{self.pid}/fd").iterdir())

    def get(
        self,
        path: str,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
        source: str | None = None,
    ) -> int:
        """The status of one GET over a fresh connection, from `source` if given."""
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=timeout, source_address=(source, 0) if source else None
        )
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    def output_text(self) -> str:
        return self.output.read_text(errors="replace")

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def wait(self) -> int:
        try:
            return self.process.wait(timeout=START_DEADLINE)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def stop(self, number: int | None = None) -> int:
        """Signal the server (SIGTERM unless told) and wait for it to end; its exit status."""
        if self.process.poll() is None:
            self.signal(signal.SIGTERM if number is None else number)
        return self.wait()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_cli(
    folder: Path,
    *options: str,
    preexec_fn: Callable[[], None] | None = None,
    env: dict[str, str] | None = None,
    module: str = "twistedspy.cli",
    tls: bool = False,
) -> SpyProcess:
    """
    `twistedspy` (or `module`, a wrapper of its cli) on a free loopback port with its
    files in `folder`, run as the systemd units run it (glibc's per-thread caches off),
    once it answers /-/healthy; `tls` for an `ssl:` listener, which plain HTTP cannot ask
    whether it is healthy (its start event, written once it listens, is enough).
    """
    folder = folder.resolve()  # the server runs in it: relative paths would move
    folder.mkdir(parents=True, exist_ok=True)
    argv = [
        PYTHON,
        "-m",
        module,
        "--pidfile=",
        "--port=0",
        f"--log-dir={folder / 'logs'}",
        f"--message-file={folder / 'messages.jsonl'}",
        *options,
    ]
    tunables = with_no_thread_cache(os.environ)["GLIBC_TUNABLES"]
    server = SpyProcess.start(
        argv,
        folder,
        folder / "logs",
        preexec_fn=preexec_fn,
        **{"GLIBC_TUNABLES": tunables, **(env or {})},
    )
    deadline = time.monotonic() + START_DEADLINE
    while not tls and server.get("/-/healthy") != 200:
        if time.monotonic() > deadline:
            server.kill()
            raise AssertionError(f"twistedspy never answered: {server.output_text()}")
        time.sleep(0.1)
    return server
