"""Query parameters as modules see them: last value wins, every value on request."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twistedspy.query import Query


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
