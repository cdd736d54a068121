# -*- test-case-name: tests.test_config -*-
"""The one typed settings object that every part of the server reads.

Defaults here are docs/configuration.md's; `twistedspy.config` layers the config file and
the command line over them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from twistedspy.thresholds import DEFAULT as THRESHOLDS

LogMode = Literal["short", "verbose"]

#: Mozilla's "intermediate" TLS 1.2 ciphers (ssl-config.mozilla.org, guidelines 5.7):
#: ECDHE or DHE key exchange only (forward secrecy), AEAD only (GCM, ChaCha20-Poly1305).
TLS_INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
)


@dataclass(frozen=True, slots=True)
class Settings:
    address: str = "127.0.0.1"
    port: int = 8080
    #: a Twisted server endpoint string; overrides address and port when set
    listen: str | None = None
    security: bool = False
    account_file: Path = Path("accounts")
    #: requests a connection's login is reused for, with the same credentials, before it
    #: goes through the Portal again (docs/security.md); 0 asks the Portal every request
    credential_reuse: int = 100
    max_clients: int = 64
    #: connections served at once from one address (IPv6: one /64); None: MaxClients / 4
    max_clients_per_address: int | None = None
    modules_dir: Path | None = None
    #: a folder of `*.prom` files added to /metrics, as node_exporter's textfile collector
    textfile_dir: Path | None = None
    #: names of the modules to serve; None serves all (the index is always served)
    modules: tuple[str, ...] | None = None
    log_dir: Path = Path("logs")
    log_mode: LogMode = "short"
    request_timeout: float = 10.0
    #: Seconds a new connection has to send its request line: a few, far less than
    #: request_timeout, so that connections which send nothing whole cannot hold the slots.
    request_line_timeout: float = 3.0
    keepalive_timeout: float = 5.0
    module_timeout: float = 10.0
    message_file: Path = Path("messages.jsonl")
    #: the size past which MessageFile takes no more messages (507)
    message_max_bytes: int = 10 * 1024 * 1024
    #: messages one client address may post a minute (429 past it)
    message_rate: int = 10
    #: host names the Host header may carry; None means the default rule (docs/security.md,
    #: "Accounts, logins and the Host allow-list")
    allowed_hosts: tuple[str, ...] | None = None
    #: serve without security on a non-loopback address
    insecure: bool = False
    #: proxies (addresses or networks) whose X-Forwarded-For names the client; none
    trusted_proxies: tuple[str, ...] = ()
    #: the oldest TLS version an `ssl:` listener accepts: "1.2" or "1.3"
    tls_min_version: str = "1.2"
    #: the OpenSSL cipher list for TLS 1.2 (every TLS 1.3 suite is forward-secret AEAD)
    tls_ciphers: str = TLS_INTERMEDIATE_CIPHERS
    #: Strict-Transport-Security max-age in seconds on TLS connections; 0 sends none
    hsts_max_age: int = 0
    #: /diskio marks a device whose requests took longer than this on average, in ms
    disk_await_limit: float = 100.0
    #: the limits past which a value is marked (twistedspy/thresholds.py)
    disk_full_percent: float = THRESHOLDS.disk_full_percent
    disk_fill_hours: float = THRESHOLDS.disk_fill_hours
    memory_available_percent: float = THRESHOLDS.memory_available_percent
    swap_used_percent: float = THRESHOLDS.swap_used_percent
    load_per_cpu: float = THRESHOLDS.load_per_cpu
    cpu_busy_percent: float = THRESHOLDS.cpu_busy_percent
    stuck_process_seconds: float = THRESHOLDS.stuck_process_seconds

    def endpoint(self) -> str:
        """The server endpoint description to listen on."""
        if self.listen is not None:
            return self.listen
        address = self.address.replace(":", r"\:")
        return f"tcp:{self.port}:interface={address}"
