# -*- test-case-name: tests.test_masking -*-
"""Secrets in command lines, replaced by `***` before a command line is shown.

Any local user can start a process with any command line, so this text is hostile: every
step here is linear in its length. Command lines are cut at `COMMAND_LINE_LIMIT` first;
an argument holding whitespace (`sh -c '...'`) is split into shell words by one regex
whose quantifiers are possessive, so it never backtracks; every other pattern is matched
at a few fixed places (`fullmatch`, or a search that can only start at a word boundary).

The rules are the table `RULES`, tried in order on each word (an argument, or a shell word
inside one); the first that applies decides. A word no rule claims still has its URL
userinfo and its secret query parameters masked, and, if it holds whitespace, its shell
words are masked in turn. The bias is to mask more rather than less: a hidden value
costs a reader a little, a shown password costs its owner a great deal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_plus

from twistedspy.memo import BoundedMemo

MASK: Final = "***"

#: a command line longer than this many characters is cut before it is masked or shown
COMMAND_LINE_LIMIT: Final = 32 * 1024

#: name fragments that make a name secret wherever they appear (`PGPASSWORD`, `dbPassword`)
SECRET_FRAGMENTS: Final = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "credential",
)
#: words that make a name secret when they stand alone (`--pass`, `MYSQL_PWD`, `--key`)
SECRET_WORDS: Final = frozenset(
    {"pass", "pwd", "pw", "key", "auth", "bearer", "requirepass", "masterauth", "cookie"}
)
#: a last word that makes the value a place where a secret is kept, not the secret
NOT_SECRET_LAST: Final = frozenset({"file", "path", "dir", "fd", "env", "length", "prompt"})
#: a first word that makes an option a switch without a value (`--no-password`)
SWITCH_FIRST: Final = frozenset({"no", "ask"})
#: the shell's own working-directory variables (bash(1)), whose values are not secret
SHELL_DIRECTORY_VARIABLES: Final = frozenset({"PWD", "OLDPWD"})
#: HTTP authentication schemes (RFC 9110 §11.1) that precede the credentials in a header
AUTH_SCHEMES: Final = frozenset({"basic", "bearer", "digest", "token", "negotiate", "ntlm"})


@dataclass(frozen=True, slots=True)
class ToolOption:
    """
    A short option of a known tool that takes a secret: `-pSECRET` glued, or `-p SECRET`
    as the next word. With `keep_before`, the value's part before that character stays
    (`curl -u alice:***`, `smbclient -U alice%***`).
    """

    tools: frozenset[str]
    option: str
    glued: bool
    separate: bool
    keep_before: str | None = None


_MYSQL = frozenset(
    {"mysql", "mysqldump", "mysqladmin", "mysqlimport", "mysqlshow", "mysqlcheck", "mysqlslap"}
    | {"mariadb", "mariadb-dump", "mariadb-admin", "mariadb-import", "mariadb-check"}
)
_MONGO = frozenset({"mongo", "mongosh", "mongodump", "mongorestore", "mongoexport"})

#: The known tools' secret short options. `-p` alone means a port to most programs, and
#: mysql's `-p` with nothing glued asks for the password (mysql(1)), so the next word is
#: a database name there.
TOOL_OPTIONS: Final = (
    ToolOption(_MYSQL, "-p", glued=True, separate=False),
    ToolOption(frozenset({"sshpass"}), "-p", glued=True, separate=True),
    ToolOption(frozenset({"redis-cli", "keydb-cli"}), "-a", glued=True, separate=True),
    ToolOption(_MONGO, "-p", glued=True, separate=True),
    ToolOption(frozenset({"sqlcmd", "bcp"}), "-P", glued=True, separate=True),
    ToolOption(frozenset({"curl"}), "-u", glued=True, separate=True, keep_before=":"),
    ToolOption(frozenset({"curl"}), "-U", glued=True, separate=True, keep_before=":"),
    ToolOption(frozenset({"curl"}), "--user", glued=False, separate=True, keep_before=":"),
    ToolOption(frozenset({"curl"}), "--proxy-user", glued=False, separate=True, keep_before=":"),
    ToolOption(frozenset({"smbclient"}), "-U", glued=True, separate=True, keep_before="%"),
    ToolOption(frozenset({"openssl"}), "-passin", glued=False, separate=True),
    ToolOption(frozenset({"openssl"}), "-passout", glued=False, separate=True),
    ToolOption(frozenset({"openssl"}), "-k", glued=False, separate=True),
)
_TOOLS: Final = frozenset(tool for option in TOOL_OPTIONS for tool in option.tools)


# --- names ------------------------------------------------------------------------------

_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD_SEPARATORS: Final = re.compile(r"[-_.]+")


def name_words(name: str) -> list[str]:
    """`--db-password` -> [db, password]; `trustStorePassword` -> [trust, store, password]."""
    spaced = _CAMEL.sub(" ", name.lstrip("-"))
    return [w for w in _WORD_SEPARATORS.sub(" ", spaced).lower().split() if w]


def _judge_name(name: str) -> bool:
    """Whether an option, variable or parameter name names a secret (module docstring)."""
    if name in SHELL_DIRECTORY_VARIABLES:
        return False
    words = name_words(name)
    if not words or words[-1] in NOT_SECRET_LAST:
        return False
    return any(w in SECRET_WORDS or any(f in w for f in SECRET_FRAGMENTS) for w in words)


#: Verdicts on short names, which repeat from process to process (`--port`, `--config`).
is_secret_name: Final = BoundedMemo(_judge_name, entries=4096, longest=64, size=len)


# --- shell words ------------------------------------------------------------------------

#: One shell word (sh(1) "Quoting"): unquoted runs, '...' and "..." (a missing closing
#: quote ends at the end of the text), backslash escapes. Possessive throughout: no
#: backtracking, whatever the text.
_SHELL_WORD: Final = re.compile(
    r"""(?:[^\s'"\\]++|'[^']*+'?+|"(?:[^"\\]++|\\.)*+"?+|\\.?+)++""", re.DOTALL
)
_WHITESPACE: Final = re.compile(r"\s")


