# -*- test-case-name: tests.test_passwd -*-
"""`twistedspy-passwd ACCOUNTS USER`: add or replace a user in the accounts file.

What `htpasswd -B` does, without needing apache2-utils: a bcrypt hash (`$2b$`, cost 12 by
default), asked twice without echo (or one line from stdin with `--stdin`). The file is
written atomically (a temporary file beside it, then `os.replace`), so a server reading
it meanwhile sees the old version or the new, never half of one; it is created 0600
because the hashes can be attacked offline.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
import tempfile
from pathlib import Path

import bcrypt

from twistedspy.accounts import BCRYPT_MAX_PASSWORD, AccountsError, parse_accounts

DEFAULT_COST = 12
#: 4 is bcrypt's floor; past 15 (about 2.5 s a login here) logins would time out
MIN_COST, MAX_COST = 4, 15


class PasswdError(Exception):
    """Nothing was written; the message says why."""


def _cost(text: str) -> int:
    try:
        cost = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not MIN_COST <= cost <= MAX_COST:
        raise argparse.ArgumentTypeError(f"must be {MIN_COST} to {MAX_COST}, not {cost}")
    return cost


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twistedspy-passwd",
        description="Add USER to the ACCOUNTS file (htpasswd format, bcrypt), "
        "or give an existing USER a new password.",
    )
    parser.add_argument("accounts", metavar="ACCOUNTS", type=Path, help="the accounts file")
    parser.add_argument("user", metavar="USER", help="the user name")
    parser.add_argument(
        "--cost",
        type=_cost,
        default=DEFAULT_COST,
        help=f"bcrypt cost, {MIN_COST}-{MAX_COST} (default {DEFAULT_COST}: about 0.3 s a login)",
    )
    parser.add_argument(
        "--stdin",
        action="store_true",
        help="read the password from one line of standard input (for scripts)",
    )
    return parser


def check_user(user: str) -> None:
    """Refuse user names that the htpasswd format cannot hold."""
    if not user:
        raise PasswdError("the user name is empty")
    if ":" in user:
        raise PasswdError("a user name cannot contain ':' (it ends the name in the file)")
    if any(character in user for character in "\r\n"):
        raise PasswdError("a user name cannot contain a line break")
    if user != user.strip():
        raise PasswdError("a user name cannot begin or end with spaces")
    if user.startswith("#"):
        raise PasswdError("a user name cannot begin with '#' (the line would be a comment)")


def check_password(password: str) -> bytes:
    """The password as bcrypt takes it, or PasswdError."""
    if not password:
        raise PasswdError("empty password refused")
    encoded = password.encode("utf-8")
    if len(encoded) > BCRYPT_MAX_PASSWORD:
        # bcrypt ignores everything past 72 bytes; better say so than let a user believe
        # the tail counts.
        raise PasswdError(f"password too long: bcrypt uses at most {BCRYPT_MAX_PASSWORD} bytes")
    return encoded


def read_password(*, from_stdin: bool, user: str) -> str:
    """Ask twice without echo, or read one line from stdin."""
    if from_stdin:
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    first = getpass.getpass(f"New password for {user}: ")
    second = getpass.getpass("Again: ")
    if first != second:
        raise PasswdError("the two passwords differ; nothing changed")
    return first


def with_user(text: str, user: str, hashed: bytes) -> str:
    """`text` with USER's line replaced (or added at the end), all other lines kept."""
    entry = f"{user}:{hashed.decode('ascii')}"
    lines = text.splitlines()
    kept: list[str] = []
    placed = False
    for line in lines:
        name, colon, _ = line.strip().partition(":")
        if colon and name == user:
            if not placed:
                kept.append(entry)
                placed = True
            continue
        kept.append(line)
    if not placed:
        kept.append(entry)
    return "".join(line + "\n" for line in kept)


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step; mode 0600 for a new file."""
    target = Path(os.path.realpath(path))
    try:
        existing = target.stat()
    except FileNotFoundError:
        existing = None
    # mkstemp opens with O_CREAT | O_EXCL and mode 0600 in the same folder, so
    # the replace below is a rename(2) within one file system.
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            if existing is not None:
                # An administrator may have shared the file with the service's group:
                # keep its owner and mode rather than lock the server out.
                os.fchmod(stream.fileno(), existing.st_mode & 0o777)
                with contextlib.suppress(PermissionError):
                    os.fchown(stream.fileno(), existing.st_uid, existing.st_gid)
            else:
                os.fchmod(stream.fileno(), 0o600)
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        Path(temporary).replace(target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def set_password(path: Path, user: str, password: str, *, cost: int) -> bool:
    """Write USER's new hash into the file; True if the user was new."""
    check_user(user)
    encoded = check_password(password)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError) as error:
        raise PasswdError(f"{path}: cannot read: {error}") from None
    try:
        existing = parse_accounts(text, source=str(path))
    except AccountsError as error:
        # The server would refuse the file anyway; do not build on a broken one.
        raise PasswdError(f"{error}; fix that line first") from None
    hashed = bcrypt.hashpw(encoded, bcrypt.gensalt(cost, prefix=b"2b"))
    write_atomically(path, with_user(text, user, hashed))
    return user not in existing


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    accounts: Path = arguments.accounts
    user: str = arguments.user
    try:
        check_user(user)
        password = read_password(from_stdin=arguments.stdin, user=user)
        added = set_password(accounts, user, password, cost=arguments.cost)
    except PasswdError as error:
        print(f"twistedspy-passwd: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"twistedspy-passwd: {accounts}: {error.strerror or error}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, EOFError):
        print("\ntwistedspy-passwd: interrupted; nothing changed", file=sys.stderr)
        return 1
    print(f"{'added' if added else 'updated'} {user} in {accounts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
