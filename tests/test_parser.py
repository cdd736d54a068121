"""
Table-driven tests of the request parser, after h11's: every case is fed whole, one
byte at a time, and with a second request appended, so framing bugs cannot hide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from twisted.trial.unittest import SynchronousTestCase

from twistedspy.http import (
    MAX_LINE,
    NEED_DATA,
    BadRequest,
    BodyData,
    ContentTooLarge,
    Event,
    HeaderFieldsTooLarge,
    HTTPError,
    Request,
    RequestAssembler,
    RequestHead,
    RequestParser,
    RequestTimeout,
    TransferEncodingNotImplemented,
    URITooLong,
    VersionNotSupported,
)
from twistedspy.http import parser as parser_module
from twistedspy.http.parser import END_OF_MESSAGE

NEXT = b"GET /second?n=2 HTTP/1.1\r\nHost: next.example\r\n\r\n"


def feed_whole(data: bytes) -> list[Request]:
    return RequestParser().feed(data)


def feed_bytewise(data: bytes) -> list[Request]:
    parser = RequestParser()
    done: list[Request] = []
    for i in range(len(data)):
        done += parser.feed(data[i : i + 1])
    return done


@dataclass(frozen=True)
class Valid:
    name: str
    data: bytes
    #: attributes of the one Request expected
    expect: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Invalid:
    name: str
    data: bytes
    error: type[HTTPError]


def get(target: bytes = b"/", *headers: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    """A request with a Host header first, unless the headers bring their own."""
    lines = [b"GET " + target + b" " + version]
    if not any(h.lower().startswith(b"host:") for h in headers):
        lines.append(b"Host: example.com")
    lines += headers
    return b"\r\n".join(lines) + b"\r\n\r\n"


VALID = [
    Valid(
        "brackets_in_query",
        b"GET /metrics?collect[]=cpu HTTP/1.1\r\nHost: h\r\n\r\n",
        {"path": "/metrics", "query": "collect[]=cpu"},
    ),
    Valid(
        "simple_get",
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        {
            "method": "GET",
            "target": "/",
            "path": "/",
            "query": "",
            "version": (1, 1),
            "headers": (("host", "example.com"),),
            "body": b"",
            "host": "example.com",
            "keep_alive": True,
        },
    ),
    Valid(
        "origin_form_with_query",
        get(b"/processes?sort=rss&order=desc"),
        {
            "path": "/processes",
            "query": "sort=rss&order=desc",
            "target": "/processes?sort=rss&order=desc",
        },
    ),
    Valid("query_kept_raw", get(b"/p?name=a%20b+c"), {"query": "name=a%20b+c"}),
    Valid("empty_query", get(b"/p?"), {"path": "/p", "query": ""}),
    Valid("percent_decoded_once", get(b"/a%2541"), {"path": "/a%41"}),
    Valid("percent_utf8", get(b"/caf%C3%A9"), {"path": "/café"}),
    Valid("percent_slash", get(b"/a%2Fb"), {"path": "/a/b"}),
    Valid("head", b"HEAD /meminfo HTTP/1.1\r\nHost: h\r\n\r\n", {"method": "HEAD"}),
    Valid(
        "unusual_method_token", b"M-SEARCH / HTTP/1.1\r\nHost: h\r\n\r\n", {"method": "M-SEARCH"}
    ),
    Valid(
        "post_with_body",
        b"POST /message HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 12\r\n\r\nhello\r\nworld",
        {"method": "POST", "body": b"hello\r\nworld", "keep_alive": True},
    ),
    Valid(
        "body_with_crlf_inside",
        b"POST /m HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n\r\n\r\n",
        {"body": b"\r\n\r\n"},
    ),
    Valid("content_length_zero", get(b"/", b"Content-Length: 0"), {"body": b""}),
    Valid(
        "content_length_leading_zeros",
        get(b"/", b"Content-Length: 0003") + b"abc",
        {"body": b"abc"},
    ),
    Valid(
        "content_length_at_limit",
        get(b"/", b"Content-Length: 65536") + b"x" * 65536,
        {"body": b"x" * 65536},
    ),
    Valid("http10_closes", get(version=b"HTTP/1.0"), {"version": (1, 0), "keep_alive": False}),
    Valid(
        "http10_without_host",
        b"GET / HTTP/1.0\r\n\r\n",
        {"version": (1, 0), "host": "", "headers": ()},
    ),
    Valid(
        "http10_keep_alive",
        get(b"/", b"Connection: Keep-Alive", version=b"HTTP/1.0"),
        {"keep_alive": True},
    ),
    Valid(
        "http10_keep_alive_in_list",
        get(b"/", b"Connection: foo, keep-alive", version=b"HTTP/1.0"),
        {"keep_alive": True},
    ),
    Valid("http11_close", get(b"/", b"Connection: close"), {"keep_alive": False}),
    Valid("http11_close_in_list", get(b"/", b"Connection: te ,CLOSE"), {"keep_alive": False}),
    Valid(
        "http11_close_in_second_field",
        get(b"/", b"Connection: te", b"Connection: close"),
        {"keep_alive": False},
    ),
    Valid("http11_other_connection", get(b"/", b"Connection: upgrade"), {"keep_alive": True}),
    Valid("http12_is_11", get(version=b"HTTP/1.2"), {"version": (1, 1), "keep_alive": True}),
    Valid("http19_is_11", get(version=b"HTTP/1.9"), {"version": (1, 1)}),
    Valid(
        "absolute_form_overrides_host",
        b"GET http://target.example:8080/cpu?x=1 HTTP/1.1\r\nHost: other\r\n\r\n",
        {"host": "target.example:8080", "path": "/cpu", "query": "x=1"},
    ),
    Valid(
        "absolute_form_empty_path",
        b"GET HTTPS://Example.com HTTP/1.1\r\nHost: h\r\n\r\n",
        {"host": "Example.com", "path": "/", "query": ""},
    ),
    Valid(
        "absolute_form_query_without_path",
        b"GET http://e.com?a=b HTTP/1.1\r\nHost: h\r\n\r\n",
        {"path": "/", "query": "a=b"},
    ),
    Valid(
        "absolute_form_ipv6",
        b"GET http://[::1]:8080/ HTTP/1.1\r\nHost: h\r\n\r\n",
        {"host": "[::1]:8080"},
    ),
    Valid(
        "absolute_form_http10_without_host",
        b"GET http://e.com/x HTTP/1.0\r\n\r\n",
        {"host": "e.com", "path": "/x"},
    ),
    Valid(
        "connect_authority_form",
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        {"method": "CONNECT", "target": "example.com:443", "path": "", "host": "example.com:443"},
    ),
    Valid(
        "options_asterisk",
        b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        {"method": "OPTIONS", "target": "*", "path": ""},
    ),
    Valid("host_with_port", get(b"/", b"Host: 127.0.0.1:8080"), {"host": "127.0.0.1:8080"}),
    Valid("host_ipv6", get(b"/", b"Host: [2001:db8::7]:80"), {"host": "[2001:db8::7]:80"}),
    Valid("host_ipv4_mapped", get(b"/", b"Host: [::ffff:1.2.3.4]"), {"host": "[::ffff:1.2.3.4]"}),
    Valid(
        "headers_lowercased_ows_stripped",
        get(b"/", b"X-Thing:   a  b \t", b"Accept:text/html"),
        {"headers": (("host", "example.com"), ("x-thing", "a  b"), ("accept", "text/html"))},
    ),
    Valid(
        "empty_field_value",
        get(b"/", b"X-Empty:"),
        {"headers": (("host", "example.com"), ("x-empty", ""))},
    ),
    Valid(
        "obs_text_value",
        get(b"/", b"X-Name: caf\xe9"),
        {"headers": (("host", "example.com"), ("x-name", "caf\xe9"))},
    ),
    Valid(
        "bare_lf_line_ends",
        b"GET /lf HTTP/1.1\nHost: h\n\n",
        {"path": "/lf", "host": "h"},
    ),
    Valid("leading_empty_lines", b"\r\n\r\n" + get(b"/after"), {"path": "/after"}),
    Valid("eight_leading_empty_lines", b"\r\n" * 8 + get(b"/eight"), {"path": "/eight"}),
    Valid("hundred_fields", get(b"/", *(b"X-F%d: v" % i for i in range(99))), {}),
]

INVALID = [
    # -- request line: 400
    Invalid("two_spaces_after_method", b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", BadRequest),
    Invalid("two_spaces_before_version", b"GET /  HTTP/1.1\r\nHost: h\r\n\r\n", BadRequest),
    Invalid("tab_separator", b"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", BadRequest),
    Invalid("leading_space", b" GET / HTTP/1.1\r\nHost: h\r\n\r\n", BadRequest),
    Invalid("trailing_space", b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n", BadRequest),
    Invalid("method_not_token", b"GE(T / HTTP/1.1\r\nHost: h\r\n\r\n", BadRequest),
    Invalid("method_only", b"GET\r\nHost: h\r\n\r\n", BadRequest),
    Invalid("version_lowercase", b"GET / http/1.1\r\nHost: h\r\n\r\n", BadRequest),
    Invalid("version_two_digit_minor", b"GET / HTTP/1.10\r\nHost: h\r\n\r\n", BadRequest),
    Invalid("version_no_minor", b"GET / HTTP/1\r\nHost: h\r\n\r\n", BadRequest),
    Invalid("version_garbage", b"GET / HTTP/x.y\r\nHost: h\r\n\r\n", BadRequest),
    Invalid("four_parts", b"GET / HTTP/1.1 extra\r\nHost: h\r\n\r\n", BadRequest),
    Invalid("nul_in_request_line", b"GET /\x00 HTTP/1.1\r\nHost: h\r\n\r\n", BadRequest),
    Invalid("bare_cr_in_request_line", b"GET /a\rb HTTP/1.1\r\nHost: h\r\n\r\n", BadRequest),
    Invalid("non_ascii_target", b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", BadRequest),
    Invalid("too_many_empty_lines", b"\r\n" * 9 + get(), BadRequest),
    # -- request line: 505
    Invalid("http09_simple_request", b"GET /\r\n\r\n", VersionNotSupported),
    Invalid("http09_version", b"GET / HTTP/0.9\r\nHost: h\r\n\r\n", VersionNotSupported),
    Invalid("http20", b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", VersionNotSupported),
    Invalid("http30", b"GET / HTTP/3.0\r\nHost: h\r\n\r\n", VersionNotSupported),
    # -- request line: 414
    Invalid("request_line_too_long", get(b"/" + b"a" * 8192), URITooLong),
    # -- targets: 400
    Invalid("fragment", get(b"/a#frag"), BadRequest),
    Invalid("relative_target", get(b"a/b"), BadRequest),
    Invalid("bad_percent_escape", get(b"/a%zz"), BadRequest),
    Invalid("truncated_percent_escape", get(b"/a%4"), BadRequest),
    Invalid("percent_invalid_utf8", get(b"/a%C3%28"), BadRequest),
    Invalid("percent_nul", get(b"/a%00b"), BadRequest),
    Invalid("percent_control", get(b"/a%0Ab"), BadRequest),
    Invalid("percent_del", get(b"/a%7F"), BadRequest),
    Invalid("disallowed_char_in_path", get(b"/a<b>"), BadRequest),
    Invalid("ftp_scheme", get(b"ftp://e.com/x"), BadRequest),
    Invalid("absolute_form_userinfo", get(b"http://user:pw@e.com/x"), BadRequest),
    Invalid("absolute_form_empty_host", get(b"http:///x"), BadRequest),
    Invalid("absolute_form_bad_host", get(b"http://e_[x]/x"), BadRequest),
    Invalid("absolute_without_slashes", get(b"http:e.com/x"), BadRequest),
    Invalid("authority_form_with_get", get(b"example.com:443"), BadRequest),
    Invalid(
        "connect_with_origin_form",
        b"CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n",
        BadRequest,
    ),
    Invalid("asterisk_with_get", get(b"*"), BadRequest),
    # -- header fields: 400
    Invalid("space_before_colon", get(b"/", b"X-A : b"), BadRequest),
    Invalid("tab_before_colon", get(b"/", b"X-A\t: b"), BadRequest),
    Invalid("obs_fold_space", get(b"/", b"X-A: b", b" c"), BadRequest),
    Invalid("obs_fold_tab", get(b"/", b"X-A: b", b"\tc"), BadRequest),
    Invalid("no_colon", get(b"/", b"X-A b"), BadRequest),
    Invalid("empty_name", get(b"/", b": b"), BadRequest),
    Invalid("name_not_token", get(b"/", b"X(A): b"), BadRequest),
    Invalid("nul_in_value", get(b"/", b"X-A: a\x00b"), BadRequest),
    Invalid("ctl_in_value", get(b"/", b"X-A: a\x01b"), BadRequest),
    Invalid("del_in_value", get(b"/", b"X-A: a\x7fb"), BadRequest),
    Invalid("bare_cr_in_value", get(b"/", b"X-A: a\rb"), BadRequest),
    Invalid("bare_cr_at_end_of_value", get(b"/", b"X-A: a\r\r"), BadRequest),
    # -- Host: 400
    Invalid("http11_without_host", b"GET / HTTP/1.1\r\n\r\n", BadRequest),
    Invalid(
        "absolute_form_without_host_field",
        b"GET http://e.com/ HTTP/1.1\r\n\r\n",
        BadRequest,
    ),
    Invalid("two_hosts", get(b"/", b"Host: a", b"Host: a"), BadRequest),
    Invalid(
        "two_hosts_http10", get(b"/", b"Host: a", b"Host: b", version=b"HTTP/1.0"), BadRequest
    ),
    Invalid("empty_host", get(b"/", b"Host:"), BadRequest),
    Invalid("host_with_path", get(b"/", b"Host: a/b"), BadRequest),
    Invalid("host_with_userinfo", get(b"/", b"Host: u@a"), BadRequest),
    Invalid("host_with_space", get(b"/", b"Host: a b"), BadRequest),
    Invalid("host_bad_port", get(b"/", b"Host: a:8x"), BadRequest),
    Invalid("host_bad_ipv6", get(b"/", b"Host: [::g]"), BadRequest),
    # -- Authorization: 400
    Invalid(
        "two_authorizations",
        get(b"/", b"Authorization: Basic YTpi", b"Authorization: Basic YzpkZA=="),
        BadRequest,
    ),
    # -- Content-Length: 400 / 413
    Invalid("content_length_negative", get(b"/", b"Content-Length: -1"), BadRequest),
    Invalid("content_length_plus", get(b"/", b"Content-Length: +1") + b"x", BadRequest),
    Invalid(
        "content_length_space_inside", get(b"/", b"Content-Length: 1 0") + b"x" * 10, BadRequest
    ),
    Invalid("content_length_list", get(b"/", b"Content-Length: 5, 5") + b"hello", BadRequest),
    Invalid("content_length_hex", get(b"/", b"Content-Length: 0x5") + b"hello", BadRequest),
    Invalid("content_length_empty", get(b"/", b"Content-Length:"), BadRequest),
    Invalid(
        "content_length_twice",
        get(b"/", b"Content-Length: 5", b"Content-Length: 5") + b"hello",
        BadRequest,
    ),
    Invalid("content_length_too_large", get(b"/", b"Content-Length: 65537"), ContentTooLarge),
    Invalid("content_length_huge", get(b"/", b"Content-Length: " + b"9" * 5000), ContentTooLarge),
    # -- Transfer-Encoding: 400 / 501
    Invalid(
        "te_and_content_length",
        get(b"/", b"Transfer-Encoding: chunked", b"Content-Length: 5") + b"0\r\n\r\n",
        BadRequest,
    ),
    Invalid(
        "te_chunked",
        get(b"/", b"Transfer-Encoding: chunked") + b"0\r\n\r\n",
        TransferEncodingNotImplemented,
    ),
    Invalid(
        "te_http10",
        get(b"/", b"Transfer-Encoding: identity", version=b"HTTP/1.0"),
        TransferEncodingNotImplemented,
    ),
    # -- header size: 431
    Invalid("header_line_too_long", get(b"/", b"X-A: " + b"a" * 8188), HeaderFieldsTooLarge),
    Invalid(
        "too_many_fields", get(b"/", *(b"X-F%d: v" % i for i in range(100))), HeaderFieldsTooLarge
    ),
    Invalid(
        "header_bytes_too_large",
        get(b"/", *(b"X-F%d: " % i + b"v" * 8000 for i in range(9))),
        HeaderFieldsTooLarge,
    ),
]

# What the error page says for rows whose status alone could hide the wrong reason.
REASONS = {
    "bare_cr_in_request_line": "carriage return",
    "bare_cr_in_value": "carriage return",
    "too_many_empty_lines": "empty lines",
    "fragment": "fragment",
    "bad_percent_escape": "not a valid path",
    "percent_invalid_utf8": "UTF-8",
    "percent_nul": "control character",
    "absolute_form_userinfo": "user name",
    "absolute_form_empty_host": "no valid host",
    "space_before_colon": "between its name and the colon",
    "obs_fold_space": "folding",
    "obs_fold_tab": "folding",
    "empty_name": "empty name",
    "http11_without_host": "must have a Host",
    "two_hosts_http10": "more than one Host",
    "empty_host": "Host header field is empty",
    "two_authorizations": "more than one Authorization",
    "content_length_list": "plain number",
    "content_length_twice": "more than one Content-Length",
    "te_and_content_length": "both Transfer-Encoding and Content-Length",
    "too_many_fields": "More than 100",
    "header_bytes_too_large": "together",
}


def _valid_tests(case: Valid) -> dict[str, Callable[[SynchronousTestCase], None]]:
    def check(test: SynchronousTestCase, request: Request) -> None:
        for attribute, expected in case.expect.items():
            test.assertEqual(getattr(request, attribute), expected, attribute)

    def whole(test: SynchronousTestCase) -> None:
        [request] = feed_whole(case.data)
        check(test, request)

    def bytewise(test: SynchronousTestCase) -> None:
        requests = feed_bytewise(case.data)
        test.assertEqual(requests, feed_whole(case.data))
        check(test, requests[0])

    def appended(test: SynchronousTestCase) -> None:
        first, second = feed_whole(case.data + NEXT)
        check(test, first)
        test.assertEqual(second, feed_whole(NEXT)[0])
        test.assertEqual(
            (second.path, second.query, second.host), ("/second", "n=2", "next.example")
        )

    return {"whole": whole, "bytewise": bytewise, "appended": appended}


def _invalid_tests(case: Invalid) -> dict[str, Callable[[SynchronousTestCase], None]]:
    def whole(test: SynchronousTestCase) -> None:
        error = test.assertRaises(HTTPError, feed_whole, case.data)
        test.assertIs(type(error), case.error, error.message)
        test.assertIn(REASONS.get(case.name, ""), error.message)
        test.assertTrue(error.close)

    def bytewise(test: SynchronousTestCase) -> None:
        error = test.assertRaises(HTTPError, feed_bytewise, case.data)
        test.assertIs(type(error), case.error, error.message)

    def appended(test: SynchronousTestCase) -> None:
        error = test.assertRaises(HTTPError, feed_whole, case.data + NEXT)
        test.assertIs(type(error), case.error, error.message)

    return {"whole": whole, "bytewise": bytewise, "appended": appended}


def _table(cls: type[SynchronousTestCase]) -> type[SynchronousTestCase]:
    """Give the class one test method per case and feeding mode."""
    for valid in VALID:
        for mode, method in _valid_tests(valid).items():
            setattr(cls, f"test_valid_{valid.name}_{mode}", method)
    for invalid in INVALID:
        for mode, method in _invalid_tests(invalid).items():
            setattr(cls, f"test_invalid_{invalid.name}_{mode}", method)
    return cls


@_table
class RequestTableTests(SynchronousTestCase):
    """Each row of VALID and INVALID, fed whole, byte by byte, and with a request after it."""

    def test_names_unique(self) -> None:
        names = [case.name for case in VALID] + [case.name for case in INVALID]
        self.assertEqual(len(names), len(set(names)))
        self.assertLessEqual(set(REASONS), {case.name for case in INVALID})


class StatusTests(SynchronousTestCase):
    """The error hierarchy carries what the response needs."""

    def test_statuses(self) -> None:
        expected = {
            BadRequest: (400, "Bad Request"),
            RequestTimeout: (408, "Request Timeout"),
            ContentTooLarge: (413, "Content Too Large"),
            URITooLong: (414, "URI Too Long"),
            HeaderFieldsTooLarge: (431, "Request Header Fields Too Large"),
            TransferEncodingNotImplemented: (501, "Not Implemented"),
            VersionNotSupported: (505, "HTTP Version Not Supported"),
        }
        for cls, (status, reason) in expected.items():
            error = cls()
            self.assertIsInstance(error, HTTPError)
            self.assertEqual((error.status, error.reason), (status, reason))
            self.assertTrue(error.close)
            self.assertTrue(error.message)
            self.assertEqual(str(error), error.message)

    def test_message(self) -> None:
        self.assertEqual(BadRequest("plain words").message, "plain words")


def events(parser: RequestParser, data: bytes = b"") -> list[Event]:
    """Every event the bytes so far make, NEED_DATA last."""
    parser.receive_data(data)
    found = [parser.next_event()]
    while found[-1] is not NEED_DATA:
        found.append(parser.next_event())
    return found


class EventTests(SynchronousTestCase):
    """`receive_data` / `next_event`, as the connection drives them."""

    def test_request_without_body(self) -> None:
        parser = RequestParser()
        self.assertTrue(parser.between_requests)
        self.assertEqual(events(parser, b"GET /cpu HTTP/1.1\r\n"), [NEED_DATA])
        self.assertFalse(parser.between_requests)
        self.assertTrue(parser.request_line_received)
        self.assertEqual(events(parser, b"Host: h\r"), [NEED_DATA])
        head, end, need = events(parser, b"\n\r\n")
        assert isinstance(head, RequestHead)
        self.assertEqual(head.body_length, 0)
        self.assertEqual((head.request.path, head.request.host), ("/cpu", "h"))
        self.assertEqual((end, need), (END_OF_MESSAGE, NEED_DATA))
        self.assertTrue(parser.between_requests)
        self.assertFalse(parser.request_line_received)

    def test_request_with_body_in_pieces(self) -> None:
        parser = RequestParser()
        head, body, need = events(
            parser, b"POST /message HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello"
        )
        assert isinstance(head, RequestHead)
        self.assertEqual((head.body_length, head.request.body), (11, b""))
        self.assertEqual((body, need), (BodyData(b"hello"), NEED_DATA))
        self.assertFalse(parser.between_requests)
        # The body ends inside this read; the next request begins in it.
        rest, end, head2, end2, need = events(parser, b" world" + b"GET / HTTP/1.0\r\n\r\n")
        self.assertEqual((rest, end, end2), (BodyData(b" world"), END_OF_MESSAGE, END_OF_MESSAGE))
        self.assertEqual(head.complete([b"hello", b" world"]).body, b"hello world")
        assert isinstance(head2, RequestHead)
        self.assertEqual(head2.request.version, (1, 0))

    def test_nothing_is_parsed_until_asked(self) -> None:
        """Pipelined bytes wait in the parser, in order, while a response is prepared."""
        parser = RequestParser()
        parser.receive_data(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\n")
        first = parser.next_event()
        assert isinstance(first, RequestHead)
        self.assertEqual(parser.next_event(), END_OF_MESSAGE)
        parser.receive_data(b"Host: h\r\n\r\n")
        self.assertFalse(parser.between_requests)
        second = parser.next_event()
        assert isinstance(second, RequestHead)
        self.assertEqual([first.request.path, second.request.path], ["/1", "/2"])

    def test_assembler(self) -> None:
        assembler = RequestAssembler()
        parser = RequestParser()
        parser.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab")
        found = []
        while (event := parser.next_event()) is not NEED_DATA:
            found.append(assembler.add(event))
        request = found[-1]
        self.assertEqual(found[:-1], [None, None])
        assert isinstance(request, Request)
        self.assertEqual(request.body, b"ab")

    def test_content_too_large_before_body(self) -> None:
        """413 comes as soon as the header is complete, before any body byte."""
        parser = RequestParser(max_body=10)
        parser.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n")
        self.assertRaises(ContentTooLarge, parser.next_event)

    def test_empty_lines_begin_a_request(self) -> None:
        """Empty lines are skipped (RFC 9112 §2.2), but they are bytes of the next request."""
        parser = RequestParser()
        self.assertEqual(events(parser, b"\r\n"), [NEED_DATA])
        self.assertFalse(parser.between_requests)
        self.assertFalse(parser.request_line_received)

    def test_line_too_long(self) -> None:
        """414 while the request line is awaited, 431 for a header line, before its end."""
        parser = RequestParser(max_line=20)
        parser.receive_data(b"GET /" + b"a" * 17)
        self.assertRaises(URITooLong, parser.next_event)
        parser = RequestParser(max_line=20)
        self.assertEqual(events(parser, b"GET / HTTP/1.1\r\nX: " + b"a" * 17), [NEED_DATA])
        parser.receive_data(b"a")  # 21 bytes: a line at the limit and its CR
        self.assertIs(parser.next_event(), NEED_DATA)
        parser.receive_data(b"a")
        self.assertRaises(HeaderFieldsTooLarge, parser.next_event)

    def test_a_line_at_the_limit_with_its_cr(self) -> None:
        parser = RequestParser(max_line=20)
        line = b"GET /" + b"a" * 6 + b" HTTP/1.1"
        self.assertEqual(len(line), 20)
        self.assertEqual(events(parser, line + b"\r"), [NEED_DATA])
        self.assertEqual(events(parser, b"\nHost: h\r\n")[-1], NEED_DATA)

    def test_limits_configurable(self) -> None:
        parser = RequestParser(max_fields=2)
        parser.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nA: b\r\nC: d\r\n")
        self.assertRaises(HeaderFieldsTooLarge, parser.next_event)

    def test_error_is_sticky(self) -> None:
        """After an error the stream position is unknown: nothing more is parsed."""
        parser = RequestParser()
        parser.receive_data(b"GET  / HTTP/1.1\r\n")
        error = self.assertRaises(BadRequest, parser.next_event)
        parser.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertIs(self.assertRaises(BadRequest, parser.next_event), error)
        self.assertRaises(BadRequest, parser.feed, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")


class HeaderAccessTests(SynchronousTestCase):
    def test_header_last_value(self) -> None:
        [request] = feed_whole(get(b"/", b"Accept: a", b"X: 1", b"accept: b"))
        self.assertEqual(request.header("Accept"), "b")
        self.assertEqual(request.header_values("ACCEPT"), ["a", "b"])
        self.assertIsNone(request.header("missing"))
        self.assertEqual(request.header_values("missing"), [])


class PipelineTests(SynchronousTestCase):
    def test_pipelined_in_order(self) -> None:
        data = (
            get(b"/one")
            + b"POST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
            + b"HEAD /three HTTP/1.0\r\n\r\n"
        )
        requests = feed_whole(data)
        self.assertEqual([r.path for r in requests], ["/one", "/two", "/three"])
        self.assertEqual(requests[1].body, b"abc")
        self.assertEqual(feed_bytewise(data), requests)

    def test_partial_request_waits(self) -> None:
        parser = RequestParser()
        self.assertEqual(parser.feed(b"GET / HTTP/1.1\r\nHost: h\r\n"), [])
        self.assertFalse(parser.between_requests)
        [request] = parser.feed(b"\r\n")
        self.assertEqual(request.host, "h")

    def test_unterminated_long_line(self) -> None:
        """feed() notices an over-long line before its end arrives."""
        parser = RequestParser()
        self.assertRaises(URITooLong, parser.feed, b"GET /" + b"a" * 9000)


class RememberedLinesTests(SynchronousTestCase):
    """Request lines, paths and Host values parsed once are looked up, not parsed again."""

    def test_same_request_same_result(self) -> None:
        data = get(b"/caf%C3%A9/x", b"Host: [::1]:8080") + get(b"/plain", b"Host: a.example")
        first, second = feed_whole(data), feed_whole(data)
        self.assertEqual(first, second)
        self.assertEqual([r.path for r in second], ["/caf\u00e9/x", "/plain"])
        self.assertEqual(second[0].host, "[::1]:8080")

    def test_limits_still_apply_to_a_known_line(self) -> None:
        line = b"GET /" + b"a" * 200 + b" HTTP/1.1\r\n"
        self.assertEqual(events(RequestParser(), line), [NEED_DATA])
        parser = RequestParser(max_line=100)
        parser.receive_data(line)
        self.assertRaises(URITooLong, parser.next_event)

    def test_only_what_parsed_is_remembered(self) -> None:
        for _ in range(2):
            self.assertRaises(BadRequest, feed_whole, get(b"/a b"))
            self.assertRaises(BadRequest, feed_whole, get(b"/x", b"Host: bad host"))
            self.assertRaises(BadRequest, feed_whole, b"OPTIONS /%00 HTTP/1.1\r\nHost: h\r\n\r\n")
            self.assertRaises(BadRequest, feed_whole, b"CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n")
        # A path that is valid for GET is not thereby valid for CONNECT.
        feed_whole(get(b"/y"))
        self.assertRaises(BadRequest, feed_whole, b"CONNECT /y HTTP/1.1\r\nHost: h\r\n\r\n")

    def test_no_userinfo_is_kept(self) -> None:
        """A password in a target's userinfo is refused, and not remembered either."""
        for data in (
            b"GET http://alice:s3cret@h/ HTTP/1.1\r\nHost: h\r\n\r\n",
            b"CONNECT alice:s3cret@h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
        ):
            with self.subTest(data=data):
                self.assertRaises(BadRequest, feed_whole, data)
                self.assertEqual(tables_holding("s3cret"), [])

    def test_no_query_is_kept(self) -> None:
        secret = b"/index?login=alice&password=s3cret-passw0rd"
        [request] = feed_whole(get(secret))
        self.assertEqual(request.query, "login=alice&password=s3cret-passw0rd")
        tables = (parser_module._known_heads, parser_module._known_paths)
        self.assertNotIn("s3cret", repr(tables))

    def test_tables_are_bounded(self) -> None:
        for n in range(3 * parser_module._KNOWN_MAX):
            feed_whole(get(b"/p%d" % n, b"Host: h%d" % n))
        for table in (
            parser_module._known_heads,
            parser_module._known_paths,
            parser_module._known_hosts,
        ):
            self.assertLessEqual(len(table), parser_module._KNOWN_MAX)


