# -*- test-case-name: tests.test_parser -*-
"""HTTP/1.x for twistedspy: the request grammar and parser, free of any I/O."""

from twistedspy.http.parser import (
    MAX_BODY,
    MAX_FIELDS,
    MAX_HEADER_BYTES,
    MAX_LINE,
    BadRequest,
    ContentTooLarge,
    HeaderFieldsTooLarge,
    HTTPError,
    Request,
    RequestParser,
    RequestTimeout,
    TransferEncodingNotImplemented,
    URITooLong,
    VersionNotSupported,
)

__all__ = [
    "MAX_BODY",
    "MAX_FIELDS",
    "MAX_HEADER_BYTES",
    "MAX_LINE",
    "BadRequest",
    "ContentTooLarge",
    "HTTPError",
    "HeaderFieldsTooLarge",
    "Request",
    "RequestParser",
    "RequestTimeout",
    "TransferEncodingNotImplemented",
    "URITooLong",
    "VersionNotSupported",
]
