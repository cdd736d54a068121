# -*- test-case-name: tests.test_query -*-
"""What a module is given about a request: its query parameters, or a posted form."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar, overload
from urllib.parse import parse_qsl

from twistedspy.report import InvalidQuery

_T = TypeVar("_T")

#: A whole-number parameter: ASCII digits only (str.isdigit also takes "²" and other
#: digits that int() refuses), and few enough that int() is cheap (CPython refuses
#: more than 4300 digits with ValueError, and converting costs quadratic time).
_WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")
WHOLE_NUMBER_MAX = 999_999_999
#: how much of a refused value an error message repeats
_SHOWN = 40
#: the credentials a query may carry (`?login=&password=`, the original program's way):
#: never shown to a module, kept in a page's key, or written into a link (docs/security.md)
SECRET_KEYS = frozenset({"login", "password"})


class Query(Mapping[str, str]):
    """
    Query parameters, read-only. `query[key]` and `query.get(key)` give the last value
    (what `hello.py` expects); `getall(key)` gives every value in order, for repeated
    keys such as Prometheus' `collect[]=`.
    """

    __slots__ = ("_pairs",)

    def __init__(self, pairs: tuple[tuple[str, str], ...] = ()) -> None:
        self._pairs = pairs

    @classmethod
    def parse(cls, raw: str) -> Query:
        """Decode a raw query string (`a=1&b=%20`)."""
        return cls(tuple(parse_qsl(raw, keep_blank_values=True, errors="replace")))

    @classmethod
    def parse_apart(cls, raw: str, hidden: frozenset[str]) -> tuple[Query, Query]:
        """Decode a raw query string once into the pairs outside `hidden` and those in it."""
        shown: list[tuple[str, str]] = []
        kept: list[tuple[str, str]] = []
        for pair in parse_qsl(raw, keep_blank_values=True, errors="replace"):
            (kept if pair[0] in hidden else shown).append(pair)
        return cls(tuple(shown)), cls(tuple(kept))

    @overload
    def get(self, key: str, /) -> str | None: ...
    @overload
    def get(self, key: str, default: str | _T, /) -> str | _T: ...
    def get(self, key: str, default: object = None, /) -> object:
        # Mapping.get would go through __getitem__, and a KeyError for every missing key:
        # the dispatcher asks for `format` on every request.
        for k, v in reversed(self._pairs):
            if k == key:
                return v
        return default

    def whole_number(
        self, key: str, *, minimum: int = 0, maximum: int = WHOLE_NUMBER_MAX
    ) -> int | None:
        """
        The parameter as a whole number from `minimum` to `maximum`, None if absent or
        empty, or InvalidQuery (a 400) saying what is allowed.
        """
        text = self.get(key)
        if not text:
            return None
        if _WHOLE_NUMBER.fullmatch(text) is None or not minimum <= int(text) <= maximum:
            shown = text if len(text) <= _SHOWN else text[:_SHOWN] + "…"
            most = "" if maximum == WHOLE_NUMBER_MAX else f" and at most {maximum}"
            raise InvalidQuery(
                f"{key} must be a whole number of at least {minimum}{most}; got {shown!r}"
            )
        return int(text)

    def getall(self, key: str) -> list[str]:
        return [v for k, v in self._pairs if k == key]

    def pairs(self) -> tuple[tuple[str, str], ...]:
        return self._pairs

    def __getitem__(self, key: str) -> str:
        values = self.getall(key)
        if not values:
            raise KeyError(key)
        return values[-1]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k for k, _ in self._pairs))

    def __len__(self) -> int:
        return len(dict.fromkeys(k for k, _ in self._pairs))

    def __repr__(self) -> str:
        return f"Query({self._pairs!r})"


@dataclass(frozen=True, slots=True)
class Submission:
    """A POSTed body with what a module needs to know of who sent it."""

    body: bytes
    content_type: str
    client: str
    user: str | None
    query: Query
