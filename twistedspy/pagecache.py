# -*- test-case-name: tests.test_pagecache -*-
"""Finished pages of modules that say how long they stay true (`max_age`).

A module such as `version` shows facts that change once a second at most, yet rendering
them costs a thread hop, file reads and a Jinja2 render: ten times the HTTP work around
it. A module that declares `max_age` (seconds) lets the dispatcher answer the same
question with the same bytes until that many seconds have passed on the reactor's clock.

What a cached answer may depend on is all in its key: the module, the format, the query
pairs the module sees, and the user who asked (so no page ever crosses from one user to
another while Security is on). Only GET and HEAD pages with status 200 are kept; a POST
never reads or fills the cache. A request that misses while the same page is being made
for another one waits for that one instead of making it again.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.internet.defer import maybeDeferred

from twistedspy.http.response import Response, with_gzip
from twistedspy.inflight import SharedCollection

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred
    from twisted.internet.interfaces import IReactorTime

    from twistedspy.interfaces import IInfoModule

#: module name, JSON or not, the visible query pairs, the user (None: anonymous)
PageKey = tuple[str, bool, tuple[tuple[str, str], ...], str | None]

#: pages kept at most; the least recently used goes first
CACHE_SIZE = 128


def max_age_of(module: IInfoModule) -> float:
    """
    The module's optional `max_age` in seconds, or 0 (never reused) when it has none or
    declares anything but a positive finite number.
    """
    age = getattr(module, "max_age", 0)
    if isinstance(age, bool) or not isinstance(age, int | float):
        return 0.0
    return float(age) if 0 < age < math.inf else 0.0


@dataclass(frozen=True, slots=True)
class _Entry:
    #: the module object that made the page: a module replaced under the same name
    #: (a ModulesDir file) never serves its predecessor's page
    module: IInfoModule
    response: Response
    expires: float


class PageCache:
    """A small LRU map from `PageKey` to a finished response, expiring by the clock."""

    def __init__(self, clock: IReactorTime, size: int = CACHE_SIZE) -> None:
        self._clock = clock
        self._size = size
        self._entries: OrderedDict[PageKey, _Entry] = OrderedDict()
        self._making: dict[PageKey, SharedCollection[Response]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: PageKey, module: IInfoModule) -> Response | None:
        """The page kept for `key` if `module` made it and it is still fresh."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.module is not module or self._clock.seconds() >= entry.expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.response

    def fill(
        self,
        key: PageKey,
        module: IInfoModule,
        max_age: float,
        make: Callable[[], Deferred[Response]],
    ) -> Deferred[Response]:
        """
        Make the page with `make` (or join the making already under way for `key`), and
        keep it for `max_age` seconds if it is a 200. Anything else (an error page, a
        time-out) is answered but not kept: the next request asks the module again.
        """
        making = self._making.get(key)
        if making is None:

            def start() -> Deferred[Response]:
                made = maybeDeferred(make).addCallback(self._keep, key, module, max_age)
                return made.addBoth(finished)

            def finished(result: object) -> object:
                # Before the waiters hear of it: a request they make next starts afresh.
                if self._making.get(key) is making:
                    del self._making[key]
                return result

            making = self._making[key] = SharedCollection(start)
        return making()

    def _keep(self, response: Response, key: PageKey, module: IInfoModule, age: float) -> Response:
        if response.status != 200:
            return response
        # Compressed once now, not once per request (bodies over 1 KiB are gzipped).
        response = with_gzip(response)
        self._entries[key] = _Entry(module, response, self._clock.seconds() + age)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return response