class RememberedHeadsTests(SynchronousTestCase):
    """A whole request head parsed once is looked up by its exact bytes next time."""

    def setUp(self) -> None:
        parser_module._known_requests.clear()

    def test_same_bytes_same_request(self) -> None:
        data = get(b"/version", b"Accept: text/html")
        [first] = feed_whole(data)
        self.assertIn(data, parser_module._known_requests)
        [second] = feed_whole(data)
        self.assertIs(second, first)
        self.assertEqual(second, RequestParser(max_line=MAX_LINE - 1).feed(data)[0])

    def test_one_byte_differs(self) -> None:
        [first] = feed_whole(get(b"/version"))
        [second] = feed_whole(get(b"/versioN"))
        [third] = feed_whole(get(b"/version", b"Connection: close"))
        self.assertEqual(second.path, "/versioN")
        self.assertTrue(first.keep_alive)
        self.assertFalse(third.keep_alive)

    def test_pipelined_heads_each_looked_up(self) -> None:
        data = get(b"/a") + get(b"/b") + get(b"/a")
        first = feed_whole(data)
        self.assertEqual([r.path for r in first], ["/a", "/b", "/a"])
        second = feed_whole(data)
        self.assertEqual(second, first)
        self.assertIs(second[0], first[0])
        self.assertIs(second[2], first[0])

    def test_a_refused_head_stays_refused(self) -> None:
        for _ in range(2):
            self.assertRaises(BadRequest, feed_whole, get(b"/x", b"Host: bad host"))
        self.assertEqual(parser_module._known_requests, {})

    def test_other_limits_neither_take_nor_give(self) -> None:
        data = get(b"/" + b"a" * 200)
        feed_whole(data)
        parser = RequestParser(max_line=100)
        self.assertRaises(URITooLong, parser.feed, data)
        parser_module._known_requests.clear()
        RequestParser(max_line=MAX_LINE - 1).feed(data)
        self.assertEqual(parser_module._known_requests, {})

    def test_not_kept(self) -> None:
        """Queries, credentials, bodies, bare LFs and leading empty lines are not kept here
        (heads with credentials are kept apart, without them: CredentialHeadsTests)."""
        feed_whole(get(b"/index?login=alice&password=s3cret"))
        feed_whole(get(b"/", b"Authorization: Basic c2VjcmV0"))
        feed_whole(get(b"/", b"Cookie: session=s3cret"))
        feed_whole(b"POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab")
        feed_whole(b"GET / HTTP/1.1\nHost: h\n\n")
        feed_whole(b"\r\n" + get(b"/"))
        feed_whole(get(b"/", b"X-Long: " + b"y" * 2000))
        self.assertEqual(parser_module._known_requests, {})

    def test_a_head_in_pieces_is_parsed(self) -> None:
        data = get(b"/version")
        [first] = feed_whole(data)
        self.assertEqual(feed_bytewise(data), [first])

    def test_table_is_bounded(self) -> None:
        for n in range(3 * parser_module._KNOWN_REQUESTS_MAX):
            feed_whole(get(b"/p%d" % n))
        self.assertLessEqual(len(parser_module._known_requests), parser_module._KNOWN_REQUESTS_MAX)


