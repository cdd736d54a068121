# -*- test-case-name: tests.test_process_worker -*-
"""A long-lived child process that does a module's GIL-heavy work, spoken to with AMP.

Threads share the server's one GIL: a page that scans and renders thousands of rows in a
worker thread still takes the GIL from the reactor for most of its time, and small pages
wait behind it (docs/performance.md, "The processes page under load"). A child process
has a GIL of its own. The child is started with `spawnProcess` and speaks AMP
(`twisted.protocols.amp`) over its stdin and stdout, one end of a socket pair; the
parent's side is a `Worker`, a Twisted Service that starts it with the server, restarts
it with a growing delay when it dies, and ends it at stop. The child ends by itself when
its stdin reaches end of file, so that it never outlives a parent that was killed
(docs/architecture.md, "The process worker").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.internet.protocol import Factory, ProcessProtocol
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure
from typing_extensions import override

import twistedspy

if TYPE_CHECKING:
    from twisted.internet.base import DelayedCall
    from twisted.internet.interfaces import ITCPTransport

#: seconds before the first restart; each failed start doubles it, up to RESTART_MAX
RESTART_FIRST: Final = 0.2
RESTART_MAX: Final = 30.0
#: seconds a stopping child is given to leave after its socket closes, before SIGKILL
STOP_GRACE: Final = 2.0


def child_argv(module: str, *arguments: str) -> list[str]:
    """
    The command line that runs `module` as the child, with `arguments` in sys.argv[1:],
    through `twistedspy.child` (which leaves Twisted's TLS out of the child).

    In a session of its own (setsid(1) execs, keeping the PID): a Ctrl+C in a terminal
    reaches the whole foreground process group, and would interrupt the child with a
    KeyboardInterrupt traceback in the server's log; the child leaves when the server
    closes its stdin instead.
    """
    setsid = shutil.which("setsid")
    launcher = [sys.executable, "-m", "twistedspy.child", module]
    return [*([setsid] if setsid else []), *launcher, *arguments]


class WorkerUnavailable(Exception):
    """The child is not running, or died before it answered: the work was not done."""


class LargeBytes(amp.Argument):
    """
    Bytes of any length. One AMP value holds at most 64 KiB and a page of processes is
    well over a megabyte, so the bytes go into as many keys as they need: `name` holds
    the count and `name.0`, `name.1` … the pieces.
    """

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def toBox(self, name: bytes, strings: Any, objects: Any, proto: Any) -> None:  # noqa: N802 - AMP's name
        value: bytes = objects.pop(name.decode("ascii"))
        size = amp.MAX_VALUE_LENGTH
        pieces = [value[at : at + size] for at in range(0, len(value), size)]
        strings[name] = str(len(pieces)).encode("ascii")
        for number, piece in enumerate(pieces):
            strings[name + b".%d" % number] = piece

    def fromBox(self, name: bytes, strings: Any, objects: Any, proto: Any) -> None:  # noqa: N802 - AMP's name
        count = int(strings.pop(name))
        pieces = [strings.pop(name + b".%d" % number) for number in range(count)]
        objects[name.decode("ascii")] = b"".join(pieces)


class Ready(amp.Command):
    """What the child sends the parent once it is set up to answer: until then, calls
    fail at once instead of waiting behind the child's imports (each call has a time
    limit, and a child still starting would be killed for using it up)."""

    arguments = []
    response = []
    requiresAnswer = False  # noqa: N815 - AMP's name


class _Connects(Factory):
    """Hands the adopted socket to the one AMP protocol made for it."""

    def __init__(self, protocol: amp.AMP) -> None:
        self._protocol = protocol

    @override
    def buildProtocol(self, addr: object) -> amp.AMP:
        return self._protocol


class _ParentSide(amp.AMP):
    def __init__(self, child: _Child) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._child = child

    @Ready.responder
    def ready(self) -> dict[str, object]:
        self._child.ready = True
        return {}


class _Child(ProcessProtocol):
    """One run of the child: its end tells the Worker."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.amp = _ParentSide(self)
        #: whether the child has said it is ready (`Ready`)
        self.ready = False
        self.ended: Deferred[None] = Deferred()

    @override
    def processEnded(self, reason: Failure) -> None:
        # The socket closes with the child; should anything still hold it, it is cut.
        if self.amp.transport is not None:
            cast("ITCPTransport", self.amp.transport).abortConnection()
        self.ended.callback(None)
        self.worker._ended(self, reason)


