"""Tests for the entry points: `twistd spy` options, the `twistedspy` script, spy.tac and
shutdown.sh."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import TestCase

from tests.daemons import PYTHON, ROOT, TWISTD, run_to_exit
from twistedspy import cli, tap
from twistedspy.config import CONFIG_ENV
from twistedspy.settings import Settings

SHUTDOWN = ROOT / "shutdown.sh"


class OptionsTests(TestCase):
    def setUp(self) -> None:
        self.folder = Path(self.mktemp())
        self.folder.mkdir()
        self.patch(os, "environ", {k: v for k, v in os.environ.items() if k != CONFIG_ENV})

    def parse(self, *args: str, options: tap.Options | None = None) -> Settings:
        options = tap.Options() if options is None else options
        options.default_dir = self.folder
        options.parseOptions(list(args))
        return options.settings

    def test_no_options_gives_defaults(self) -> None:
        self.assertEqual(self.parse(), Settings())

    def test_every_option(self) -> None:
        self.assertEqual(
            self.parse(
                "-a", "::1",
                "-p", "0",
                "--listen", "tcp:0:interface=127.0.0.1",
                "-s", "on",
                "--accounts", "acc",
                "--credential-reuse", "7",
                "--max-clients", "3",
                "-m", "mods",
                "--modules", "cpu,version",
                "--log-dir", "l",
                "-v",
                "--request-timeout", "1",
                "--keepalive-timeout", "2",
                "--module-timeout", "3",
                "--message-file", "m.jsonl",
                "--allowed-hosts", "example.org",
                "--insecure",
            ),
            Settings(
                address="::1",
                port=0,
                listen="tcp:0:interface=127.0.0.1",
                security=True,
                account_file=Path("acc"),
                credential_reuse=7,
                max_clients=3,
                modules_dir=Path("mods"),
                modules=("cpu", "version"),
                log_dir=Path("l"),
                log_mode="verbose",
                request_timeout=1.0,
                keepalive_timeout=2.0,
                module_timeout=3.0,
                message_file=Path("m.jsonl"),
                allowed_hosts=("example.org",),
                insecure=True,
            ),
        )  # fmt: skip

    def test_long_names(self) -> None:
        settings = self.parse("--addr=127.0.0.2", "--port=81", "--security=off", "--moddir=x")
        self.assertEqual(
            (settings.address, settings.port, settings.security, settings.modules_dir),
            ("127.0.0.2", 81, False, Path("x")),
        )

    def test_config_file_then_options(self) -> None:
        conf = self.folder / "my.conf"
        conf.write_text("Port = 9000\nMaxClients = 7\n")
        settings = self.parse("-c", str(conf), "-p", "9001")
        self.assertEqual((settings.port, settings.max_clients), (9001, 7))

    def test_spy_conf_in_default_dir(self) -> None:
        (self.folder / "spy.conf").write_text("Port = 9005\n")
        self.assertEqual(self.parse().port, 9005)

    def test_bad_value_is_usage_error(self) -> None:
        error = self.assertRaises(usage.UsageError, self.parse, "-p", "abc")
        self.assertEqual(str(error), "--port: 'abc' is not a port number (0-65535)")

    def test_config_error_is_usage_error(self) -> None:
        conf = self.folder / "bad.conf"
        conf.write_text("\nPort = x\n")
        error = self.assertRaises(usage.UsageError, self.parse, "--config", str(conf))
        self.assertTrue(str(error).startswith(f"{conf}:2: Port: "), str(error))

    def test_open_address_refused(self) -> None:
        error = self.assertRaises(usage.UsageError, self.parse, "-a", "0.0.0.0")
        self.assertIn("--insecure", str(error))

    def test_command_line_round_trip(self) -> None:
        options = tap.Options()
        args = ["-a", "::1", "-p", "81", "-v", "--insecure", "--modules", "a,b", "-s", "on"]
        first = self.parse(*args, options=options)
        self.assertEqual(self.parse(*options.command_line()), first)

    def test_cli_twistd_arguments(self) -> None:
        options = cli.Options()
        self.parse("-p", "81", options=options)
        self.assertEqual(
            options.twistd_arguments(), ["--nodaemon", "--pidfile=twistd.pid", "spy", "--port=81"]
        )
        options = cli.Options()
        self.parse("-d", "--pidfile", "x.pid", "--logfile", "x.log", options=options)
        self.assertEqual(options.twistd_arguments(), ["--pidfile=x.pid", "--logfile=x.log", "spy"])

    def test_plugin_is_found(self) -> None:
        [maker] = [m for m in getPlugins(IServiceMaker) if m.tapname == "spy"]
        self.assertIs(maker.options, tap.Options)

    def test_make_service(self) -> None:
        from twisted.application.service import IService

        options = tap.Options()
        self.parse("-p", "0", "--log-dir", str(self.folder / "logs"), options=options)
        service = tap.makeService(options)
        (spy,) = list(service)  # type: ignore[call-overload]
        self.addCleanup(spy.journal.close)
        self.assertTrue(IService.providedBy(service))


class ScriptTests(TestCase):
    def run_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        folder = Path(self.mktemp())
        folder.mkdir()
        return run_to_exit([PYTHON, "-m", "twistedspy.cli", *args], cwd=folder)

    def test_help(self) -> None:
        for flag in ("-h", "--help"):
            done = self.run_cli(flag)
            self.assertEqual(done.returncode, 0, done.stderr)
            for option in ("--addr", "--port", "--daemon", "--security", "--moddir", "--config"):
                self.assertIn(option, done.stdout)

    def test_bad_option(self) -> None:
        done = self.run_cli("--no-such-option")
        self.assertEqual(done.returncode, 2)
        self.assertIn("twistedspy: option --no-such-option not recognized", done.stderr)

    def test_port_in_use_is_one_line(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            done = self.run_cli("-p", str(port), "--log-dir", "logs")
        # twistd has taken over stderr by then: the line goes to its log (stdout with -n).
        output = done.stdout + done.stderr
        self.assertEqual(done.returncode, 1, output)
        self.assertNotIn("Traceback", output)
        self.assertIn(f"twistedspy: cannot listen on tcp:{port}:interface=127.0.0.1", output)
        self.assertIn("Address already in use", output)

    def test_bad_value(self) -> None:
        done = self.run_cli("-p", "99999")
        self.assertEqual(done.returncode, 2)
        self.assertIn("--port: '99999' is not a port number (0-65535)", done.stderr)

    def test_tac_config_error(self) -> None:
        conf = Path(self.mktemp()).resolve()
        conf.write_text("Port = 8080\nColour = red\n")
        folder = Path(self.mktemp())
        folder.mkdir()
        done = run_to_exit(
            [*TWISTD, "--pidfile=", "-ny", str(ROOT / "spy.tac")],
            cwd=folder,
            **{CONFIG_ENV: str(conf)},
        )
        self.assertNotEqual(done.returncode, 0)
        self.assertIn(f"twistedspy: {conf}:2: unknown key 'Colour'", done.stderr)


class ShutdownScriptTests(TestCase):
    def setUp(self) -> None:
        self.pidfile = Path(self.mktemp())

    def shutdown(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SHUTDOWN), *args],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def start(self, *argv: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(argv)
        self.addCleanup(process.wait)
        self.addCleanup(process.kill)
        self.pidfile.write_text(f"{process.pid}\n")
        return process

    def test_stops_the_process(self) -> None:
        process = self.start("sleep", "60")
        done = self.shutdown(str(self.pidfile))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn(f"process {process.pid} has stopped", done.stdout)
        self.assertEqual(process.wait(timeout=10), -signal.SIGINT)

    def test_process_that_will_not_stop(self) -> None:
        # Python ignores SIGINT here: shutdown.sh must give up and say so.
        code = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); " + (
            "print('ready', flush=True); time.sleep(60)"
        )
        process = subprocess.Popen([PYTHON, "-c", code], stdout=subprocess.PIPE)
        self.addCleanup(process.wait)
        self.addCleanup(process.kill)
        assert process.stdout is not None
        self.assertEqual(process.stdout.readline(), b"ready\n")
        process.stdout.close()
        self.pidfile.write_text(str(process.pid))
        done = self.shutdown(str(self.pidfile), SHUTDOWN_WAIT="1")
        self.assertEqual(done.returncode, 1)
        self.assertIn("did not stop within 1s", done.stderr)
        self.assertIsNone(process.poll())

    def test_missing_pidfile(self) -> None:
        done = self.shutdown(str(self.pidfile))
        self.assertEqual(done.returncode, 2)
        self.assertIn(f"no pidfile {self.pidfile}", done.stderr)

    def test_garbage_pidfile(self) -> None:
        self.pidfile.write_text("not a pid\n")
        done = self.shutdown(str(self.pidfile))
        self.assertEqual(done.returncode, 2)
        self.assertIn("does not hold a process id", done.stderr)

    def test_stale_pidfile(self) -> None:
        process = subprocess.Popen(["true"])
        process.wait()
        self.pidfile.write_text(str(process.pid))
        done = self.shutdown(str(self.pidfile))
        self.assertEqual(done.returncode, 3)
        self.assertIn("is stale", done.stderr)

    def test_daemon_round_trip(self) -> None:
        folder = Path(self.mktemp())
        folder.mkdir()
        started = run_to_exit(
            [PYTHON, "-m", "twistedspy.cli", "-d", "-p", "0", "--log-dir", "logs"], cwd=folder
        )
        self.assertEqual(started.returncode, 0, started.stderr)
        # twistd's parent exits once the daemon has written its pidfile.
        pidfile = folder / "twistd.pid"
        self.assertTrue(pidfile.is_file(), started.stderr)
        done = self.shutdown(str(pidfile))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertFalse(pidfile.exists())
