# -*- test-case-name: tests.test_entrypoints -*-
"""`twistedspy`: the console script with the original program's options (docs/configuration.md).

It is `twistd spy` with friendlier defaults: it stays in the foreground unless `-d` is
given, and then daemonizes with twistd's pidfile (`twistd.pid`) and log (`twistd.log`). The
options are checked here first, so a mistake gets one short message and status 2 instead
of twistd's whole usage text.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from twisted.python import usage

from twistedspy import tap


class Options(tap.Options):
    """`twistd spy`'s options, plus running in the background."""

    synopsis = "Usage: twistedspy [options]"
    optFlags = [  # noqa: N815 - twisted.python.usage's name
        ["daemon", "d", "run in the background (twistd's pidfile and log) [default: off]"]
    ]
    optParameters = [  # noqa: N815
        ["pidfile", None, "twistd.pid", "pid file, for shutdown.sh"],
        [
            "logfile",
            None,
            None,
            "twistd's own log [default: the terminal; twistd.log with --daemon]",
        ],
    ]

    def twistd_arguments(self) -> list[str]:
        """The arguments for twistd that serve these options."""
        args = [] if self["daemon"] else ["--nodaemon"]
        args.append(f"--pidfile={self['pidfile']}")
        if self["logfile"] is not None:
            args.append(f"--logfile={self['logfile']}")
        return [*args, "spy", *self.command_line()]


def main(argv: Sequence[str] | None = None) -> int:
    """Run twistedspy; returns the exit status (`-h` exits 0 from within option parsing)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = Options()  # type: ignore[no-untyped-call]
    try:
        options.parseOptions(arguments)  # type: ignore[no-untyped-call]
    except usage.UsageError as e:
        print(f"twistedspy: {e}", file=sys.stderr)
        print("Try 'twistedspy --help' for the options.", file=sys.stderr)
        return 2

    # twistd runs in this process: imported only now, since it installs the reactor.
    from twisted.scripts import twistd  # noqa: PLC0415

    config = twistd.ServerOptions()  # type: ignore[attr-defined,no-untyped-call]
    try:
        config.parseOptions(options.twistd_arguments())
    except usage.UsageError as e:
        print(f"twistedspy: {e}", file=sys.stderr)
        return 2
    twistd.runApp(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
