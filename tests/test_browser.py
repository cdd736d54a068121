"""The pages in a real browser: headless Chromium driven by Selenium.

The server runs on the test's reactor; the WebDriver calls block, so each test's whole
browser scenario runs in one thread (`deferToThread`) while the reactor keeps serving.
Each test class uses one browser session with a fresh profile.

`UPDATE_SCREENSHOT=1` also writes the processes page to docs/processes.png, the landing
page to docs/index.png and a process's page to docs/process.png (the pictures the docs
show); otherwise the screenshots stay in the test's temporary folder.
"""

from __future__ import annotations

import os
import shutil
import struct
import time
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
    "/diskfree?all=1",
    "/network",
    "/diskio",
    "/pressure",
    "/sockets",
    "/cpu",
    "/message",
    # a process's own page: the server's, which runs in this test's process
    f"/processes?pid={os.getpid()}",
)
#: [tooltip, text] of each command-line cell that the stylesheet cuts short
CUT_SHORT = """
return Array.from(document.querySelectorAll(
    "table.data td:last-child:not([class]), table.data td.text:last-child"))
  .filter(c => c.scrollWidth > c.clientWidth).map(c => [c.title, c.textContent]);
"""
DOCS = Path(__file__).parent.parent / "docs"
SCREENSHOT = DOCS / "processes.png"
#: sideways overflow of the page, and of each table's own scrolling box, in CSS pixels
OVERFLOW = """
return [document.documentElement.scrollWidth - document.documentElement.clientWidth].concat(
  Array.from(document.querySelectorAll(".scroll"), e => e.scrollWidth - e.clientWidth));
"""


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
    """
    The `data-sort` numbers of one column of the first table, in page order: read in one
    script, so that a live update between two WebDriver calls cannot leave one stale.
    """
    values: list[float] = driver.execute_script(
        "return Array.from(document.querySelectorAll("
        f"'table.data tbody td:nth-child({index + 1})'), c => c.getAttribute('data-sort'))"
        ".filter(v => v !== null).map(Number);"
    )
    return values


def keep_screenshot(driver: Any, shot: Path, name: str) -> None:
    """The screenshot in the test's folder; also in docs/ under UPDATE_SCREENSHOT=1."""
    driver.save_screenshot(str(shot))
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        DOCS.mkdir(exist_ok=True)
        (DOCS / name).write_bytes(shot.read_bytes())


