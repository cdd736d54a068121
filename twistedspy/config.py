# -*- test-case-name: tests.test_config -*-
"""Settings in three layers: built-in defaults, then the config file, then the command line.

Every entry point (`twistd spy`, `twistd -y spy.tac`, the `twistedspy` script) calls
`load_settings`, so they all read the same file the same way and refuse the same mistakes
with the same messages.

The config file holds `Key = value` lines (docs/configuration.md): keys are
case-insensitive, `#` starts a comment (a whole line, or after a value), blank lines are
ignored. Relative paths in the file are taken from the file's own folder, so a config
file means the same thing whatever the current directory; relative paths on the command
line are taken from the current directory, as any command-line tool does.

Decisions of this parser:
- `Security` accepts `on`/`off` and also `yes`/`no`, `true`/`false`, `1`/`0`.
- `Modules = all` serves every module; `AllowedHosts = *` is kept as the one-name tuple
  `("*",)`, which the Host check reads as "any host".
- `Insecure = yes` in the file does what `--insecure` does, so that a `twistd -y spy.tac`
  deployment, which has no command line, can serve a non-loopback address without security.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

from twistedspy.settings import Settings

if TYPE_CHECKING:
    from twisted.internet.interfaces import IAddress

#: the config file's name, looked for in an entry point's default folder
DEFAULT_CONFIG_NAME = "spy.conf"

#: the environment variable naming the config file when `-c` is not given
CONFIG_ENV = "TWISTEDSPY_CONFIG"


class ConfigError(Exception):
    """A setting that stops start-up; its str is the one message to show the user."""


class _BadValue(ValueError):
    """A value that does not parse; the message says why, without naming where it came from."""


# --- value parsers: text -> typed value, or _BadValue with the reason --------------------


def _address(text: str) -> str:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise _BadValue(f"{text!r} is not an IP address (e.g. 127.0.0.1 or ::1)") from None
    return text


def _port(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,5}", text) or int(text) > 65535:
        raise _BadValue(f"{text!r} is not a port number (0-65535)")
    return int(text)


def _endpoint(text: str) -> str:
    # The endpoint grammar belongs to the plugin named by its prefix; serverFromString checks
    # the rest when the service starts listening.
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+:.*", text, flags=re.DOTALL):
        raise _BadValue(f"{text!r} is not a Twisted endpoint string (e.g. tcp:8080)")
    return text


_TRUE = frozenset({"on", "yes", "true", "1"})
_FALSE = frozenset({"off", "no", "false", "0"})


def _switch(text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise _BadValue(f"{text!r} is neither on nor off")


def _client_count(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
        raise _BadValue(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _request_count(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,10}", text):
        raise _BadValue(f"{text!r} is not a whole number of requests (0 or more)")
    return int(text)


def _path(text: str) -> Path:
    return Path(text).expanduser()


def _names(text: str, what: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(","))
    if any(not name or any(c.isspace() for c in name) for name in names):
        raise _BadValue(f"{text!r} is not a comma-separated list of {what}")
    return names


def _modules(text: str) -> tuple[str, ...] | None:
    if text.lower() == "all":
        return None
    return _names(text, "module names (or 'all')")


def _hosts(text: str) -> tuple[str, ...]:
    if text == "*":
        return ("*",)
    return _names(text, "host names (or '*')")


def _log_mode(text: str) -> str:
    if text.lower() not in ("short", "verbose"):
        raise _BadValue(f"{text!r} is neither short nor verbose")
    return text.lower()


def _number(text: str) -> float:
    """The number `text` spells, NaN if none: every range check then refuses it."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def _positive(unit: str = "") -> Callable[[str], float]:
    """A parser of positive numbers (fractions allowed), of `unit` if given."""
    spelled = f" of {unit}" if unit else ""

    def parse(text: str) -> float:
        number = _number(text)
        if not (math.isfinite(number) and number > 0):
            raise _BadValue(f"{text!r} is not a positive number{spelled}")
        return number

    return parse


_seconds = _positive("seconds")
_milliseconds = _positive("milliseconds")
_hours = _positive("hours")
_ratio = _positive()


def _networks(text: str) -> tuple[str, ...]:
    if text.lower() == "none":
        return ()
    networks = _names(text, "IP addresses or networks (or 'none')")
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise _BadValue(f"{network!r} is not an IP address or network") from None
    return networks


def _tls_version(text: str) -> str:
    if text not in ("1.2", "1.3"):
        raise _BadValue(f"{text!r} is not a TLS version this server offers (1.2 or 1.3)")
    return text


