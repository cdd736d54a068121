# -*- test-case-name: tests.test_parser -*-
"""
The HTTP/1.x request grammar as regular expressions, one per ABNF rule.

Each rule is transcribed from the RFC that defines it (section beside it) and is only
ever used with `fullmatch`, so a rule can never accept a prefix and leave junk behind.
Patterns are `str` and compiled for `bytes` where the parser works on raw bytes; no I/O
and no Twisted here (after h11's `_abnf.py`).
"""

from __future__ import annotations

import re

# RFC 5234 Appendix B.1 core rules.
DIGIT = r"[0-9]"
HEXDIG = r"[0-9A-Fa-f]"
ALPHA = r"[A-Za-z]"
VCHAR = r"[\x21-\x7e]"

# RFC 9110 §5.6.2: token = 1*tchar
TCHAR = r"[-!#$%&'*+.^_`|~0-9A-Za-z]"
TOKEN = rf"{TCHAR}+"

# RFC 9110 §5.6.3: OWS = *( SP / HTAB )
OWS = r"[ \t]*"

# RFC 9110 §5.5:
#   field-value   = *field-content
#   field-content = field-vchar [ 1*( SP / HTAB / field-vchar ) field-vchar ]
#   field-vchar   = VCHAR / obs-text ;  obs-text = %x80-FF
# Written, as h11 does, as words separated by runs of blanks: each repetition must start
# with a blank, so the engine never has two ways to split the same text (no ReDoS).
FIELD_VCHAR = r"[\x21-\x7e\x80-\xff]"
FIELD_VALUE = rf"(?:{FIELD_VCHAR}+(?:[ \t]+{FIELD_VCHAR}+)*)?"

# RFC 9112 §5: field-line = field-name ":" OWS field-value OWS ; field-name = token
FIELD_LINE = rf"(?P<name>{TOKEN}):{OWS}(?P<value>{FIELD_VALUE}){OWS}"

# RFC 9112 §2.3: HTTP-version = HTTP-name "/" DIGIT "." DIGIT ; HTTP-name = %s"HTTP"
HTTP_VERSION = rf"HTTP/(?P<major>{DIGIT})\.(?P<minor>{DIGIT})"

# RFC 9112 §3: request-line = method SP request-target SP HTTP-version
# method = token (RFC 9110 §9.1). The request-target is checked on its own afterwards
# (RFC 9112 §3.2); here it is any run of visible ASCII, which already rules out
# whitespace, controls and raw non-ASCII bytes (a target must be percent-encoded).
REQUEST_LINE = rf"(?P<method>{TOKEN}) (?P<target>{VCHAR}+) {HTTP_VERSION}"
# An HTTP/0.9 "simple request" (RFC 1945 §4.1): method and target without a version.
SIMPLE_REQUEST_LINE = rf"{TOKEN} {VCHAR}+"

# RFC 3986 §2.1, §2.2, §2.3
PCT_ENCODED = rf"%{HEXDIG}{HEXDIG}"
UNRESERVED = r"[-._~A-Za-z0-9]"
SUB_DELIMS = r"[!$&'()*+,;=]"
# RFC 3986 §3.3: pchar = unreserved / pct-encoded / sub-delims / ":" / "@"
PCHAR = rf"(?:{UNRESERVED}|{PCT_ENCODED}|{SUB_DELIMS}|[:@])"
SEGMENT = rf"{PCHAR}*"
# RFC 3986 §3.4: query = *( pchar / "/" / "?" )
# Departure: "[" and "]" are also taken in the query, unencoded. They are gen-delims, but
# Prometheus' own parameters are named `collect[]=` and people type them as they read
# them (curl -g, browsers send them raw); inside a query they delimit nothing any
# server or proxy could read differently, so this opens no smuggling route.
QUERY = rf"(?:{PCHAR}|[/?\[\]])*"

