# -*- test-case-name: tests.test_accounts -*-
"""The accounts file: who may log in, as `htpasswd -B` writes it (docs/security.md).

One `user:bcrypt-hash` a line. Only bcrypt is accepted: the other hashes htpasswd can
write (MD5 `$apr1$`, `{SHA}`, crypt, plaintext) are fast enough to brute-force, so a file
that holds one stops start-up instead of quietly weakening every login.

The file is re-read when it changes, so accounts can be added or removed without a
restart; a change that breaks the file locks everyone out until it is fixed, and says so
in the journal and on `/-/healthy`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from twisted.logger import Logger, LogLevel

from twistedspy.events import record

# The modular crypt format bcrypt writes: `$2b$` (also OpenBSD's older `$2a$` and the
# `$2y$` that htpasswd -B writes), a two-digit cost 04-31, then 22 characters of salt and
# 31 of digest in bcrypt's own base64 alphabet (OpenBSD bcrypt(3)).
BCRYPT_HASH = re.compile(rb"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")

#: bcrypt reads only this many bytes of a password (OpenBSD bcrypt(3))
BCRYPT_MAX_PASSWORD = 72


class AccountsError(Exception):
    """The accounts file cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Account:
    user: str
    hash: bytes

    @property
    def cost(self) -> int:
        """The bcrypt cost (log2 of the rounds) the hash was made with."""
        return int(self.hash[4:6])


def _what_hash(text: str) -> str:
    """Name the hash scheme a non-bcrypt field looks like, to make the error useful."""
    if text.startswith("$apr1$"):
        return "an MD5 hash ($apr1$)"
    if text.startswith("{SHA}"):
        return "a SHA-1 hash ({SHA})"
    if text.startswith(("$5$", "$6$")):
        return "a SHA-crypt hash"
    if text.startswith("$2"):
        return "a malformed bcrypt hash"
    if len(text) == 13:
        return "a DES crypt hash, or plaintext"
    return "not a bcrypt hash"


def parse_accounts(text: str, *, source: str) -> dict[str, Account]:
    """
    Read htpasswd-format text into accounts by user name.

    Blank lines and lines starting with `#` are skipped. Anything else must be
    `user:bcrypt-hash`; the first line that is not raises `AccountsError` naming
    `source:line`.
    """
    accounts: dict[str, Account] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue

        def fail(why: str, number: int = number) -> AccountsError:
            return AccountsError(f"{source}:{number}: {why}")

        user, colon, field = stripped.partition(":")
        if not colon:
            raise fail("not a 'user:hash' line (htpasswd -B writes one)")
        if not user:
            raise fail("empty user name")
        if user != user.strip():
            raise fail(f"user {user!r}: spaces around the user name")
        if user in accounts:
            raise fail(f"user {user!r}: listed twice")
        hash_text = field.strip()
        try:
            hash_bytes = hash_text.encode("ascii")
        except UnicodeEncodeError:
            hash_bytes = b""
        if not BCRYPT_HASH.fullmatch(hash_bytes):
            kind = _what_hash(hash_text)
            if kind == "not a bcrypt hash":
                raise fail(f"user {user!r}: not a bcrypt hash (htpasswd -B writes one)")
            raise fail(f"user {user!r}: {kind}, not bcrypt (htpasswd -B writes bcrypt)")
        accounts[user] = Account(user=user, hash=hash_bytes)
    return accounts


#: what identifies one version of the file: (inode, size, mtime_ns)
_Signature = tuple[int, int, int]


def _signature(status: os.stat_result) -> _Signature:
    return (status.st_ino, status.st_size, status.st_mtime_ns)