def _unquoted(word: str) -> str:
    """The word without one pair of enclosing quotes, for reading a name from it."""
    if len(word) >= 2 and word[0] in "'\"" and word[-1] == word[0]:
        return word[1:-1]
    return word


# --- the rules --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Masked:
    """A rule's verdict on one word: what it becomes, and what the words after it become."""

    word: str
    following: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Words:
    """The words around the one a rule looks at."""

    words: Sequence[str]
    index: int
    #: the latest known tool named before this word (`mysql` in `sh -c 'mysql -p...'`)
    tool: str | None

    @property
    def word(self) -> str:
        return self.words[self.index]

    @property
    def next(self) -> str | None:
        following = self.index + 1
        return self.words[following] if following < len(self.words) else None


@dataclass(frozen=True, slots=True)
class Rule:
    """One way a secret shows in a command line, with an example for the documentation."""

    name: str
    example: str
    apply: Callable[[Words], Masked | None]


# `Authorization: Bearer x` (curl -H), `Cookie: ...`, `X-Vault-Token: ...`, also inside
# `--header=...`. The lookbehind makes every attempt start where a header name can start,
# so a long run of letters is scanned once.
_SECRET_HEADER: Final = re.compile(
    r"(?<![A-Za-z0-9-])(?:(?:proxy-)?authorization|cookie|"
    r"[A-Za-z0-9-]*(?:-key|token|secret|password|apikey))[ \t]*+:",
    re.IGNORECASE,
)


def _header(at: Words) -> Masked | None:
    header = _SECRET_HEADER.search(at.word)
    if header is None:
        return None
    value = at.word[header.end() :].strip(" \t")
    quote = at.word[0] if at.word[:1] in ("'", '"') and at.word.endswith(at.word[0]) else ""
    if not value or value == quote:
        # The header's value is in the next words: the scheme (if any), then the secret.
        following = at.next
        if following is not None and _unquoted(following).lower() in AUTH_SCHEMES:
            return Masked(at.word, (following, MASK))
        return Masked(at.word, (MASK,))
    return Masked(f"{at.word[: header.end()]} {MASK}{quote if len(at.word) > 1 else ''}")


#: `NAME=VALUE`, `--NAME=VALUE`, `-NAME=VALUE`, `-DNAME=VALUE`; the name is plain
_ASSIGNMENT: Final = re.compile(r"(['\"]?+)(-{0,2}+)([A-Za-z_][A-Za-z0-9_.-]*+)=(.*)", re.DOTALL)


