# -*- test-case-name: tests.test_dispatch -*-
"""The dispatcher's decisions taken one at a time: hosts, formats and cross-site posts."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from twistedspy.dispatch import HostPolicy, is_cross_site, wants_json
from twistedspy.http.parser import Request, RequestParser
from twistedspy.query import Query
from twistedspy.report import PageError
from twistedspy.settings import Settings


def request(*headers: str, method: str = "GET") -> Request:
    lines = [f"{method} / HTTP/1.1", "Host: localhost:8080", *headers, "", ""]
    (parsed,) = RequestParser().feed("\r\n".join(lines).encode())
    return parsed


class HostPolicyTests(TestCase):
    def test_security_off_allows_loopback_names_and_bound_address(self) -> None:
        policy = HostPolicy(Settings(address="127.0.0.1"))
        for host in ("localhost", "localhost:8080", "127.0.0.1:8080", "[::1]:8080", "127.0.0.2"):
            self.assertTrue(policy.allows(host), host)
        for host in ("evil.example", "evil.example:8080", "localhost.evil.example", "10.0.0.1"):
            self.assertFalse(policy.allows(host), host)

    def test_security_on_allows_any_host(self) -> None:
        self.assertTrue(HostPolicy(Settings(security=True)).allows("anything.example"))

    def test_allowed_hosts_list(self) -> None:
        policy = HostPolicy(Settings(allowed_hosts=("spy.example",), security=True))
        self.assertTrue(policy.allows("spy.example:8080"))
        self.assertTrue(policy.allows("SPY.example"))
        self.assertFalse(policy.allows("other.example"))
        self.assertTrue(HostPolicy(Settings(allowed_hosts=("*",))).allows("x.example"))


class FormatTests(TestCase):
    def test_query_wins(self) -> None:
        self.assertTrue(wants_json(request(), Query((("format", "json"),))))
        self.assertFalse(
            wants_json(request("Accept: application/json"), Query((("format", "html"),)))
        )
        self.assertRaises(PageError, wants_json, request(), Query((("format", "xml"),)))

    def test_accept_preference(self) -> None:
        cases = [
            ("Accept: application/json", True),
            ("Accept: text/html,application/json;q=0.9", False),
            ("Accept: text/html;q=0.5, application/json", True),
            ("Accept: */*", False),
            ("Accept: text/html,application/xhtml+xml,*/*;q=0.8", False),
        ]
        for header, expected in cases:
            self.assertEqual(wants_json(request(header), Query()), expected, header)


class CrossSiteTests(TestCase):
    def test_rules(self) -> None:
        cases = [
            ((), False),  # curl, scripts
            (("Sec-Fetch-Site: same-origin",), False),
            (("Sec-Fetch-Site: none",), False),
            (("Sec-Fetch-Site: cross-site",), True),
            (("Sec-Fetch-Site: same-site",), True),
            (("Origin: null", "Sec-Fetch-Site: same-origin"), False),
            (("Origin: null",), True),
            (("Origin: null", "Sec-Fetch-Site: none"), True),
            (("Origin: null", "Sec-Fetch-Site: cross-site"), True),
            (("Origin: http://localhost:8080",), False),
            (("Origin: http://evil.example",), True),
        ]
        for headers, expected in cases:
            self.assertEqual(is_cross_site(request(*headers, method="POST")), expected, headers)
