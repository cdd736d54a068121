"""The pages in a real browser: headless Chromium driven by Selenium.

The server runs on the test's reactor; the WebDriver calls block, so each test's whole
browser scenario runs in one thread (`deferToThread`) while the reactor keeps serving.
Each test class uses one browser session with a fresh profile.

`UPDATE_SCREENSHOT=1` also writes the processes page to docs/processes.png (the README's
picture); otherwise the screenshot stays in the test's temporary folder.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.browser import chromium
from tests.children import start_child, wait_until_sleeping
from tests.servers import start_server
from tests.support import require_tool

HOSTILE = "<img src=x onerror=alert(1)>"
PAGES = (
    "/",
    "/index",
    "/version",
    "/processes",
    "/meminfo",
    "/diskfree",
    "/network",
    "/diskio",
    "/pressure",
    "/sockets",
)
SCREENSHOT = Path(__file__).parent.parent / "docs" / "processes.png"


def viewport(driver: Any, width: int, height: int, *, mobile: bool = False) -> None:
    """Exactly this many CSS pixels of page, whatever the window decorations take."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )


def severe(driver: Any) -> list[str]:
    """The console's errors since the last call (CSP violations are among them)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def column_values(driver: Any, index: int) -> list[float]:
    """The `data-sort` numbers of one column of the first table, in page order."""
    from selenium.webdriver.common.by import By

    cells = driver.find_elements(By.CSS_SELECTOR, f"table.data tbody td:nth-child({index + 1})")
    raw = [c.get_attribute("data-sort") for c in cells]
    return [float(v) for v in raw if v is not None]


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", header[16:24])
    return width, height


class PagesInChromiumTests(TestCase):
    async def run_in_browser(self, scenario: Callable[[Any, str], None]) -> None:
        server = start_server(self)
        base = f"http://127.0.0.1:{server.port}"
        # Skip (or, under CI, fail) before the thread starts when a tool is missing.
        require_tool("chromium")
        require_tool("chromedriver")

        def in_thread() -> None:
            with chromium() as driver:
                scenario(driver, base)

        await deferToThread(in_thread)

    async def test_pages_load_clean_sort_by_click_and_fit_a_phone(self) -> None:
        shot = Path(self.mktemp()).with_suffix(".png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        await self.run_in_browser(lambda driver, base: self.pages(driver, base, shot))
        self.assertEqual(png_size(shot), (1280, 800))

    def pages(self, driver: Any, base: str, shot: Path) -> None:
        from selenium.webdriver.common.by import By

        viewport(driver, 1280, 800)
        for path in PAGES:
            driver.get(base + path)
            self.assertEqual(severe(driver), [], f"console errors on {path}")
            heading = driver.find_element(By.TAG_NAME, "h1").text
            self.assertTrue(heading, path)
            # spy.js ran (the CSP let it): it marks the headings it can sort by.
            sortable = driver.find_elements(By.CSS_SELECTOR, "th.js-sortable")
            self.assertTrue(sortable, f"spy.js did not run on {path}")

        # Sorting by a click: the server sent PID order; a click on RSS reorders the
        # rows in the page without asking the server again.
        url = base + "/processes?sort=pid&order=asc"
        driver.get(url)
        pids = column_values(driver, 0)
        self.assertEqual(pids, sorted(pids))
        before = column_values(driver, 5)
        self.assertNotEqual(before, sorted(before), "RSS already in order: nothing to test")
        rss_heading = driver.find_element(By.XPATH, "//th[normalize-space()='RSS']")
        rss_heading.click()
        after = column_values(driver, 5)
        self.assertEqual(after, sorted(before))
        self.assertEqual(rss_heading.get_attribute("aria-sort"), "ascending")
        rss_heading.click()
        self.assertEqual(column_values(driver, 5), sorted(before, reverse=True))
        self.assertEqual(driver.current_url, url)
        self.assertEqual(severe(driver), [])

        # Without the script, the heading is a link that asks the server to sort.
        link = rss_heading.find_element(By.TAG_NAME, "a").get_attribute("href")
        self.assertTrue(link.endswith("?sort=rss&order=asc"), link)

        driver.get(base + "/processes?sort=rss&order=desc&limit=15")
        driver.save_screenshot(str(shot))
        if os.environ.get("UPDATE_SCREENSHOT") == "1":
            SCREENSHOT.parent.mkdir(exist_ok=True)
            SCREENSHOT.write_bytes(shot.read_bytes())

        # A phone: the page itself never scrolls sideways (wide tables scroll in place).
        viewport(driver, 390, 844, mobile=True)
        for path in ("/", "/processes", "/diskfree", "/network"):
            driver.get(base + path)
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth;"
            )
            self.assertLessEqual(overflow, 0, f"{path} is wider than a phone")


class HostileNameInChromiumTests(TestCase):
    async def test_hostile_process_name_fires_no_script(self) -> None:
        child = start_child(self, ["bash", "-c", f'exec -a "{HOSTILE}" sleep 30'])
        wait_until_sleeping(child.pid, HOSTILE)
        server = start_server(self)
        url = f"http://127.0.0.1:{server.port}/processes?name=sleep&sort=pid"
        require_tool("chromium")
        require_tool("chromedriver")
        await deferToThread(self.look, url, child.pid)

    def look(self, url: str, pid: int) -> None:
        from selenium.common.exceptions import NoAlertPresentException
        from selenium.webdriver.common.by import By

        with chromium() as driver:
            viewport(driver, 1280, 800)
            driver.get(url)
            with self.assertRaises(NoAlertPresentException):
                _ = driver.switch_to.alert.text
            row = driver.find_element(By.XPATH, f"//tr[td[1][normalize-space()='{pid}']]")
            command = row.find_elements(By.TAG_NAME, "td")[-1]
            self.assertEqual(command.get_attribute("textContent"), f"{HOSTILE} 30")
            self.assertTrue(command.is_displayed())
            self.assertEqual(driver.find_elements(By.CSS_SELECTOR, "main img"), [])
            # An <img src=x> that slipped through would have logged its failed load.
            self.assertEqual(severe(driver), [])