def parsed(data: bytes, parser: RequestParser | None = None) -> Request | type[HTTPError]:
    """The one request `data` makes, or the class of the error it raises."""
    try:
        [request] = (parser or RequestParser()).feed(data)
    except HTTPError as error:
        return type(error)
    return request


def parsed_in_full(data: bytes) -> Request | type[HTTPError]:
    """What the grammar alone makes of `data` (a parser with other limits remembers nothing)."""
    return parsed(data, RequestParser(max_line=MAX_LINE - 1))


def tables_holding(*secrets: str) -> list[str]:
    """Which of `secrets` any of the parser's tables holds."""
    tables = repr(
        (
            parser_module._known_requests,
            parser_module._known_credential_requests,
            parser_module._known_heads,
            parser_module._known_paths,
            parser_module._known_hosts,
        )
    )
    return [secret for secret in secrets if secret in tables]


class CredentialHeadsTests(SynchronousTestCase):
    """
    A head with credentials is remembered with their values cut out: the same head with
    other credentials is read from the table, and no table ever holds a password.
    """

    def setUp(self) -> None:
        parser_module._known_requests.clear()
        parser_module._known_credential_requests.clear()

    def test_other_password_same_head(self) -> None:
        first = get(b"/version", b"Authorization: Basic c2VjcmV0LW9uZQ==", b"Accept: */*")
        second = get(b"/version", b"Authorization: Basic c2VjcmV0LXR3bw==", b"Accept: */*")
        self.assertEqual(parsed(first), parsed_in_full(first))
        self.assertEqual(len(parser_module._known_credential_requests), 1)
        request = parsed(second)
        self.assertEqual(request, parsed_in_full(second))
        assert isinstance(request, Request)
        self.assertEqual(request.header("authorization"), "Basic c2VjcmV0LXR3bw==")
        self.assertEqual(len(parser_module._known_credential_requests), 1)
        self.assertEqual(parser_module._known_requests, {})
        self.assertEqual(tables_holding("c2VjcmV0"), [])

    def test_values_read_as_the_grammar_reads_them(self) -> None:
        parsed(get(b"/", b"Authorization: Basic first"))
        for value in (
            b" \t Basic  two \t ",
            b"",
            b" ",
            b"Bearer caf\xe9",
            b"Basic a:b=c",
            b"Authorization: Basic x",
        ):
            data = get(b"/", b"Authorization:" + value)
            with self.subTest(value=value):
                self.assertEqual(parsed(data), parsed_in_full(data))

    def test_refused_values_stay_refused(self) -> None:
        parsed(get(b"/", b"Authorization: Basic first"))
        for value in (b"Basic a\rb", b"Basic a\x00", b"Basic \x7f", b"Basic \x1f", b"Basic a\r"):
            data = get(b"/", b"Authorization: " + value)
            with self.subTest(value=value):
                self.assertIs(parsed(data), BadRequest)
                self.assertIs(parsed_in_full(data), BadRequest)

    def test_each_secret_field_in_any_case(self) -> None:
        def head(n: bytes) -> bytes:
            return get(
                b"/metrics",
                b"cookie: a=qz" + n,
                b"PROXY-Authorization: Basic pqz" + n,
                b"Accept: */*",
                b"Authorization: Bearer tqz" + n,
                b"Cookie: b=qz" + n,
            )

        self.assertEqual(parsed(head(b"1")), parsed_in_full(head(b"1")))
        request = parsed(head(b"2"))
        self.assertEqual(request, parsed_in_full(head(b"2")))
        assert isinstance(request, Request)
        self.assertEqual(request.header_values("cookie"), ["a=qz2", "b=qz2"])
        self.assertEqual(request.header("proxy-authorization"), "Basic pqz2")
        self.assertEqual(len(parser_module._known_credential_requests), 1)
        self.assertEqual(tables_holding("qz1", "qz2"), [])

    def test_two_authorization_fields_stay_refused(self) -> None:
        parsed(get(b"/", b"Authorization: Basic one"))
        data = get(b"/", b"Authorization: Basic one", b"Authorization: Basic two")
        self.assertIs(parsed(data), BadRequest)
        self.assertEqual(len(parser_module._known_credential_requests), 1)

    def test_the_rest_of_the_head_must_match(self) -> None:
        parsed(get(b"/", b"Authorization: Basic one"))
        for data in (
            get(b"/", b"Authorization : Basic two"),
            get(b"/", b" Authorization: Basic two"),
            get(b"/", b"X-Authorization: Basic two"),
            get(b"/", b"Authorization: Basic two", b"Connection: close"),
        ):
            with self.subTest(data=data):
                self.assertEqual(parsed(data), parsed_in_full(data))

    def test_not_kept(self) -> None:
        """A query, a body or other limits: such heads are parsed in full every time."""
        parsed(get(b"/?password=x", b"Authorization: Basic one"))
        parsed(b"POST / HTTP/1.1\r\nHost: h\r\nCookie: a\r\nContent-Length: 1\r\n\r\nx")
        RequestParser(max_line=MAX_LINE - 1).feed(get(b"/", b"Cookie: a"))
        self.assertEqual(parser_module._known_credential_requests, {})

    def test_table_is_bounded(self) -> None:
        for n in range(3 * parser_module._KNOWN_REQUESTS_MAX):
            parsed(get(b"/p%d" % n, b"Cookie: c"))
        self.assertLessEqual(
            len(parser_module._known_credential_requests), parser_module._KNOWN_REQUESTS_MAX
        )
