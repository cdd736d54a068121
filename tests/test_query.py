"""Query parameters as modules see them: last value wins, every value on request."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.servers import start_server
from twistedspy.query import SECRET_KEYS, Query
from twistedspy.report import InvalidQuery


class QueryTests(SynchronousTestCase):
    def test_get_is_the_mapping_get(self) -> None:
        query = Query.parse("a=1&format=json&format=html&empty=")
        for key in ("a", "format", "empty", "missing"):
            self.assertEqual(query.get(key), dict(query.items()).get(key), key)
            self.assertEqual(query.get(key, "dflt"), dict(query.items()).get(key, "dflt"), key)
        self.assertEqual(query.get("format"), "html")
        self.assertEqual(query["format"], "html")
        self.assertEqual(query.getall("format"), ["json", "html"])
        self.assertEqual(query.get("empty", "dflt"), "")
        self.assertIsNone(Query().get("format"))
        self.assertEqual(list(query), ["a", "format", "empty"])
        self.assertEqual(len(query), 3)

    def test_parse_apart_keeps_secrets_out_of_the_query(self) -> None:
        # The dispatcher's one parse: what modules, links and page keys see, and the rest.
        shown, secrets = Query.parse_apart("login=bob&name=x&password=p%20w&sort=rss", SECRET_KEYS)
        self.assertEqual(shown.pairs(), (("name", "x"), ("sort", "rss")))
        self.assertEqual(secrets.pairs(), (("login", "bob"), ("password", "p w")))


class WholeNumberTests(SynchronousTestCase):
    def test_whole_numbers(self) -> None:
        self.assertEqual(Query.parse("n=42").whole_number("n"), 42)
        self.assertIsNone(Query.parse("n=").whole_number("n"))
        self.assertIsNone(Query().whole_number("n"))
        for raw in ("9" * 5000, "%C2%B2", "-1", "1.5", "%201", "0x1", "1e3", "%EF%BC%91"):
            with self.subTest(raw=raw[:20]):
                error = self.assertRaises(InvalidQuery, Query.parse(f"n={raw}").whole_number, "n")
                self.assertEqual(error.status, 400)
                self.assertLess(len(error.message), 120)
        self.assertRaises(InvalidQuery, Query.parse("n=0").whole_number, "n", minimum=1)


#: values that broke a page before (`limit` of 5000 digits, `refresh=²`) and their kin
HOSTILE_VALUES = ("9" * 5000, "%C2%B2", "-1", "%00", "%FF%FE", "1e3", "%EF%BC%91", "x" * 3000)
#: every query key a built-in module or the server reads
KEYS = ("limit", "refresh", "sort", "order", "all", "format", "user", "name", "collect[]")


class HostileQueryTests(TestCase):
    """Over a real socket: no query value and no weight makes a 5xx or a dropped connection."""

    async def test_every_query_value_is_a_page_or_a_400(self) -> None:
        server = start_server(self)
        modules = [name for name in server.service.modules if name != "message"]
        statuses: dict[int, int] = {}
        for module in modules:
            for key in KEYS:
                for value in HOSTILE_VALUES:
                    reply = await server.request("GET", f"/{module}?{key}={value}")
                    with self.subTest(module=module, key=key, value=value[:12]):
                        self.assertIn(reply.status, (200, 400))
                    statuses[reply.status] = statuses.get(reply.status, 0) + 1
        self.assertGreater(statuses.get(400, 0), 0)
        for path in ("/processes?limit=" + "9" * 5000, "/processes?refresh=%C2%B2"):
            reply = await server.request("GET", path)
            self.assertEqual(reply.status, 400, path[:40])
            self.assertIn(b"must be a whole number", reply.body)

    async def test_malformed_weights_are_answered(self) -> None:
        server = start_server(self)
        reply = await server.request("GET", "/-/static/spy.css", {"Accept-Encoding": "gzip;q=1.."})
        self.assertEqual(reply.status, 200)
        self.assertIsNone(reply.header("Content-Encoding"))
        for _ in range(2):  # the second is answered from the page cache
            reply = await server.request("GET", "/version", {"Accept": "*/*;q=.."})
            self.assertEqual(reply.status, 200)
            self.assertEqual(reply.header("Content-Type"), "text/html; charset=utf-8")
        self.assertNotIn("critical", server.journal_text())