def _assignment(at: Words) -> Masked | None:
    found = _ASSIGNMENT.fullmatch(at.word)
    if found is None:
        return None
    quote, dashes, name, _ = found.groups()
    if dashes == "-" and name.startswith("D") and len(name) > 1:
        name = name[1:]  # -Djavax.net.ssl.trustStorePassword=... (java(1) system property)
    if not is_secret_name(name):
        return None
    closing = quote if at.word.endswith(quote) and len(at.word) > 1 else ""
    return Masked(f"{at.word[: found.start(4)]}{MASK}{closing}")


_OPTION: Final = re.compile(r"--?+([A-Za-z][A-Za-z0-9_.-]*+)")


def _option_value(at: Words) -> Masked | None:
    found = _OPTION.fullmatch(at.word)
    if found is None:
        return None
    name = found.group(1)
    long_option = at.word.startswith("--") or len(name) > 1
    if long_option and is_secret_name(name) and name_words(name)[0] not in SWITCH_FIRST:
        return Masked(at.word, (MASK,))
    return None


def _tool_option(at: Words) -> Masked | None:
    if at.tool is None:
        return None
    for option in TOOL_OPTIONS:
        if at.tool not in option.tools or not at.word.startswith(option.option):
            continue
        glued = at.word[len(option.option) :]
        if not glued and option.separate and at.next is not None:
            return Masked(at.word, (_kept_part(at.next, option.keep_before) + MASK,))
        if glued and option.glued:
            keep = _kept_part(glued, option.keep_before)
            return Masked(f"{option.option}{keep}{MASK}")
    return None


def _kept_part(value: str, keep_before: str | None) -> str:
    """The part of an option's value that is not secret: `alice:` of `alice:pw`."""
    if keep_before is None or keep_before not in value:
        return ""
    return value[: value.index(keep_before) + 1]


def _passphrase_argument(at: Words) -> Masked | None:
    # openssl-passphrase-options(1): `pass:SECRET` is the password itself (`env:`,
    # `file:`, `fd:` and `stdin` only say where it is).
    plain = _unquoted(at.word)
    if not plain.startswith("pass:"):
        return None
    return Masked("pass:" + MASK)


#: The rules, in the order they are tried on each word.
RULES: Final = (
    Rule("header", "-H 'Authorization: Bearer abc' -> 'Authorization: ***'", _header),
    Rule("assignment", "--password=x, PGPASSWORD=x, -Dx.trustStorePassword=x", _assignment),
    Rule("tool-option", "mysql -pX, curl -u alice:pw, redis-cli -a X", _tool_option),
    Rule("option-value", "--passphrase x, -password x, --key x -> --key ***", _option_value),
    Rule("passphrase-argument", "openssl ... -pass pass:X -> pass:***", _passphrase_argument),
)


# --- inside a word: URL userinfo and query parameters ------------------------------------

_SCHEME_CHARACTER: Final = re.compile(r"[A-Za-z0-9+.-]")
_AUTHORITY_END: Final = re.compile(r"[?#\s'\"]")
#: `name=value` at the start, or after a query's or a list's separator; the name may be
#: percent-encoded (`pass%77ord=`), as a browser or an attacker may write it
_QUERY_PARAMETER: Final = re.compile(
    r"(?:^|[?&;,\s])((?:[A-Za-z0-9_.\[\]-]|%[0-9A-Fa-f]{2})++)=([^&;,#\s'\"]*+)"
)


def _mask_userinfo(word: str) -> str:
    """
    `scheme://user:PASSWORD@host` -> `scheme://user:***@host`, and a user with no
    password, which is then a token (`https://ghp_x@github.com`), -> `scheme://***@host`.
    The userinfo runs to the authority's last `@` before any `?` or `#`: a `/` inside it
    (`postgres://u:pa/ss@db`) is against RFC 3986 §3.2.1 but libpq and others take it.
    """
    parts = []
    done = 0
    start = word.find("://")
    while start >= 0:
        following = word.find("://", start + 3)
        window_end = len(word) if following < 0 else following
        end = _AUTHORITY_END.search(word, start + 3, window_end)
        authority_end = window_end if end is None else end.start()
        at = word.rfind("@", start + 3, authority_end)
        # A scheme ends where "://" begins (RFC 3986 §3.1): one character of it will do.
        if at >= 0 and start > done and _SCHEME_CHARACTER.fullmatch(word, start - 1, start):
            userinfo = word[start + 3 : at]
            user, colon, _ = userinfo.partition(":")
            parts.append(word[done : start + 3])
            parts.append(f"{user}:{MASK}" if colon else MASK)
            done = at
        start = following
    parts.append(word[done:])
    return "".join(parts)


