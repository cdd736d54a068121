"""twistedspy as a real process, started the ways an administrator starts it.

The process runs in its own session: a child started from a non-interactive shell may
inherit SIGINT ignored (TWISTED-NOTES), and a session of its own also keeps a signal
meant for it away from the test runner. Its port is read from the journal's `start`
event, so every test can ask for port 0.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from twistedspy.config import CONFIG_ENV

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TWISTD = [PYTHON, "-c", "from twisted.scripts.twistd import run; run()"]
CLI = [PYTHON, "-m", "twistedspy.cli"]
#: a safety net for a process that never says it started; not a measured time
START_DEADLINE = 60.0

_START = re.compile(r"^\S+ info start .*\bport=(\d+)", re.MULTILINE)

#: A module that takes its time, for requests that are still in flight when a signal
#: comes. It touches the file named by $SPY_TEST_STARTED when a collection begins.
SLOW_PLUGIN = """\
import os
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.plugin import IPlugin
from zope.interface import implementer

from twistedspy.interfaces import IInfoModule, IReactorSafe
from twistedspy.report import Report, Table


# It returns a Deferred: safe to call on the reactor, and it must be called there.
@implementer(IPlugin, IInfoModule, IReactorSafe)
class Slow:
    name = "slow"
    title = "Slow"
    description = "Answers after ?s= seconds."

    def collect(self, query):
        Path(os.environ["SPY_TEST_STARTED"]).touch()
        rows = [[n, "x" * 100] for n in range(1000)]
        report = Report(title="Slow", tables=[Table(title="rows", columns=["n", "x"], rows=rows)])
        return deferLater(reactor, float(query.get("s", "1")), lambda: report)


slow = Slow()
"""

#: A plain module whose collection blocks its worker thread for `?s=` seconds (ten minutes
#: by default), as a hung mount does. It touches $SPY_TEST_STARTED, if set, as it begins.
STUCK_PLUGIN = """\
import os
import time
from pathlib import Path

from twisted.plugin import IPlugin
from zope.interface import implementer

from twistedspy.interfaces import IInfoModule
from twistedspy.report import Report


@implementer(IPlugin, IInfoModule)
class Stuck:
    name = "stuck"
    title = "Stuck"
    description = "Sleeps, in its thread."

    def collect(self, query):
        started = os.environ.get("SPY_TEST_STARTED")
        if started:
            Path(started).touch()
        time.sleep(float(query.get("s", "600")))
        return Report(title="Woke up")


stuck = Stuck()
"""


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
    def start(cls, argv: list[str], folder: Path, log_dir: Path, **env: str) -> SpyProcess:
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

    def journal(self) -> str:
        return journal_text(self.log_dir)

    def output_text(self) -> str:
        return self.output.read_text(errors="replace")

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def wait(self) -> int:
        return self.process.wait(timeout=START_DEADLINE)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