class Worker(Service):
    """
    The parent's side: starts `argv` as a child speaking AMP on its stdin and stdout (a
    socket), and keeps one running while the service runs.

    `call` sends one command and fires with its answer; it fails with
    `WorkerUnavailable` at once while no child runs, and when the child dies first. A
    call that takes longer than `timeout` seconds kills the child (a stuck child answers
    nothing more), which is then restarted like any child that died.
    """

    def __init__(
        self,
        reactor: Any,
        argv: Sequence[str],
        log: Logger,
        timeout: float,
        what: str = "worker",
    ) -> None:
        self._reactor = reactor
        self.argv = list(argv)
        self._log = log
        self.timeout = timeout
        self.what = what
        self._child: _Child | None = None
        self._restart: DelayedCall | None = None
        self._delay = RESTART_FIRST
        #: children started so far
        self.starts = 0
        #: calls sent and not yet answered
        self.pending = 0

    def is_ready(self) -> bool:
        """Whether a child runs and has said it is ready: calls go to it."""
        return self._child is not None and self._child.ready

    @property
    def pid(self) -> int | None:
        child = self._child
        if child is None or child.transport is None:
            return None
        pid: int | None = child.transport.pid
        return pid

    @override
    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._spawn()

    def _spawn(self) -> None:
        self._restart = None
        child = _Child(self)
        self._child = child
        self.starts += 1
        # The child imports the same twistedspy as the server, wherever that came from.
        here = str(Path(twistedspy.__file__).resolve().parent.parent)
        paths = [here, *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        # The child's stdin and stdout are one end of a socket pair, not two pipes:
        # Twisted reads a pipe 8 KiB at a time and a socket 64 KiB, and a page is
        # megabytes. fd 2 is the server's own stderr (twistd's log): a traceback in the
        # child lands where the server's would.
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with ours, theirs:
            self._reactor.spawnProcess(
                child,
                self.argv[0],
                self.argv,
                env=env,
                childFDs={0: theirs.fileno(), 1: theirs.fileno(), 2: 2},
            )
            # It takes a copy of the descriptor; ours closes with the block.
            self._reactor.adoptStreamConnection(
                ours.fileno(), socket.AF_UNIX, _Connects(child.amp)
            )

    def _ended(self, child: _Child, reason: Failure) -> None:
        if child is not self._child:
            return
        self._child = None
        if not self.running:
            return
        if not reason.check(ProcessDone):
            self._log.warn(
                "{what} ended ({why}); starting another in {delay:.1f} s",
                what=self.what,
                why=reason.getErrorMessage(),
                delay=self._delay,
            )
        self._restart = self._reactor.callLater(self._delay, self._spawn)
        self._delay = min(self._delay * 2, RESTART_MAX)

    def call(self, command: type[amp.Command], **arguments: object) -> Deferred[dict[str, Any]]:
        """The child's answer to `command`; see the class docstring for failures."""
        child = self._child
        if child is None or not child.ready:
            return fail(WorkerUnavailable(f"the {self.what} is not running"))
        asked: Deferred[dict[str, Any]] = child.amp.callRemote(command, **arguments)  # type: ignore[no-untyped-call]
        # Not cancellable: AMP would later answer a Deferred that has fired. Callers get
        # their own Deferred (SingleFlight), and the time limit is kept here.
        stuck = self._reactor.callLater(self.timeout, self._kill, child)
        self.pending += 1

        def answered(result: dict[str, Any] | Failure) -> dict[str, Any] | Failure:
            self.pending -= 1
            if stuck.active():
                stuck.cancel()
            if isinstance(result, Failure):
                if child.ended.called or not result.check(amp.RemoteAmpError):
                    raise WorkerUnavailable(
                        f"the {self.what} ended before it answered"
                    ) from result.value
                return result
            self._delay = RESTART_FIRST  # a child that answers has started well
            return result

        return asked.addBoth(answered)

    def _kill(self, child: _Child) -> None:
        self._log.warn("{what} took too long; ending it", what=self.what)
        _signal(child, signal.SIGKILL)

    @override
    def stopService(self) -> Deferred[None]:
        """Close the child's socket (it leaves at end of file); SIGKILL past STOP_GRACE."""
        super().stopService()  # type: ignore[no-untyped-call]
        if self._restart is not None and self._restart.active():
            self._restart.cancel()
        self._restart = None
        child = self._child
        if child is None:
            return succeed(None)
        if child.amp.transport is not None:
            child.amp.transport.loseConnection()
        late = self._reactor.callLater(STOP_GRACE, _signal, child, signal.SIGKILL)
        return child.ended.addCallback(lambda _: late.cancel() if late.active() else None)


def _signal(child: _Child, number: int) -> None:
    if child.transport is None:
        return
    with contextlib.suppress(ProcessExitedAlready):
        child.transport.signalProcess(number)


def serve_stdio(make: Callable[[], amp.AMP]) -> None:
    """
    The child's main loop: the AMP protocol `make` gives, on stdin and stdout, until
    stdin reaches end of file (the parent closed it, or died). Call it once set up: it
    tells the parent the child is ready.
    """
    from twisted.internet import reactor, stdio  # noqa: PLC0415 - the child's reactor

    protocol = make()
    lost = protocol.connectionLost

    def connection_lost(reason: Failure) -> None:
        lost(reason)  # type: ignore[no-untyped-call]
        if reactor.running:
            reactor.stop()

    protocol.connectionLost = connection_lost  # type: ignore[method-assign]
    stdio.StandardIO(protocol)
    protocol.callRemote(Ready)
    reactor.run()
    sys.stdout.flush()
