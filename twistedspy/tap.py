# -*- test-case-name: tests.test_entrypoints -*-
"""`twistd spy`: the command-line options of docs/configuration.md and the service they make.

The plugin file `twisted/plugins/spy_twistd.py` names this module; `twistedspy.cli` reuses
`Options` for the `twistedspy` script.
"""

from __future__ import annotations

from pathlib import Path

from twisted.application.service import IService
from twisted.python import usage

from twistedspy import __version__
from twistedspy.config import ConfigError, load_settings, parse_option
from twistedspy.settings import Settings

#: (long option, short option, Settings field, help text) for options taking a value
_PARAMETERS: tuple[tuple[str, str | None, str, str], ...] = (
    ("addr", "a", "address", "IP address to bind [default: 127.0.0.1]"),
    ("port", "p", "port", "port to bind; 0 picks a free one and logs it [default: 8080]"),
    (
        "listen",
        None,
        "listen",
        "Twisted server endpoint, e.g. ssl:8443:privateKey=key.pem:certKey=cert.pem or "
        "systemd:domain=INET:index=0; overrides --addr and --port "
        "[default: tcp on --addr and --port]",
    ),
    (
        "security",
        "s",
        "security",
        "on: every page needs valid credentials; off: none asked, for testing [default: off]",
    ),
    (
        "accounts",
        None,
        "account_file",
        "htpasswd accounts file, user:bcrypt-hash a line (see twistedspy-passwd) "
        "[default: accounts]",
    ),
    (
        "credential-reuse",
        None,
        "credential_reuse",
        "requests a connection reuses its login for, with the same credentials, before the "
        "next is checked again; 0 checks every request [default: 100]",
    ),
    (
        "max-clients",
        None,
        "max_clients",
        "connections served at once; further ones wait their turn [default: 64]",
    ),
    (
        "max-clients-per-address",
        None,
        "max_clients_per_address",
        "connections served at once from one address (IPv6: one /64); its further ones "
        "wait their turn [default: a quarter of --max-clients]",
    ),
    (
        "moddir",
        "m",
        "modules_dir",
        "drop-in folder of extra info modules (Twisted plugin files) [default: none]",
    ),
    (
        "modules",
        None,
        "modules",
        "comma list of modules to serve; the index is always served [default: all]",
    ),
    (
        "textfile-dir",
        None,
        "textfile_dir",
        "folder of *.prom files /metrics adds, as node_exporter's textfile collector "
        "[default: none]",
    ),
    ("log-dir", None, "log_dir", "folder of the daily journal files [default: logs]"),
    (
        "request-timeout",
        None,
        "request_timeout",
        "seconds to receive a whole request once begun [default: 10]",
    ),
    (
        "request-line-timeout",
        None,
        "request_line_timeout",
        "seconds a new connection has to send its request line [default: 3]",
    ),
    (
        "keepalive-timeout",
        None,
        "keepalive_timeout",
        "idle seconds before a persistent connection is closed [default: 5]",
    ),
    (
        "module-timeout",
        None,
        "module_timeout",
        "seconds a module may take before the request gets 504 [default: 10]",
    ),
    (
        "message-file",
        None,
        "message_file",
        "where the message module stores what it receives [default: messages.jsonl]",
    ),
    (
        "message-max-bytes",
        None,
        "message_max_bytes",
        "bytes past which the message file takes no more messages (507) [default: 10485760]",
    ),
    (
        "message-rate",
        None,
        "message_rate",
        "messages one client address may post a minute (429 past it) [default: 10]",
    ),
    (
        "allowed-hosts",
        None,
        "allowed_hosts",
        "comma list of host names the Host header may carry, or * for any "
        "[default: loopback names and the bound address while security is off, any while on]",
    ),
    (
        "trusted-proxies",
        None,
        "trusted_proxies",
        "comma list of proxy addresses or networks whose X-Forwarded-For names the client "
        "for the login throttle and the journal [default: none]",
    ),
    (
        "tls-min-version",
        None,
        "tls_min_version",
        "oldest TLS version an ssl: listener accepts, 1.2 or 1.3 [default: 1.2]",
    ),
    (
        "tls-ciphers",
        None,
        "tls_ciphers",
        "OpenSSL cipher list for TLS 1.2 [default: Mozilla intermediate: ECDHE/DHE with "
        "AES-GCM or ChaCha20-Poly1305]",
    ),
    (
        "hsts-max-age",
        None,
        "hsts_max_age",
        "send Strict-Transport-Security with this max-age on TLS connections; 0 sends "
        "none [default: 0]",
    ),
    (
        "disk-await-limit",
        None,
        "disk_await_limit",
        "milliseconds of average wait per request past which /diskio marks a device "
        "[default: 100]",
    ),
    (
        "disk-full-percent",
        None,
        "disk_full_percent",
        "mark a file system at least this % full [default: 90]",
    ),
    (
        "disk-fill-hours",
        None,
        "disk_fill_hours",
        "mark a file system predicted full within this many hours, under 40 % available "
        "[default: 24]",
    ),
    (
        "memory-available-percent",
        None,
        "memory_available_percent",
        "mark memory available below this % of the total [default: 10]",
    ),
    (
        "swap-used-percent",
        None,
        "swap_used_percent",
        "mark swap used above this %; 0 marks any swap in use [default: 0]",
    ),
    ("load-per-cpu", None, "load_per_cpu", "mark a load average per CPU above this [default: 1]"),
    (
        "cpu-busy-percent",
        None,
        "cpu_busy_percent",
        "mark a CPU at least this % busy [default: 90]",
    ),
    (
        "stuck-process-seconds",
        None,
        "stuck_process_seconds",
        "mark a process in state D (uninterruptible) this many seconds [default: 60]",
    ),
)