def mask_text(text: str) -> str:
    """URL userinfo and secret parameters (`password=`, `token=`) masked in any text."""
    if "://" in text:
        text = _mask_userinfo(text)
    if "=" in text:
        text = _mask_query(text)
    return text


def _mask_query(word: str) -> str:
    def parameter(found: re.Match[str]) -> str:
        if not is_secret_name(unquote_plus(found.group(1))):
            return found.group(0)
        return found.group(0)[: found.start(2) - found.start(0)] + MASK

    return _QUERY_PARAMETER.sub(parameter, word)


# --- putting it together -----------------------------------------------------------------

#: a word without any of these has nothing for a rule or `_mask_inside` to find
_RULE_CHARACTERS: Final = re.compile(r"[-=:\s]")
#: how deep shell commands inside arguments are looked into (`sh -c "su -c '...'"`)
_MAX_DEPTH: Final = 3


def _tool_of(word: str) -> str | None:
    name = _unquoted(word).rpartition("/")[2]
    return name if name in _TOOLS else None


def _mask_words(words: Sequence[str], depth: int) -> list[str]:
    masked: list[str] = []
    tool: str | None = None
    index = 0
    while index < len(words):
        word = words[index]
        tool = _tool_of(word) or tool
        if _RULE_CHARACTERS.search(word) is None:
            # Every rule needs one of these characters: most words are plain, and pass.
            masked.append(word)
            index += 1
            continue
        at = Words(words, index, tool)
        for rule in RULES:
            verdict = rule.apply(at)
            if verdict is not None:
                # `--password` as the last word has no value to hide.
                following = verdict.following[: len(words) - index - 1]
                masked.append(verdict.word)
                masked.extend(following)
                index += 1 + len(following)
                break
        else:
            masked.append(_mask_inside(word, depth))
            index += 1
    return masked


def _mask_inside(word: str, depth: int) -> str:
    """A word no rule claimed: its URLs, its query, and the shell words it may hold."""
    word = mask_text(word)
    if depth >= _MAX_DEPTH or _WHITESPACE.search(word) is None:
        return word
    text = _unquoted(word)
    if text is not word:
        # A quoted shell command (`sh -c "mysql -p..."` inside `bash -c`): its words.
        return word[0] + _mask_inside(text, depth + 1) + word[-1]
    spans = [m.span() for m in _SHELL_WORD.finditer(word)]
    inner = _mask_words([word[a:b] for a, b in spans], depth + 1)
    pieces = []
    done = 0
    for (start, end), replacement in zip(spans, inner, strict=True):
        pieces.append(word[done:start])
        pieces.append(replacement)
        done = end
    pieces.append(word[done:])
    return "".join(pieces)


def mask_secrets(argv: Sequence[str]) -> tuple[str, ...]:
    """The argument vector with every secret value the rules find replaced by `***`."""
    return tuple(_mask_words(argv, 0))


def cut_command_line(argv: Sequence[str]) -> tuple[tuple[str, ...], int]:
    """
    The arguments that fit in `COMMAND_LINE_LIMIT` characters (spaces between them
    counted), the last one cut if need be, and the whole command line's length.
    """
    total = sum(len(arg) for arg in argv) + max(len(argv) - 1, 0)
    if total <= COMMAND_LINE_LIMIT:
        return tuple(argv), total
    kept: list[str] = []
    room = COMMAND_LINE_LIMIT
    for arg in argv:
        if len(arg) >= room:
            kept.append(arg[:room])
            break
        kept.append(arg)
        room -= len(arg) + 1
    return tuple(kept), total


def _shown_command_line(argv: tuple[str, ...]) -> str:
    kept, total = cut_command_line(argv)
    shown = " ".join(mask_secrets(kept))
    if total > COMMAND_LINE_LIMIT:
        shown += f" [cut: {total:,} characters, the first {COMMAND_LINE_LIMIT:,} shown]"
    return shown


def _characters(argv: tuple[str, ...]) -> int:
    return sum(len(arg) for arg in argv)


#: The command line as a page shows it: cut at the limit (saying so), then masked. Kept
#: for the next request, as a page of a thousand processes shows the same command lines
#: request after request, and masking them all takes about 45 ms.
shown_command_line: Final = BoundedMemo(
    _shown_command_line, entries=8192, longest=4096, size=_characters
)