# RFC 3986 §3.2.2: IPv4address, IPv6address, IPvFuture, IP-literal, reg-name
DEC_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
IPV4_ADDRESS = rf"{DEC_OCTET}\.{DEC_OCTET}\.{DEC_OCTET}\.{DEC_OCTET}"
H16 = rf"{HEXDIG}{{1,4}}"
LS32 = rf"(?:{H16}:{H16}|{IPV4_ADDRESS})"
IPV6_ADDRESS = (
    "(?:"
    rf"(?:{H16}:){{6}}{LS32}"
    rf"|::(?:{H16}:){{5}}{LS32}"
    rf"|(?:{H16})?::(?:{H16}:){{4}}{LS32}"
    rf"|(?:(?:{H16}:){{0,1}}{H16})?::(?:{H16}:){{3}}{LS32}"
    rf"|(?:(?:{H16}:){{0,2}}{H16})?::(?:{H16}:){{2}}{LS32}"
    rf"|(?:(?:{H16}:){{0,3}}{H16})?::{H16}:{LS32}"
    rf"|(?:(?:{H16}:){{0,4}}{H16})?::{LS32}"
    rf"|(?:(?:{H16}:){{0,5}}{H16})?::{H16}"
    rf"|(?:(?:{H16}:){{0,6}}{H16})?::"
    ")"
)
IPV_FUTURE = rf"v{HEXDIG}+\.(?:{UNRESERVED}|{SUB_DELIMS}|:)+"
IP_LITERAL = rf"\[(?:{IPV6_ADDRESS}|{IPV_FUTURE})\]"
# reg-name = *( unreserved / pct-encoded / sub-delims ); it also covers IPv4address.
REG_NAME = rf"(?:{UNRESERVED}|{PCT_ENCODED}|{SUB_DELIMS})*"
URI_HOST = rf"(?:{IP_LITERAL}|{REG_NAME})"
# RFC 3986 §3.2.3: port = *DIGIT
PORT = rf"{DIGIT}*"

# RFC 9110 §7.2: Host = uri-host [ ":" port ]
HOST = rf"{URI_HOST}(?::{PORT})?"

# RFC 9112 §3.2.1: origin-form = absolute-path [ "?" query ]
# RFC 9110 §4.1:   absolute-path = 1*( "/" segment )
ORIGIN_FORM = rf"(?P<path>(?:/{SEGMENT})+)(?:\?(?P<query>{QUERY}))?"

# RFC 9112 §3.2.2: absolute-form = absolute-URI (RFC 3986 §4.3)
# Only the hierarchical "//" authority shape is described here: the only schemes served
# are "http" and "https" (RFC 9110 §4.2.1, §4.2.2), and both require an authority. The
# authority is taken up to the first "/" or "?" and checked on its own (AUTHORITY), so a
# userinfo part can be reported as such. RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT /
# "+" / "-" / "." ); path-abempty = *( "/" segment ) (§3.3).
ABSOLUTE_FORM = (
    rf"(?P<scheme>{ALPHA}[-+.A-Za-z0-9]*)://(?P<authority>[^/?#]*)"
    rf"(?P<path>(?:/{SEGMENT})*)(?:\?(?P<query>{QUERY}))?"
)
# RFC 3986 §3.2: authority = [ userinfo "@" ] host [ ":" port ]. The userinfo part is
# left out on purpose: RFC 9110 §4.2.4 says a recipient should treat it as an error.
AUTHORITY = HOST

# RFC 9112 §3.2.3: authority-form = uri-host ":" port (CONNECT only)
AUTHORITY_FORM = rf"{URI_HOST}:{PORT}"

# RFC 9112 §3.2.4: asterisk-form = "*" (server-wide OPTIONS only)
ASTERISK_FORM = r"\*"

# RFC 9110 §8.6: Content-Length = 1*DIGIT
CONTENT_LENGTH = rf"{DIGIT}+"

request_line_re = re.compile(REQUEST_LINE.encode("ascii"))
simple_request_line_re = re.compile(SIMPLE_REQUEST_LINE.encode("ascii"))
field_line_re = re.compile(FIELD_LINE.encode("ascii"))
field_value_re = re.compile(FIELD_VALUE.encode("ascii"))
# A field name followed by blanks before the colon: forbidden by RFC 9112 §5.1, named
# here only so that the error page can say exactly what was wrong.
space_before_colon_re = re.compile(rf"{TOKEN}[ \t]+:.*".encode("ascii"), re.DOTALL)
origin_form_re = re.compile(ORIGIN_FORM)
absolute_form_re = re.compile(ABSOLUTE_FORM)
authority_re = re.compile(AUTHORITY)
authority_form_re = re.compile(AUTHORITY_FORM)
asterisk_form_re = re.compile(ASTERISK_FORM)
host_re = re.compile(HOST)
content_length_re = re.compile(CONTENT_LENGTH)
# Characters refused in a decoded path: C0 controls (NUL included), DEL and C1 controls.
# Not an ABNF rule: percent-decoding can produce them, and no module name contains one.
decoded_control_re = re.compile(r"[\x00-\x1f\x7f-\x9f]")
