# -*- test-case-name: tests.test_ownership -*-
"""Whose files the server writes and imports: its own user's, or root's, and nobody else's.

A server started as root that follows another user's symlink writes where that user
chose (symlink(7), "protected_symlinks"); one that imports a module file another user can
write runs that user's code. Both are refused before anything is opened.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class OwnershipError(Exception):
    """A path the server will not use; its str is the one message to show the user."""


def is_trusted_owner(uid: int) -> bool:
    """The server's own user, or root (who can do anything anyway)."""
    return uid in (os.geteuid(), 0)


def own_path(path: Path, setting: str) -> Path:
    """
    `path` with symlinks resolved, once its last component is known not to be a symlink
    into another owner's space: the link and what it points to (or, for a file yet to
    be made, the folder it will be made in) belong to the server's user or root. The
    resolved path is what the server then opens, with O_NOFOLLOW, so a link swapped in
    later is not followed either.
    """
    if not path.is_symlink():
        return path.absolute()
    resolved = path.resolve()
    target = resolved if resolved.exists() else resolved.parent
    for what, owner in (("the link", path.lstat().st_uid), (str(target), _owner(target))):
        if not is_trusted_owner(owner):
            raise OwnershipError(
                f"{setting} {path} is a symlink into another owner's space: {what} belongs"
                f" to uid {owner}; name a path of this server's user instead"
            )
    return resolved


def _owner(path: Path) -> int:
    try:
        return path.stat().st_uid
    except OSError:
        return os.geteuid()  # nothing there to belong to anyone; making it will fail


def unsafe_writers(path: Path) -> str | None:
    """
    Why a module file or folder could be changed by someone other than the server's user
    or root (its owner, or group or world write permission), or None if it cannot.
    """
    try:
        info = path.stat()
    except OSError:
        return None  # a dangling link: nothing there to import
    if not is_trusted_owner(info.st_uid):
        return f"owned by uid {info.st_uid}"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by {'others' if info.st_mode & stat.S_IWOTH else 'its group'}"
    return None