class AccountsFile:
    """
    The accounts file, re-read whenever it changes.

    Every `lookup` and `generation` calls `os.stat` (no clock to inject, and a change is
    seen by the very next login rather than up to a second later). The file is read again
    only when its inode, size or mtime_ns differ from the version last read, so an atomic
    replace (new inode) and an in-place edit are both noticed.

    A changed file that cannot be read or parsed whole locks everyone out until it is
    fixed (fail closed): keeping the accounts last read would keep a user the edit meant
    to remove (say, removed in the same edit that added an `$apr1$` line, or by deleting
    the file). The lock-out is journalled once per broken version, and
    `health_problem` reports it for `/-/healthy`.
    """

    def __init__(self, path: Path, *, log: Logger | None = None) -> None:
        self.path = path
        # os.stat on a str: Path.stat's own work is more than the system call's
        self._where = os.fspath(path)
        self._log = log if log is not None else Logger()
        #: how many times the file has been seen to change (see `generation`)
        self._generation = 0
        # what the last failed reload saw, so one broken version is journalled once
        self._rejected: _Signature | str | None = None
        try:
            status = path.stat()
            self._accounts = self._read()
        except OSError as error:
            why = f"cannot read the accounts file: {_reason(error)}"
            raise AccountsError(f"{path}: {why}") from None
        #: the version last read, whole or not; None when the file could not be seen
        self._seen: _Signature | None = _signature(status)
        self._highest_cost = _highest_cost(self._accounts)

    def _read(self) -> dict[str, Account]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise AccountsError(f"{self.path}: not UTF-8 text ({error.reason})") from None
        return parse_accounts(text, source=str(self.path))

    def highest_cost(self) -> int:
        """
        The highest bcrypt cost of the accounts last read whole (12 with no accounts).

        A login for an unknown user is checked against a dummy hash of this cost, so that
        it takes as long as a wrong password for the slowest account: with accounts of
        mixed costs, any lower cost would tell the slow accounts' names apart. It outlives
        a lock-out, so that locking everyone out does not change what a 401 costs.
        """
        return self._highest_cost

    def lookup(self, user: str) -> Account | None:
        """The account named `user` in the file as it is now, or None."""
        self._refresh()
        return self._accounts.get(user)

    def generation(self) -> int:
        """
        A number that changes whenever the file is seen to change (edited, replaced,
        removed, broken or fixed): what was decided from an earlier version, such as a
        connection's remembered login, is stale once it differs.
        """
        self._refresh()
        return self._generation

    def health_problem(self) -> str | None:
        """Why no one can log in (one line, naming no user or path), or None."""
        self._refresh()
        if self._rejected is None:
            return None
        return "the accounts file cannot be read whole; every login is refused"

    def _refresh(self) -> None:
        try:
            seen: _Signature | None = _signature(os.stat(self._where))  # noqa: PTH116 (see _where)
        except OSError as error:
            seen = None
            why = f"cannot read the accounts file: {_reason(error)}"
            self._lock_out(str(error.errno), why)
        if seen != self._seen:
            self._generation += 1
        if seen is None or seen == self._seen:
            self._seen = seen
            return
        self._seen = seen
        try:
            accounts = self._read()
        except OSError as error:
            self._lock_out(seen, f"cannot read the accounts file: {_reason(error)}")
            return
        except AccountsError as error:
            self._lock_out(seen, str(error))
            return
        self._accounts = accounts
        self._highest_cost = _highest_cost(accounts)
        self._rejected = None
        record(self._log, "accounts", file=str(self.path), outcome="reloaded", users=len(accounts))

    def _lock_out(self, rejected: _Signature | str, why: str) -> None:
        """Refuse every login until the file is fixed; journal each new problem once."""
        self._accounts = {}
        if rejected == self._rejected:
            return
        self._rejected = rejected
        record(
            self._log,
            "accounts",
            LogLevel.error,
            file=str(self.path),
            outcome="everyone locked out until the file is fixed",
            error=why,
        )


def _highest_cost(accounts: dict[str, Account]) -> int:
    return max((account.cost for account in accounts.values()), default=12)


def _reason(error: OSError) -> str:
    return error.strerror or str(error)
