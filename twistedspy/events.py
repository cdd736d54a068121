# -*- test-case-name: tests.test_journal -*-
"""Journal events: one call that every part of the server uses to record what happened.

Events travel through `twisted.logger` like any other log event, marked with
`spy_event` (the event name) and `spy_fields` (its `key=value` fields), so that the
journal observer can write exactly the lines of docs/operations.md, "The journal", and
ignore the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

#: events shown only in `verbose` mode (docs/operations.md, "The journal")
VERBOSE_ONLY = frozenset({"connection", "headers"})

_LEVELS = frozenset(LogLevel.iterconstants())


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
    if level not in _LEVELS:
        raise ValueError(f"not a log level: {level!r}")
    quiet = level is LogLevel.debug or (level is LogLevel.info and event in VERBOSE_ONLY)
    if quiet and not keeps(log, event, level):
        return
    # The event `log.emit(level, "{spy_event}", ...)` would make, handed to the logger's
    # observer directly: emit checks the level against LogLevel.iterconstants(), which
    # sorts every constant on each call, and a busy server journals every request.
    log.observer(
        {
            "spy_event": event,
            "spy_fields": fields,
            "log_logger": log,
            "log_level": level,
            "log_namespace": log.namespace,
            "log_source": log.source,
            "log_format": "{spy_event}",
            "log_time": time.time(),
        }
    )


def recorder(log: Logger, event: str, keys: Sequence[str]) -> Callable[..., None]:
    """
    `record` for an info event written often with the same fields: call what it returns
    with the values of `keys`, in that order. Where the logger's observer writes such
    events itself (the journal's route), no event is made for each (docs/performance.md).
    """
    prepare = getattr(log.observer, "prepare", None)
    written: Callable[..., None] | None = None if prepare is None else prepare(event, keys)
    if written is not None:
        return written

    def record_values(*values: object) -> None:
        if len(values) != len(keys):
            raise TypeError(f"{event} takes {len(keys)} values, not {len(values)}")
        record_fields(log, event, dict(zip(keys, values, strict=True)))

    return record_values


def keeps(log: Logger, event: str, level: LogLevel = LogLevel.info) -> bool:
    """
    Whether an event called `event` sent to `log` at `level` (info or debug) is written
    anywhere; False only when the journal behind it surely leaves it out (short mode,
    docs/operations.md, "The journal"), so that the caller need not gather its fields.
    """
    journal_keeps = getattr(log.observer, "keeps", None)
    return journal_keeps is None or bool(journal_keeps(event, level))


def record_failure(
    log: Logger, event: str, failure: Failure | None = None, /, **fields: object
) -> None:
    """Write an error event with the traceback of `failure`, or of the one being handled."""
    log.failure("{spy_event}", failure, spy_event=event, spy_fields=fields)