def wait_for(check: Callable[[], Any], what: str, seconds: float = 30.0) -> Any:
    """Poll `check` until it answers something true (WebDriver calls block anyway)."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:g} s: {what}")
        time.sleep(0.25)


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

        viewport(driver, 1280, 900)
        for path in PAGES:
            driver.get(base + path)
            self.assertEqual(severe(driver), [], f"console errors on {path}")
            heading = driver.find_element(By.TAG_NAME, "h1").text
            self.assertTrue(heading, path)
            # spy.js ran (the CSP let it): it marks the headings it can sort by, and
            # offers live updates.
            if "message" not in path:
                sortable = driver.find_elements(By.CSS_SELECTOR, "th.js-sortable")
                self.assertTrue(sortable, f"spy.js did not run on {path}")
            self.assertTrue(driver.find_elements(By.ID, "live"), f"no live control on {path}")
            # At 1280 px nothing scrolls sideways: not the page, not a table in its box.
            overflow = driver.execute_script(OVERFLOW)
            self.assertLessEqual(max(overflow), 0, f"{path} scrolls sideways at 1280 px")
        viewport(driver, 1280, 800)

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

        # Long command lines (Chromium's own, at least) are cut to one line, and the whole
        # line is the cell's tooltip.
        cut = driver.execute_script(CUT_SHORT)
        self.assertTrue(cut, "no command line long enough to be cut")
        for title, text in cut:
            self.assertEqual(title, text)

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


class GlanceAndLiveInChromiumTests(TestCase):
    """The landing page at a glance, and pages that update in place."""

    #: seconds: two process scans and a sparkline point to wait for, on a shared machine
    timeout = 300

    async def test_landing_page_live_updates_and_process_page(self) -> None:
        python = shutil.which("python3") or require_tool("python3")
        burner = start_child(self, [python, "-c", "while True: pass"])
        server = start_server(self)
        base = f"http://127.0.0.1:{server.port}"
        folder = Path(self.mktemp())
        folder.mkdir(parents=True)
        require_tool("chromium")
        require_tool("chromedriver")

        def in_thread() -> None:
            with chromium() as driver:
                self.landing(driver, base, burner.pid, folder)
                self.live(driver, base)

        await deferToThread(in_thread)

    def landing(self, driver: Any, base: str, pid: int, folder: Path) -> None:
        from selenium.webdriver.common.by import By

        viewport(driver, 1280, 900)
        link = f'a[href="/processes?pid={pid}"]'
        link_xpath = f"a[@href='/processes?pid={pid}']"
        top_cpu = "//section[h2[starts-with(normalize-space(), 'Top processes by CPU')]]"

        def burner_in_top_five() -> bool:
            # The processes sampler scans every few seconds: the burner shows once two
            # scans have measured it.
            driver.get(base + "/")
            rows = driver.find_elements(By.XPATH, top_cpu + "//tbody/tr")
            found = driver.find_elements(By.XPATH, top_cpu + "//tbody/tr//" + link_xpath)
            return len(rows) <= 5 and bool(found)

        wait_for(burner_in_top_five, "the CPU burner among the top five by CPU")
        self.assertEqual(severe(driver), [])
        keep_screenshot(driver, folder / "index.png", "index.png")
        # One click deeper: the burner's own page.
        driver.find_element(By.XPATH, top_cpu).find_element(By.CSS_SELECTOR, link).click()
        self.assertEqual(driver.find_element(By.TAG_NAME, "h1").text, f"Process {pid}: python3")
        self.assertEqual(severe(driver), [])
        keep_screenshot(driver, folder / "process.png", "process.png")

    def live(self, driver: Any, base: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select

        # The first hundred processes: enough rows to sort, few enough for a loaded machine.
        driver.get(base + "/processes?sort=pid&order=asc&limit=100")
        driver.execute_script("window.spyMarker = 'same document';")
        rss_heading = driver.find_element(By.XPATH, "//th[normalize-space()='RSS']")
        rss_heading.click()
        rss_heading.click()  # descending: the biggest first, as a person looks
        before = column_values(driver, 5)
        self.assertEqual(before, sorted(before, reverse=True))
        cells = (
            "return Array.from(document.querySelectorAll('table.data tbody td'), "
            "c => c.textContent);"
        )
        shown = driver.execute_script(cells)
        Select(driver.find_element(By.ID, "live")).select_by_value("2")
        wait_for(lambda: driver.execute_script(cells) != shown, "a value changed in place")
        # No navigation: the same document, still sorted as the person chose.
        self.assertEqual(driver.execute_script("return window.spyMarker;"), "same document")
        entries = "return performance.getEntriesByType('navigation').length;"
        self.assertEqual(driver.execute_script(entries), 1)
        after = column_values(driver, 5)
        self.assertEqual(after, sorted(after, reverse=True))
        self.assertEqual(rss_heading.get_attribute("aria-sort"), "descending")
        self.assertEqual(severe(driver), [])
        # The choice is remembered on the next page, and sparklines extend live: the
        # cpu sampler adds a point every five seconds.
        driver.get(base + "/cpu")
        self.assertEqual(
            Select(driver.find_element(By.ID, "live")).first_selected_option.text, "every 2 s"
        )
        points = "return document.querySelector('figure.series polyline').getAttribute('points');"
        drawn = driver.execute_script(points)
        wait_for(
            lambda: len(driver.execute_script(points).split()) > len(drawn.split()),
            "the busy sparkline extended in place",
        )
        self.assertEqual(driver.execute_script(entries), 1)
        Select(driver.find_element(By.ID, "live")).select_by_value("0")
        self.assertEqual(severe(driver), [])

    async def test_live_update_marks_as_a_reload_would(self) -> None:
        """A cell that crosses a threshold while the page is live is marked, and a mark
        the values no longer earn is taken away."""
        # every measured CPU past the busy threshold; no load average past its own
        server = start_server(self, cpu_busy_percent=0.0, load_per_cpu=1000.0)
        require_tool("chromium")
        require_tool("chromedriver")
        marked = (
            "return Array.from(document.querySelectorAll('table.data tbody td.mark'), "
            "c => [c.closest('tr').rowIndex, c.cellIndex, c.title]);"
        )
        # The page as the server marked it, then every mark taken away and one drawn
        # where the server puts none: what a page left live across a change looks like.
        tamper = """
        var cells = Array.from(document.querySelectorAll('table.data tbody td'));
        cells.forEach(c => { if (c.classList.contains('mark')) {
            c.classList.remove('mark'); c.removeAttribute('title'); } });
        var stale = cells.find(c => c.cellIndex > 0 && !c.title);
        stale.classList.add('mark'); stale.title = 'stale';
        """

        def in_thread() -> None:
            from selenium.webdriver.common.by import By
            from selenium.webdriver.support.ui import Select

            with chromium() as driver:

                def cpu_page_marked() -> Any:
                    # busy % needs two samples of the cpu sampler: reload until then
                    driver.get(f"http://127.0.0.1:{server.port}/cpu")
                    return driver.execute_script(marked)

                expected = wait_for(cpu_page_marked, "the CPUs marked busy")
                driver.execute_script(tamper)
                self.assertNotEqual(driver.execute_script(marked), expected)
                Select(driver.find_element(By.ID, "live")).select_by_value("2")
                wait_for(
                    lambda: driver.execute_script(marked) == expected,
                    "the server's marks, and only those, after a live update",
                )
                Select(driver.find_element(By.ID, "live")).select_by_value("0")
                self.assertEqual(severe(driver), [])

        await deferToThread(in_thread)

    async def test_a_hidden_tab_asks_nothing(self) -> None:
        """While the tab is hidden a live page fetches nothing; shown again, it goes on."""
        server = start_server(self)
        require_tool("chromium")
        require_tool("chromedriver")
        fetches = (
            "return performance.getEntriesByType('resource')"
            ".filter(e => e.initiatorType === 'fetch').length;"
        )
        # What the browser does when the tab goes to the background, as the page sees it.
        hide = """
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        document.dispatchEvent(new Event('visibilitychange'));
        """
        show = """
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
        document.dispatchEvent(new Event('visibilitychange'));
        """

        def in_thread() -> None:
            from selenium.webdriver.common.by import By
            from selenium.webdriver.support.ui import Select

            with chromium() as driver:
                driver.get(f"http://127.0.0.1:{server.port}/version")
                Select(driver.find_element(By.ID, "live")).select_by_value("2")
                wait_for(lambda: driver.execute_script(fetches) >= 1, "a first live fetch")
                driver.execute_script(hide)
                time.sleep(0.5)  # a fetch already under way ends
                hidden_at = driver.execute_script(fetches)
                time.sleep(7)  # three periods of 2 s and more
                self.assertEqual(driver.execute_script(fetches), hidden_at)
                driver.execute_script(show)
                wait_for(
                    lambda: driver.execute_script(fetches) > hidden_at,
                    "a fetch once the tab shows",
                )
                Select(driver.find_element(By.ID, "live")).select_by_value("0")
                self.assertEqual(severe(driver), [])

        await deferToThread(in_thread)

    async def test_dark_mode(self) -> None:
        """With the browser preferring dark, pages are light text on a dark ground."""
        server = start_server(self)
        require_tool("chromium")
        require_tool("chromedriver")

        def look() -> None:
            with chromium() as driver:
                driver.execute_cdp_cmd(
                    "Emulation.setEmulatedMedia",
                    {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
                )
                driver.get(f"http://127.0.0.1:{server.port}/processes")
                colour = "return getComputedStyle(document.body).backgroundColor;"
                red, green, blue = (
                    int(part) for part in driver.execute_script(colour)[4:-1].split(",")[:3]
                )
                self.assertLess(red + green + blue, 3 * 64)

        await deferToThread(look)


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
