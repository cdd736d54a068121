"""Query parameters as modules see them: last value wins, every value on request."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twistedspy.query import SECRET_KEYS, Query


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
