# -*- test-case-name: tests.test_negotiation -*-
"""`Accept` and `Accept-Encoding`: which values a client lists, and how much it wants each."""

from __future__ import annotations

import re

#: RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def qualities(header: str) -> dict[str, float]:
    """
    Each value a comma list names (a media range or a content coding), lower-cased, with
    its weight: `q=` among its parameters (RFC 9110 §12.4.2), else 1. A value named twice
    keeps its highest weight. An item that cannot be read, one whose weight breaks the
    qvalue grammar (`q=1..`, `q=2`) included, is left out, that is, not acceptable: a
    weight nobody can read is no sign that the client wants the value.
    """
    weights: dict[str, float] = {}
    for item in header.split(","):
        name, *parameters = item.split(";")
        name = name.strip().lower()
        if not name or any(c.isspace() for c in name):
            continue
        weight: float | None = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                value = value.strip()
                weight = float(value) if _QVALUE.fullmatch(value) else None
        if weight is not None:
            weights[name] = max(weight, weights.get(name, 0.0))
    return weights
