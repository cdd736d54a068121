"""Tests for twistedspy.config: the three layers, and the messages for every mistake."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.trial.unittest import TestCase

from twistedspy.config import (
    CONFIG_ENV,
    KEYS,
    ConfigError,
    check_listening,
    find_config_file,
    load_settings,
    parse_option,
    read_config_file,
)
from twistedspy.settings import Settings


class ConfigFileMixin:
    def folder(self) -> Path:
        path = Path(self.mktemp())  # type: ignore[attr-defined]
        path.mkdir()
        return path

    def write(self, text: str, name: str = "spy.conf") -> Path:
        path = self.folder() / name
        path.write_text(text, encoding="utf-8")
        return path


class LayerTests(ConfigFileMixin, TestCase):
    def test_defaults_without_a_file(self) -> None:
        settings = load_settings({}, None, default_dir=self.folder(), environ={})
        self.assertEqual(settings, Settings())

    def test_file_over_defaults(self) -> None:
        path = self.write("Port = 9000\nMaxClients = 3\n")
        settings = load_settings({}, path, default_dir=self.folder(), environ={})
        self.assertEqual((settings.port, settings.max_clients), (9000, 3))
        self.assertEqual(settings.address, Settings().address)

    def test_command_line_over_file(self) -> None:
        path = self.write("Port = 9000\nMaxClients = 3\n")
        settings = load_settings({"port": 9001}, path, default_dir=self.folder(), environ={})
        self.assertEqual((settings.port, settings.max_clients), (9001, 3))

    def test_default_file_in_default_dir(self) -> None:
        path = self.write("Port = 9002\n")
        settings = load_settings({}, None, default_dir=path.parent, environ={})
        self.assertEqual(settings.port, 9002)

    def test_environment_names_the_file(self) -> None:
        folder = self.write("Port = 1\n").parent  # a spy.conf that must not be read
        named = self.write("Port = 9003\n", name="other.conf")
        environ = {CONFIG_ENV: str(named)}
        self.assertEqual(find_config_file(None, default_dir=folder, environ=environ), named)
        settings = load_settings({}, None, default_dir=folder, environ=environ)
        self.assertEqual(settings.port, 9003)

    def test_option_over_environment(self) -> None:
        named = self.write("Port = 9003\n")
        given = self.write("Port = 9004\n")
        environ = {CONFIG_ENV: str(named)}
        settings = load_settings({}, given, default_dir=self.folder(), environ=environ)
        self.assertEqual(settings.port, 9004)

    def test_missing_named_files(self) -> None:
        folder = self.folder()
        missing = folder / "nope.conf"
        error = self.assertRaises(
            ConfigError, find_config_file, missing, default_dir=folder, environ={}
        )
        self.assertIn(str(missing), str(error))
        self.assertIn("--config", str(error))
        error = self.assertRaises(
            ConfigError,
            find_config_file,
            None,
            default_dir=folder,
            environ={CONFIG_ENV: str(missing)},
        )
        self.assertIn(CONFIG_ENV, str(error))

    def test_every_key(self) -> None:
        path = self.write(
            """
            # a comment line
            address = ::1
            PORT = 0   # any free port
            Listen = tcp:0:interface=127.0.0.1
            Security = yes
            AccountFile = accounts.txt
            MaxClients = 2
            ModulesDir = /opt/mods
            Modules = cpu, meminfo
            LogDir = logs
            LogMode = verbose
            RequestTimeout = 1.5
            RequestLineTimeout = 0.5
            MaxClientsPerAddress = 1
            KeepAliveTimeout = 2
            ModuleTimeout = 3
            MessageFile = ~/m.jsonl
            MessageMaxBytes = 4096
            MessageRate = 3
            AllowedHosts = *
            Insecure = no
            TrustedProxies = 127.0.0.1, 10.0.0.0/8
            TLSMinVersion = 1.3
            TLSCiphers = ECDHE-RSA-AES128-GCM-SHA256
            HSTSMaxAge = 31536000
            CredentialReuse = 0
            DiskAwaitLimit = 12.5
            DiskFullPercent = 95
            DiskFillHours = 4
            MemoryAvailablePercent = 5.5
            SwapUsedPercent = 20
            LoadPerCPU = 2
            CPUBusyPercent = 99
            StuckProcessSeconds = 30
            """
        )
        here = path.resolve().parent
        self.assertEqual(
            load_settings({}, path, default_dir=here, environ={}),
            Settings(
                address="::1",
                port=0,
                listen="tcp:0:interface=127.0.0.1",
                security=True,
                account_file=here / "accounts.txt",
                max_clients=2,
                modules_dir=Path("/opt/mods"),
                modules=("cpu", "meminfo"),
                log_dir=here / "logs",
                log_mode="verbose",
                request_timeout=1.5,
                request_line_timeout=0.5,
                max_clients_per_address=1,
                keepalive_timeout=2.0,
                module_timeout=3.0,
                message_file=Path.home() / "m.jsonl",
                message_max_bytes=4096,
                message_rate=3,
                allowed_hosts=("*",),
                insecure=False,
                trusted_proxies=("127.0.0.1", "10.0.0.0/8"),
                tls_min_version="1.3",
                tls_ciphers="ECDHE-RSA-AES128-GCM-SHA256",
                hsts_max_age=31536000,
                credential_reuse=0,
                disk_await_limit=12.5,
                disk_full_percent=95.0,
                disk_fill_hours=4.0,
                memory_available_percent=5.5,
                swap_used_percent=20.0,
                load_per_cpu=2.0,
                cpu_busy_percent=99.0,
                stuck_process_seconds=30.0,
            ),
        )

    def test_modules_all(self) -> None:
        self.assertEqual(read_config_file(self.write("Modules = ALL\n")), {"modules": None})

    def test_every_field_has_a_key(self) -> None:
        self.assertEqual(len(KEYS), len(Settings.__dataclass_fields__))


class FileErrorTests(ConfigFileMixin, TestCase):
    def assertFileError(self, text: str, line: int, *fragments: str) -> None:
        path = self.write(text)
        error = self.assertRaises(ConfigError, read_config_file, path)
        message = str(error)
        self.assertTrue(message.startswith(f"{path}:{line}: "), message)
        self.assertNotIn("\n", message)
        for fragment in fragments:
            self.assertIn(fragment, message)

    def test_bad_port(self) -> None:
        self.assertFileError(
            "\n# c\nPort = abc\n", 3, "Port: 'abc' is not a port number (0-65535)"
        )
        self.assertFileError("Port = 65536\n", 1, "65536")
        self.assertFileError("Port = -1\n", 1, "-1")

    def test_unknown_key(self) -> None:
        self.assertFileError("Port = 1\nColour = blue\n", 2, "unknown key 'Colour'", "Address")

    def test_duplicate_key(self) -> None:
        self.assertFileError("port = 1\nPort = 2\n", 2, "Port: set twice (first on line 1)")

    def test_missing_equals(self) -> None:
        self.assertFileError("Port 8080\n", 1, "expected 'Key = value'")
        self.assertFileError("= 8080\n", 1, "expected 'Key = value'")

    def test_empty_value(self) -> None:
        self.assertFileError("LogDir =   # nothing\n", 1, "LogDir: no value given")

    def test_bad_values(self) -> None:
        cases = [
            ("Address = example", "Address: 'example' is not an IP address"),
            ("Listen = 8080", "Listen: '8080' is not a Twisted endpoint string"),
            ("Security = maybe", "Security: 'maybe' is neither on nor off"),
            ("MaxClients = 0", "MaxClients: '0' is not a whole number of at least 1"),
            ("MaxClients = 2.5", "MaxClients"),
            ("Modules = cpu,,meminfo", "Modules: 'cpu,,meminfo' is not a comma-separated"),
            ("LogMode = loud", "LogMode: 'loud' is neither short nor verbose"),
            ("RequestTimeout = 0", "RequestTimeout: '0' is not a positive number of seconds"),
            ("KeepAliveTimeout = -1", "KeepAliveTimeout"),
            ("ModuleTimeout = nan", "ModuleTimeout"),
            ("ModuleTimeout = inf", "ModuleTimeout"),
            ("AllowedHosts = a b", "AllowedHosts"),
            ("TrustedProxies = proxy.example", "'proxy.example' is not an IP address or network"),
            ("TrustedProxies = 10.0.0.0/33", "TrustedProxies"),
            ("TLSMinVersion = 1.1", "'1.1' is not a TLS version this server offers"),
            ("TLSCiphers = NO-SUCH-CIPHER", "selects no cipher OpenSSL knows"),
            ("HSTSMaxAge = -1", "HSTSMaxAge: '-1' is not a whole number of seconds"),
            ("CredentialReuse = -1", "CredentialReuse: '-1' is not a whole number of requests"),
            ("CredentialReuse = 1.5", "CredentialReuse: '1.5' is not a whole number of requests"),
            ("DiskAwaitLimit = 0", "DiskAwaitLimit: '0' is not a positive number of milliseconds"),
            ("DiskFullPercent = 101", "DiskFullPercent: '101' is not a percentage (0 to 100)"),
            ("MemoryAvailablePercent = ten", "MemoryAvailablePercent: 'ten' is not a percent"),
            ("SwapUsedPercent = nan", "SwapUsedPercent"),
            ("LoadPerCPU = 0", "LoadPerCPU: '0' is not a positive number"),
            ("DiskFillHours = -4", "DiskFillHours: '-4' is not a positive number"),
            ("CPUBusyPercent = -5", "CPUBusyPercent"),
            ("StuckProcessSeconds = inf", "StuckProcessSeconds"),
            ("MessageMaxBytes = 10M", "MessageMaxBytes: '10M' is not a whole number"),
            ("MessageRate = 0", "MessageRate: '0' is not a whole number of at least 1"),
        ]
        for line, fragment in cases:
            self.assertFileError(f"{line}\n", 1, fragment)

    def test_unreadable_file(self) -> None:
        path = self.folder()  # a directory cannot be read as a file
        error = self.assertRaises(ConfigError, read_config_file, path)
        self.assertTrue(str(error).startswith(f"{path}: cannot read the config file: "))

    def test_not_utf8(self) -> None:
        path = self.folder() / "spy.conf"
        path.write_bytes(b"Port = \xff\n")
        error = self.assertRaises(ConfigError, read_config_file, path)
        self.assertIn("cannot read the config file", str(error))


class OptionTests(TestCase):
    def test_parse_option(self) -> None:
        self.assertEqual(parse_option("port", "8081"), 8081)
        self.assertEqual(parse_option("security", "on"), True)
        self.assertEqual(parse_option("modules", "cpu"), ("cpu",))
        self.assertEqual(parse_option("credential_reuse", "0"), 0)
        self.assertEqual(parse_option("credential_reuse", "250"), 250)

    def test_bad_option_names_the_option(self) -> None:
        error = self.assertRaises(ConfigError, parse_option, "port", "abc")
        self.assertEqual(str(error), "--port: 'abc' is not a port number (0-65535)")
        error = self.assertRaises(ConfigError, parse_option, "request_timeout", "soon")
        self.assertEqual(
            str(error), "--request-timeout: 'soon' is not a positive number of seconds"
        )
        error = self.assertRaises(ConfigError, parse_option, "credential_reuse", "many")
        self.assertEqual(
            str(error), "--credential-reuse: 'many' is not a whole number of requests (0 or more)"
        )


class SecurityCheckTests(ConfigFileMixin, TestCase):
    def load(self, **overrides: object) -> Settings:
        return load_settings(overrides, None, default_dir=self.folder(), environ={})

    def test_refuses_open_address_without_security(self) -> None:
        error = self.assertRaises(ConfigError, self.load, address="0.0.0.0")
        for fragment in ("0.0.0.0", "--security on", "--insecure", "twistedspy-passwd"):
            self.assertIn(fragment, str(error))

    def test_refusal_from_the_file_too(self) -> None:
        path = self.write("Address = 192.0.2.1\n")
        self.assertRaises(ConfigError, load_settings, {}, path, default_dir=path.parent)

    def test_allowed_combinations(self) -> None:
        self.load(address="0.0.0.0", security=True)
        self.load(address="0.0.0.0", insecure=True)
        self.load(address="::1")
        self.load(address="127.0.0.2")
        self.load(listen="systemd:domain=INET:index=0")
        self.load(listen="unix:/tmp/spy.sock")

    def test_listen_judged_after_binding(self) -> None:
        # An endpoint string is not read for its address: Twisted takes the last
        # interface=, and wrappers like haproxy: hide it. The bound socket decides.
        self.load(listen="tcp:8080:interface=127.0.0.1:interface=0.0.0.0")
        self.load(listen="haproxy:tcp:8080")
        settings = Settings(listen="tcp:8080")
        for local in [
            IPv4Address("TCP", "127.0.0.1", 8080),
            IPv4Address("TCP", "127.8.9.10", 8080),
            IPv6Address("TCP", "::1", 8080),
            IPv6Address("TCP", "::ffff:127.0.0.1", 8080),
            UNIXAddress(b"/run/spy.sock"),
        ]:
            check_listening(settings, local)
        public_addresses: list[IPv4Address | IPv6Address] = [
            IPv4Address("TCP", "0.0.0.0", 8080),
            IPv4Address("TCP", "192.0.2.1", 8080),
            IPv6Address("TCP", "::", 8080),
            IPv6Address("TCP", "::ffff:192.0.2.1", 8080),
        ]
        for public in public_addresses:
            error = self.assertRaises(ConfigError, check_listening, settings, public)
            self.assertIn(
                f"refusing to serve {public.host} port 8080 without security", str(error)
            )
        # Security on, or --insecure: anything goes.
        check_listening(Settings(security=True), IPv4Address("TCP", "0.0.0.0", 8080))
        check_listening(Settings(insecure=True), IPv4Address("TCP", "0.0.0.0", 8080))

    def test_environment_default_is_process_environment(self) -> None:
        self.patch(os, "environ", {})
        self.assertEqual(self.load(), Settings())
