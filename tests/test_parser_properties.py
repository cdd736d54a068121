"""
Properties of the request parser over generated input (hypothesis): junk only ever
becomes an HTTPError, and how a valid byte stream is cut up never changes what it means.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twistedspy.http import MAX_LINE, HTTPError, Request, RequestParser

BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TCHARS = "!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits
UNRESERVED = "-._~" + string.ascii_letters + string.digits
PCHARS_LITERAL = UNRESERVED + "!$&'()*+,;=:@"
# Characters a decoded path may hold: anything but controls (C0, DEL, C1) and surrogates.
DECODED = st.characters(
    exclude_categories=["Cs"], exclude_characters="".join(map(chr, [*range(32), *range(127, 160)]))
)


@dataclass(frozen=True)
class Generated:
    """One valid request, as bytes and as the Request it must parse to."""

    raw: bytes
    request: Request


@st.composite
def path_segments(draw: st.DrawFn) -> tuple[str, str]:
    """A path as sent (percent-encoded where needed) and as it must decode."""
    raw, decoded = "", ""
    for _ in range(draw(st.integers(1, 4))):
        raw += "/"
        decoded += "/"
        for _ in range(draw(st.integers(0, 6))):
            if draw(st.booleans()):
                char = draw(st.sampled_from(PCHARS_LITERAL))
                raw += char
            else:
                char = draw(DECODED)
                raw += "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
            decoded += char
    return raw, decoded


field_names = st.text(TCHARS, min_size=1, max_size=12).filter(
    lambda name: name.lower() not in ("host", "content-length", "transfer-encoding", "connection")
)
field_words = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0xFF).filter(lambda c: c != "\x7f"),
    min_size=1,
    max_size=8,
)
field_values = st.lists(field_words, max_size=3).map(" ".join)


@st.composite
def valid_requests(draw: st.DrawFn) -> Generated:
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "DELETE", "X-CUSTOM"]))
    raw_path, path = draw(path_segments())
    query = draw(st.none() | st.text(PCHARS_LITERAL + "/?", max_size=12))
    target = raw_path if query is None else f"{raw_path}?{query}"
    minor = draw(st.sampled_from([0, 1]))
    host = draw(st.from_regex(r"[a-z][a-z0-9.-]{0,15}(:[0-9]{1,5})?", fullmatch=True))
    connection = draw(st.sampled_from([None, "close", "keep-alive", "Keep-Alive, x"]))
    body = draw(st.binary(max_size=40))
    fields: list[tuple[str, str]] = [("host", host)]
    fields += [
        (name.lower(), value)
        for name, value in draw(st.lists(st.tuples(field_names, field_values), max_size=4))
    ]
    if connection is not None:
        fields.append(("connection", connection))
    if body or draw(st.booleans()):
        fields.append(("content-length", str(len(body))))
    end = draw(st.sampled_from([b"\r\n", b"\n"]))
    lines = [f"{method} {target} HTTP/1.{minor}".encode("ascii")]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in fields]
    raw = end.join(lines) + end + end + body
    options = {o.strip().lower() for o in (connection or "").split(",")}
    keep_alive = "close" not in options and (minor == 1 or "keep-alive" in options)
    request = Request(
        method=method,
        target=target,
        path=path,
        query=query or "",
        version=(1, minor),
        headers=tuple(fields),
        body=body,
        host=host,
        keep_alive=keep_alive,
    )
    return Generated(raw, request)


# Pieces of requests, so that junk reaches deep into the parser instead of failing at once.
FRAGMENTS = [
    b"GET ",
    b"POST ",
    b"/",
    b"/a",
    b"%41",
    b"%",
    b"?",
    b"#",
    b" ",
    b"\t",
    b"\r",
    b"\n",
    b"\r\n",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"Host: h",
    b"Host:",
    b":",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked",
    b"Connection: close",
    b"0",
    b"5",
    b"99999999999",
    b"http://",
    b"[::1]",
    b"*",
    b"\x00",
    b"\xff",
    b"abc",
]
junk = st.binary(max_size=200) | st.lists(
    st.sampled_from(FRAGMENTS) | st.binary(max_size=4), max_size=40
).map(b"".join)


def feed_in_pieces(data: bytes, cuts: list[int]) -> list[Request]:
    parser = RequestParser()
    done: list[Request] = []
    start = 0
    for cut in sorted(cuts):
        done += parser.feed(data[start:cut])
        start = cut
    done += parser.feed(data[start:])
    return done


class JunkTests(SynchronousTestCase):
    @BOUNDED
    @given(junk)
    def test_only_http_errors_escape(self, data: bytes) -> None:
        """Whatever arrives, the parser either parses it or raises an HTTPError."""
        try:
            RequestParser().feed(data)
        except HTTPError as error:
            self.assertIn(error.status, (400, 413, 414, 431, 501, 505))

    @BOUNDED
    @given(junk)
    def test_junk_bytewise_same_as_whole(self, data: bytes) -> None:
        """Cut into single bytes, junk gives the same requests, or the same error."""

        def outcome(pieces: list[bytes]) -> list[Request] | type[HTTPError]:
            parser = RequestParser()
            done: list[Request] = []
            try:
                for piece in pieces:
                    done += parser.feed(piece)
            except HTTPError as error:
                return type(error)
            return done

        whole = outcome([data])
        bytewise = outcome([data[i : i + 1] for i in range(len(data))])
        if isinstance(whole, list):
            self.assertEqual(whole, bytewise)
        else:
            # A line that never ends may be refused earlier when fed whole, but not as a
            # different kind of error.
            self.assertIs(whole, bytewise)


class ValidStreamTests(SynchronousTestCase):
    @BOUNDED
    @given(st.lists(valid_requests(), min_size=1, max_size=4))
    def test_pipeline_parses_to_what_was_sent(self, generated: list[Generated]) -> None:
        stream = b"".join(g.raw for g in generated)
        self.assertEqual(RequestParser().feed(stream), [g.request for g in generated])

    @BOUNDED
    @given(st.data())
    def test_any_split_same_as_whole(self, data: st.DataObject) -> None:
        generated = data.draw(st.lists(valid_requests(), min_size=1, max_size=4))
        stream = b"".join(g.raw for g in generated)
        cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
        self.assertEqual(feed_in_pieces(stream, cuts), RequestParser().feed(stream))

    @BOUNDED
    @given(st.lists(valid_requests(), min_size=1, max_size=3))
    def test_bytewise_same_as_whole(self, generated: list[Generated]) -> None:
        stream = b"".join(g.raw for g in generated)
        self.assertEqual(
            feed_in_pieces(stream, list(range(len(stream)))), RequestParser().feed(stream)
        )


#: what a client may put in a credential's line: any bytes but LF, the grammar's or not
credential_values = st.binary(max_size=24).filter(
    lambda value: b"\n" not in value
) | st.sampled_from(
    [b"", b" ", b"\t", b"\r", b" Basic x\r", b"Basic \xe9", b"a\x00b", b"a\x7f", b" x \t"]
)
secret_names = st.sampled_from(
    [b"Authorization", b"authorization", b"Cookie", b"Proxy-Authorization"]
)


def outcome(data: bytes, parser: RequestParser) -> list[Request] | type[HTTPError]:
    try:
        return parser.feed(data)
    except HTTPError as error:
        return type(error)


class RememberedCredentialsTests(SynchronousTestCase):
    """A head remembered with its credentials cut out reads any other credentials as the
    grammar alone reads them (a parser with other limits remembers nothing)."""

    @BOUNDED
    @given(valid_requests(), secret_names, credential_values, credential_values)
    def test_other_credentials_as_the_grammar_reads_them(
        self, generated: Generated, name: bytes, first: bytes, second: bytes
    ) -> None:
        end = b"\r\n" if generated.raw.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
        head, _, body = generated.raw.partition(end + end)
        for value in (first, second, first):
            data = head + end + name + b":" + value + end + end + body
            self.assertEqual(
                outcome(data, RequestParser()),
                outcome(data, RequestParser(max_line=MAX_LINE - 1)),
            )