def _ciphers(text: str) -> str:
    # Asked of OpenSSL itself, so that a typo stops start-up instead of every handshake.
    from OpenSSL import SSL  # noqa: PLC0415 - only when a cipher list is given

    try:
        SSL.Context(SSL.TLS_METHOD).set_cipher_list(text.encode("ascii"))
    except (SSL.Error, UnicodeEncodeError):
        raise _BadValue(f"{text!r} selects no cipher OpenSSL knows") from None
    return text


def _whole_seconds(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,10}", text):
        raise _BadValue(f"{text!r} is not a whole number of seconds (0 or more)")
    return int(text)


def _percent(text: str) -> float:
    percent = _number(text)
    if not 0 <= percent <= 100:
        raise _BadValue(f"{text!r} is not a percentage (0 to 100)")
    return percent


@dataclass(frozen=True, slots=True)
class Key:
    """One setting as the config file and the command line spell it."""

    #: the config file's spelling, e.g. "Port"
    name: str
    #: the `Settings` field it sets
    field: str
    #: the long command-line option, e.g. "--port"
    option: str
    parse: Callable[[str], object]
    #: a path, which the file takes relative to its own folder
    is_path: bool = False


#: every config key, in the order of docs/configuration.md
KEYS: tuple[Key, ...] = (
    Key("Address", "address", "--addr", _address),
    Key("Port", "port", "--port", _port),
    Key("Listen", "listen", "--listen", _endpoint),
    Key("Security", "security", "--security", _switch),
    Key("AccountFile", "account_file", "--accounts", _path, is_path=True),
    Key("CredentialReuse", "credential_reuse", "--credential-reuse", _request_count),
    Key("MaxClients", "max_clients", "--max-clients", _client_count),
    Key(
        "MaxClientsPerAddress",
        "max_clients_per_address",
        "--max-clients-per-address",
        _client_count,
    ),
    Key("ModulesDir", "modules_dir", "--moddir", _path, is_path=True),
    Key("Modules", "modules", "--modules", _modules),
    Key("TextfileDir", "textfile_dir", "--textfile-dir", _path, is_path=True),
    Key("LogDir", "log_dir", "--log-dir", _path, is_path=True),
    Key("LogMode", "log_mode", "--verbose", _log_mode),
    Key("RequestTimeout", "request_timeout", "--request-timeout", _seconds),
    Key("RequestLineTimeout", "request_line_timeout", "--request-line-timeout", _seconds),
    Key("KeepAliveTimeout", "keepalive_timeout", "--keepalive-timeout", _seconds),
    Key("ModuleTimeout", "module_timeout", "--module-timeout", _seconds),
    Key("MessageFile", "message_file", "--message-file", _path, is_path=True),
    Key("MessageMaxBytes", "message_max_bytes", "--message-max-bytes", _client_count),
    Key("MessageRate", "message_rate", "--message-rate", _client_count),
    Key("AllowedHosts", "allowed_hosts", "--allowed-hosts", _hosts),
    Key("Insecure", "insecure", "--insecure", _switch),
    Key("TrustedProxies", "trusted_proxies", "--trusted-proxies", _networks),
    Key("TLSMinVersion", "tls_min_version", "--tls-min-version", _tls_version),
    Key("TLSCiphers", "tls_ciphers", "--tls-ciphers", _ciphers),
    Key("HSTSMaxAge", "hsts_max_age", "--hsts-max-age", _whole_seconds),
    Key("DiskAwaitLimit", "disk_await_limit", "--disk-await-limit", _milliseconds),
    Key("DiskFullPercent", "disk_full_percent", "--disk-full-percent", _percent),
    Key("DiskFillHours", "disk_fill_hours", "--disk-fill-hours", _hours),
    Key(
        "MemoryAvailablePercent",
        "memory_available_percent",
        "--memory-available-percent",
        _percent,
    ),
    Key("SwapUsedPercent", "swap_used_percent", "--swap-used-percent", _percent),
    Key("LoadPerCPU", "load_per_cpu", "--load-per-cpu", _ratio),
    Key("CPUBusyPercent", "cpu_busy_percent", "--cpu-busy-percent", _percent),
    Key("StuckProcessSeconds", "stuck_process_seconds", "--stuck-process-seconds", _seconds),
)

_BY_NAME = {key.name.lower(): key for key in KEYS}
_BY_FIELD = {key.field: key for key in KEYS}
assert set(_BY_FIELD) == {f.name for f in fields(Settings)}, "a Settings field has no key"


def parse_option(field: str, text: str) -> object:
    """
    Parse a command-line value for the `Settings` field `field`.

    Raises ConfigError naming the option, e.g. `--port: 'abc' is not a port number (0-65535)`.
    """
    key = _BY_FIELD[field]
    try:
        return key.parse(text.strip())
    except _BadValue as e:
        raise ConfigError(f"{key.option}: {e}") from None


