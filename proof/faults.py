# -*- test-case-name: tests.test_faults -*-
"""
Faults of the machine against a server process: a module that raises, one that never
answers, a plugin file that fails to import, an accounts file replaced with garbage, a
journal that hits the file-size limit, SIGTERM during a POST. For each: what the user
sees, what the journal says, that the rest kept working, that nothing stored was lost.

    python -m proof.faults
"""

from __future__ import annotations

import base64
import json
import resource
import signal
import socket
import tempfile
import time
from pathlib import Path

import bcrypt

from proof.table import Row, markdown
from tests.daemons import drop_in_source, start_cli

PLUGINS = {
    "spy_raises.py": drop_in_source(
        "raises", 'raise RuntimeError("the disk is on fire")', description="Fails every time."
    ),
    # Plain blocking code, as a third party writes it: its thread sleeps for an hour.
    "spy_silent.py": drop_in_source(
        "silent",
        "time.sleep(3600)",
        imports="import time",
        description="Never answers, like a hung NFS mount.",
    ),
    "spy_broken.py": "import no_such_module_anywhere\n",
}


def modules_and_journal() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="twistedspy-faults-") as name:
        folder = Path(name)
        plugins = folder / "plugins"
        plugins.mkdir()
        for file, text in PLUGINS.items():
            (plugins / file).write_text(text)
        server = start_cli(folder / "server", f"--moddir={plugins}", "--module-timeout=2")
        try:
            raised = server.get("/raises")
            started = time.monotonic()
            silent = server.get("/silent")
            waited = time.monotonic() - started
            others = {server.get(p) for p in ("/version", "/meminfo", "/diskfree", "/")}
            broken = server.get("/broken")
            journal = server.journal()
        finally:
            server.stop()
    return [
        Row(
            "a module that raises",
            "drop-in module raising RuntimeError on every request",
            f"user sees {raised}; journal has the traceback:"
            f" {'yes' if 'RuntimeError: the disk is on fire' in journal else 'no'};"
            f" other pages {sorted(others)}",
            raised == 500 and "RuntimeError: the disk is on fire" in journal and others == {200},
        ),
        Row(
            "a module that never answers (hung mount)",
            "drop-in module whose collect blocks its thread for an hour, ModuleTimeout 2 s",
            f"user sees {silent} after {waited:.1f} s; other pages {sorted(others)}",
            silent == 504 and waited < 10 and others == {200},
        ),
        Row(
            "a plugin file that fails to import",
            "drop-in file importing a module that does not exist",
            f"server started; /broken {broken}; journal names it:"
            f" {'yes' if 'spy_broken' in journal else 'no'}",
            broken == 404 and "spy_broken" in journal,
        ),
    ]


def accounts_garbage() -> Row:
    """A broken accounts file fails closed: no one is let in until it is fixed."""
    with tempfile.TemporaryDirectory(prefix="twistedspy-faults-") as name:
        folder = Path(name)
        accounts = folder / "accounts"
        hashed = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(5)).decode()
        accounts.write_text(f"alice:{hashed}\n")
        server = start_cli(folder / "server", "--security=on", f"--accounts={accounts}")
        good = {"Authorization": "Basic " + base64.b64encode(b"alice:correct horse").decode()}
        try:
            before = server.get("/version", good)
            accounts.write_bytes(b"\x00\xffthis is not an accounts file\n:::\n")
            time.sleep(2.5)
            after = server.get("/version", good)
            anonymous = server.get("/version")
            health = server.get("/-/healthy")
            accounts.write_text(f"alice:{hashed}\n")
            mended = server.get("/version", good)
            journal = server.journal()
        finally:
            server.stop()
    noted = "everyone locked out until the file is fixed" in journal
    return Row(
        "accounts file replaced with garbage",
        "security on; the file overwritten with binary junk while running, then mended",
        f"alice before {before}, broken {after}, mended {mended}; no credentials {anonymous};"
        f" /-/healthy while broken {health}; journal says everyone is locked out:"
        f" {'yes' if noted else 'no'}",
        before == 200
        and after == 401
        and anonymous == 401
        and health == 503
        and mended == 200
        and noted,
    )


def journal_full() -> Row:
    limit = 32 * 1024

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    with tempfile.TemporaryDirectory(prefix="twistedspy-faults-") as name:
        server = start_cli(Path(name), preexec_fn=limit_file_size)
        try:
            statuses = [server.get("/version") for _ in range(600)]
            size = len(server.journal().encode())
        finally:
            server.stop()
        told = server.output_text().count("cannot write the journal")
    return Row(
        "journal disk full",
        "server under RLIMIT_FSIZE 32 KiB (EFBIG, as a full disk gives ENOSPC); 600 requests",
        f"{statuses.count(200)}/600 answered 200; journal stopped at {size} bytes;"
        f" told once on stderr: {'yes' if told == 1 else told}",
        statuses.count(200) == 600 and told == 1,
    )


def sigterm_during_post() -> Row:
    with tempfile.TemporaryDirectory(prefix="twistedspy-faults-") as name:
        folder = Path(name)
        server = start_cli(folder)
        stored = []
        for i in range(20):
            assert server.get(f"/message?n={i}") == 200
        body = b"text=" + b"m" * 30_000
        head = (
            b"POST /message HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
            b"application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        whole = []
        for _ in range(5):
            conn = socket.create_connection(("127.0.0.1", server.port))
            conn.sendall(head + body)
            whole.append(conn)
        half = socket.create_connection(("127.0.0.1", server.port))
        half.sendall(head + body[:10_000])
        time.sleep(0.05)
        status = server.stop()
        answers = []
        for conn in [*whole, half]:
            conn.settimeout(10)
            try:
                answers.append(conn.recv(100)[9:12].decode() or "closed")
            except OSError:
                answers.append("reset")
            conn.close()
        lines = (
            (folder / "messages.jsonl").read_text().splitlines()
            if (folder / "messages.jsonl").exists()
            else []
        )
        for line in lines:
            stored.append(json.loads(line)["text"])
    intact = all(text == "m" * 30_000 for text in stored)
    told_stored = answers[:5].count("200")
    return Row(
        "SIGTERM during POST",
        "5 whole 30 KB posts and one half-sent, then SIGTERM at once",
        f"exit {status}; answers {', '.join(answers)}; {len(stored)} stored, every one whole:"
        f" {'yes' if intact else 'no'}; every 200 stored: {told_stored <= len(stored)}",
        intact and told_stored <= len(stored) and status in (0, -signal.SIGTERM),
    )


def run(quick: bool = False) -> list[Row]:
    return [*modules_and_journal(), accounts_garbage(), journal_full(), sigterm_during_post()]


def main() -> None:
    print(markdown(run()))


if __name__ == "__main__":
    main()
