"""Headless Chromium for the tests that need a real browser, driven by Selenium.

The WebDriver calls block: run a whole browser scenario in one thread (`deferToThread`)
while the server keeps serving on the test's reactor.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.support import require_tool

#: Flags for a headless Chromium on a machine with no network but loopback: without the
#: background-networking ones it keeps trying, and failing, to reach its vendor's hosts.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)


@contextmanager
def chromium(*extra_flags: str) -> Iterator[Any]:
    """A fresh headless Chromium with a throw-away profile, its console log recorded."""
    binary = require_tool("chromium")
    driver_path = require_tool("chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="spy-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for flag in (*CHROMIUM_FLAGS, *extra_flags):
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(driver_path))
        try:
            driver.set_page_load_timeout(30)
            yield driver
        finally:
            driver.quit()
