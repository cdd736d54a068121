# -*- test-case-name: tests.test_journal -*-
"""Journal events: one call that every part of the server uses to record what happened.

Events travel through `twisted.logger` like any other log event, marked with
`spy_event` (the event name) and `spy_fields` (its `key=value` fields), so that the
journal observer can write exactly SPEC §5's lines and ignore the rest.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

#: events shown only in `verbose` mode (SPEC §5)
VERBOSE_ONLY = frozenset({"connection", "headers"})


def record(
    log: Logger,
    event: str,
    level: LogLevel = LogLevel.info,
    **fields: object,
) -> None:
    """Write one journal event; `fields` become its `key=value` pairs, in order."""
    record_fields(log, event, fields, level)


def record_fields(
    log: Logger, event: str, fields: Mapping[str, object], level: LogLevel = LogLevel.info
) -> None:
    """`record`, for fields whose names come from outside (a request's header names)."""
    log.emit(level, "{spy_event}", spy_event=event, spy_fields=fields)


def record_failure(
    log: Logger, event: str, failure: Failure | None = None, /, **fields: object
) -> None:
    """Write an error event with the traceback of `failure`, or of the one being handled."""
    log.failure("{spy_event}", failure, spy_event=event, spy_fields=fields)
