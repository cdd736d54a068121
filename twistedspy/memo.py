# -*- test-case-name: tests.test_memo -*-
"""Results of a pure function kept for the arguments that repeat, within a fixed bound."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

_Key = TypeVar("_Key", bound=Hashable)
_Result = TypeVar("_Result")


class BoundedMemo(Generic[_Key, _Result]):
    """
    `function(key)`, kept for keys no larger than `longest` (as `size` measures), at most
    `entries` of them, all forgotten at once when full. For values that repeat from
    request to request but come from outside (clients, local users), so that no input
    can make the memory grow: nothing large is kept, and never too many.
    """

    __slots__ = ("_entries", "_function", "_longest", "_size", "known")

    def __init__(
        self,
        function: Callable[[_Key], _Result],
        *,
        entries: int,
        longest: int,
        size: Callable[[_Key], int],
    ) -> None:
        self._function = function
        self._entries = entries
        self._longest = longest
        self._size = size
        #: what is kept, for a caller's own fast path (`known.get(key)`)
        self.known: dict[_Key, _Result] = {}

    def __call__(self, key: _Key) -> _Result:
        result = self.known.get(key)
        if result is None:
            result = self._function(key)
            if self._size(key) <= self._longest:
                if len(self.known) >= self._entries:
                    self.known.clear()
                self.known[key] = result
        return result