#: (long option, short option, Settings field, value it sets, help text) for flags
_FLAGS: tuple[tuple[str, str | None, str, object, str], ...] = (
    (
        "verbose",
        "v",
        "log_mode",
        "verbose",
        "journal connections and headers too [default: short]",
    ),
    (
        "insecure",
        None,
        "insecure",
        True,
        "serve a non-loopback address with security off (refused without this)",
    ),
)


class Options(usage.Options):
    """The options of `twistd spy`; `postOptions` leaves the result in `self.settings`."""

    synopsis = "[options]"
    longdesc = (
        "Serve Linux system information to browsers, scripts and Prometheus. Settings come "
        "from built-in defaults, then the config file, then these options."
    )
    optParameters = [  # noqa: N815 - twisted.python.usage's name
        [long, short, None, help_text] for long, short, _field, help_text in _PARAMETERS
    ] + [
        [
            "config",
            "c",
            None,
            "config file [default: $TWISTEDSPY_CONFIG, else spy.conf in the current folder "
            "if present]",
        ],
    ]
    optFlags = [  # noqa: N815 - twisted.python.usage's name
        [long, short, help_text] for long, short, _f, _v, help_text in _FLAGS
    ]

    #: the folder searched for spy.conf when neither -c nor $TWISTEDSPY_CONFIG names one
    default_dir: Path | None = None

    settings: Settings

    # usage.Options leaves -h out (it clashes with other tools' --host); the original
    # program had it.
    opt_h = usage.Options.opt_help

    def opt_version(self) -> None:
        """Print the version of twistedspy and exit."""
        print(f"twistedspy {__version__}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        try:
            overrides: dict[str, object] = {}
            for long, _short, field, _help in _PARAMETERS:
                value = self[long]
                if value is not None:
                    overrides[field] = parse_option(field, value)
            for long, _short, field, flag_value, _help in _FLAGS:
                if self[long]:
                    overrides[field] = flag_value
            config = self["config"]
            self.settings = load_settings(
                overrides,
                None if config is None else Path(config),
                default_dir=Path.cwd() if self.default_dir is None else self.default_dir,
            )
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None

    def command_line(self) -> list[str]:
        """These options as arguments for `twistd spy`, for handing on to twistd."""
        args: list[str] = []
        for long, _short, _field, _help in _PARAMETERS:
            if self[long] is not None:
                args.append(f"--{long}={self[long]}")
        if self["config"] is not None:
            args.append(f"--config={self['config']}")
        args.extend(f"--{long}" for long, _s, _f, _v, _h in _FLAGS if self[long])
        return args


def makeService(options: Options) -> IService:
    """The twistedspy service for `twistd spy`."""
    # Imported here so that `twistd --help` does not load the whole server.
    from twistedspy.service import make_command_line_service  # noqa: PLC0415

    return make_command_line_service(options.settings)
