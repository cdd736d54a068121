# -*- test-case-name: tests.test_entrypoints -*-
"""`twistd spy`: the twistedspy service as a twistd plugin (imports twistedspy.tap lazily)."""

from twisted.application.service import ServiceMaker

twistedspy = ServiceMaker(
    "twistedspy",
    "twistedspy.tap",
    "Serve Linux system information to browsers, scripts and Prometheus.",
    "spy",
)