def read_config_file(path: Path) -> dict[str, object]:
    """
    The settings a config file sets, by `Settings` field, with paths made absolute.

    Raises ConfigError naming the file and line for anything wrong in it.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigError(f"{path}: cannot read the config file: {reason}") from None
    folder = path.resolve().parent
    found: dict[str, object] = {}
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        where = f"{path}:{number}"
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, equals, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not name:
            raise ConfigError(f"{where}: expected 'Key = value', found {line!r}")
        key = _BY_NAME.get(name.lower())
        if key is None:
            known = ", ".join(k.name for k in KEYS)
            raise ConfigError(f"{where}: unknown key {name!r} (known keys: {known})")
        if key.field in first_line:
            raise ConfigError(
                f"{where}: {key.name}: set twice (first on line {first_line[key.field]})"
            )
        if not value:
            raise ConfigError(f"{where}: {key.name}: no value given")
        try:
            parsed = key.parse(value)
        except _BadValue as e:
            raise ConfigError(f"{where}: {key.name}: {e}") from None
        if key.is_path and isinstance(parsed, Path):
            parsed = folder / parsed
        found[key.field] = parsed
        first_line[key.field] = number
    return found


def find_config_file(
    config_path: Path | None,
    *,
    default_dir: Path,
    environ: Mapping[str, str] | None = None,
) -> Path | None:
    """
    The config file to read: `-c FILE`, else `$TWISTEDSPY_CONFIG`, else `spy.conf` in
    `default_dir` if there is one, else none. A file named explicitly must exist.
    """
    environ = os.environ if environ is None else environ
    if config_path is not None:
        if not config_path.is_file():
            raise ConfigError(f"{config_path}: no such config file (given with --config)")
        return config_path
    named = environ.get(CONFIG_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file (named by ${CONFIG_ENV})")
        return path
    default = default_dir / DEFAULT_CONFIG_NAME
    return default if default.is_file() else None


def load_settings(
    overrides: Mapping[str, object],
    config_path: Path | None,
    *,
    default_dir: Path,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """
    The settings to serve with: defaults, then the config file, then `overrides`.

    `overrides` are command-line values by `Settings` field, already parsed (see
    `parse_option`). `config_path` is `-c FILE`, or None to look for one as
    `find_config_file` does. Raises ConfigError with the one message to show.
    """
    unknown = set(overrides) - set(_BY_FIELD)
    if unknown:
        raise TypeError(f"not Settings fields: {sorted(unknown)}")
    path = find_config_file(config_path, default_dir=default_dir, environ=environ)
    from_file = read_config_file(path) if path is not None else {}
    settings = replace(Settings(), **{**from_file, **overrides})  # type: ignore[arg-type]
    check_settings(settings)
    return settings


def is_loopback(address: str) -> bool:
    """Whether an IP address (or `localhost`) names this machine's loopback interface."""
    if address.lower() == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def is_local(bound: IAddress) -> bool:
    """
    Whether a bound listening socket can be reached from this machine only.

    Decided on the address the socket actually has, whatever endpoint string made it
    (Twisted takes the last `interface=` given; `haproxy:`, `systemd:` and plugins wrap
    or adopt sockets a string cannot describe). A UNIX socket is local: it has no network
    address, and the file's permissions decide who may connect. Any other kind of
    address is not known to be local, so it is not.
    """
    if isinstance(bound, UNIXAddress):
        return True
    if isinstance(bound, IPv4Address | IPv6Address):
        return is_loopback(bound.host)
    return False


def _refusal(where: str) -> ConfigError:
    return ConfigError(
        f"refusing to serve {where} without security: it is not a loopback address, "
        f"so anyone who can reach it would see this machine. Turn security on "
        f"('--security on --accounts FILE', or 'Security = on' and 'AccountFile = FILE' "
        f"in the config file; make FILE with twistedspy-passwd), or bind 127.0.0.1, "
        f"or pass --insecure (or 'Insecure = yes') to serve it anyway"
    )


def check_settings(settings: Settings) -> None:
    """
    Refuse settings that must not start the server, whatever layer they came from.

    An `Address` is known before binding, so a non-loopback one is refused before
    anything is opened; a `Listen` endpoint is judged by `check_listening` on the socket
    it binds.
    """
    if settings.security or settings.insecure or settings.listen is not None:
        return
    if not is_loopback(settings.address):
        raise _refusal(settings.address)


def check_listening(settings: Settings, bound: IAddress) -> None:
    """Refuse to serve on a socket reachable from other machines while Security is off."""
    if settings.security or settings.insecure or is_local(bound):
        return
    host = getattr(bound, "host", None)
    port = getattr(bound, "port", None)
    raise _refusal(f"{host} port {port}" if host is not None else repr(bound))
