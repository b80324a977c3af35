"""The dashboard end to end in a real headless Chromium driven by Selenium: log in through the form, see the
live leg and its score timeline, the verdict feed and the models, play a captured chunk, label it with a button,
and find the label (with the reviewer's name) in the review store.

Needs Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``, ``/usr/bin/chromedriver``) and
``selenium`` (the ``dev`` extra); skipped with the reason when they are missing. Selenium is pointed at the
system driver, so it never downloads one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from test_dashboard import TOKEN, Info, _ok_status, _verdict, fake_leg, fill_models, fill_store, legs_of

from plugin.config import HttpConfig
from plugin.dashboard import Dashboard, Feed
from plugin.http import HttpServer
from plugin.review import ReviewStore

CHROMIUM = os.environ.get("CALLGUARD_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CALLGUARD_CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT_S = 20


def _missing() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)) and not shutil.which(path):
            return f"{path} not found: install the Debian package {package} (./setup does)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_missing() is not None, reason=_missing() or "")]


class ServerThread:
    """HttpServer + dashboard on a free loopback port, on an event loop in a background thread (Selenium's
    calls block, so the test itself cannot run the loop)."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="dashboard-test-server", daemon=True)
        self.server = HttpServer(HttpConfig(bind_host="127.0.0.1", port=0, token=TOKEN), _ok_status,
                                 dashboard=dashboard)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        host, port = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        self.base = f"http://{host}:{port}"
        return self

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the server's loop (the live state belongs to it) and return its result."""
        async def run() -> Any:
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--autoplay-policy=no-user-gesture-required", "--mute-audio", "--window-size=1400,1800",
                "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def test_an_administrator_logs_in_watches_a_call_plays_a_chunk_and_labels_it(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    review_dir = tmp_path / "review"
    ids = fill_store(review_dir)
    fill_models(tmp_path / "models")
    live = legs_of(fake_leg("1700000000.1", [0.3, 0.8, 0.9, 0.95], caller_name="Mallory <script>x</script>"))
    feed = Feed()
    feed(_verdict("1700000000.1", "suspicious", 1, "bonafide"))
    dashboard = Dashboard(legs=lambda: live, detector=Info, review_dir=review_dir, models_dir=tmp_path / "models",
                          feed=feed)
    wait = WebDriverWait(browser, WAIT_S)

    with ServerThread(dashboard) as server:
        base = server.base
        # not logged in: the page sends the browser to the login form; a wrong token is refused there
        browser.get(base + "/dashboard")
        wait.until(ec.url_contains("/dashboard/login"))
        browser.find_element(By.ID, "token").send_keys("wrong-token-but-long-enough")
        browser.find_element(By.ID, "reviewer").send_keys("Grace")
        browser.find_element(By.ID, "login-submit").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "login-error"), "Wrong token"))
        assert browser.get_cookies() == []
        browser.get_log("browser")  # (reading empties it) the refused login logged its 401; nothing else may

        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.ID, "reviewer").send_keys("Grace")
        browser.find_element(By.ID, "login-submit").click()
        wait.until(ec.url_matches(r"/dashboard$"))
        session = {c["name"]: c for c in browser.get_cookies()}["callguard_session"]
        assert session["httpOnly"] is True and session["sameSite"] == "Strict" and TOKEN not in session["value"]
        assert browser.execute_script("return document.cookie") == ""  # nothing readable by scripts

        # the live leg, its timeline with both thresholds, rendered as text (the <script> in the name stays text)
        card = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'div.leg[data-leg="1700000000.1:caller"]')))
        wait.until(lambda d: len(card.find_elements(By.CSS_SELECTOR, "svg[data-timeline] circle.point")) == 4)
        assert card.get_attribute("data-verdict") == "spoof"
        assert "Mallory <script>x</script>" in card.find_element(By.CSS_SELECTOR, ".who").text
        assert browser.execute_script("return document.querySelectorAll('div.leg script').length") == 0
        lines = {ln.get_attribute("data-threshold"): float(ln.get_attribute("data-value"))
                 for ln in card.find_elements(By.CSS_SELECTOR, "svg[data-timeline] line[data-threshold]")}
        assert lines == {"warn": 0.78, "hangup": 0.82}
        ys = {ln.get_attribute("data-threshold"): float(ln.get_attribute("y1"))
              for ln in card.find_elements(By.CSS_SELECTOR, "line[data-threshold]")}
        assert ys["hangup"] < ys["warn"]  # higher score, higher on the chart
        levels = [p.get_attribute("data-level") for p in card.find_elements(By.CSS_SELECTOR, "circle.point")]
        assert levels == ["ok", "warn", "hangup", "hangup"]
        assert card.find_element(By.CSS_SELECTOR, "polyline.evidence").get_attribute("points").count(",") == 4

        # a new chunk arrives: the next poll redraws the timeline; a new verdict reaches the feed
        def more() -> None:
            state = live["1700000000.1:caller"]
            state.chunk_timings.append({"chunk_index": 4, "start_s": 9.5, "end_s": 11.5, "score": 0.2})
            state.evidence.add(4, 0.2)
            feed(_verdict("1700000000.1", "spoof", 2, "suspicious"))

        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, '#feed li[data-verdict="suspicious"]')))
        server.call(more)
        wait.until(lambda d: len(card.find_elements(By.CSS_SELECTOR, "circle.point")) == 5)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, '#feed li[data-verdict="spoof"]')))
        feed_items = browser.find_elements(By.CSS_SELECTOR, "#feed li[data-feed-seq]")
        assert [li.get_attribute("data-feed-seq") for li in feed_items] == ["2", "1"]  # newest first, no repeats

        # the models section
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-version="20260201T000000"]')))
        current = browser.find_element(By.CSS_SELECTOR, 'tr[data-version="20260201T000000"]')
        assert current.get_attribute("data-current") == "true" and "eval.challenger.eer 0.2700" in current.text
        assert len(browser.find_elements(By.CSS_SELECTOR, "#model-log li[data-event]")) == 2

        # the review queue: the two unlabelled items; the reviewer's name came with the login
        row = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-item-id="{ids[1]}"]')))
        rows = browser.find_elements(By.CSS_SELECTOR, "#review-items tr[data-item-id]")
        assert [r.get_attribute("data-item-id") for r in rows] == [str(ids[2]), str(ids[1])]
        assert browser.find_element(By.ID, "reviewer").get_attribute("value") == "Grace"

        audio = row.find_element(By.CSS_SELECTOR, f'audio[data-audio-for="{ids[1]}"]')
        played = browser.execute_async_script("""
            const [a, done] = arguments;
            const state = (ok, e) => ({ok, error: e ? String(e) : (a.error && a.error.code), duration: a.duration,
                                       readyState: a.readyState, currentTime: a.currentTime});
            a.play().then(() => setTimeout(() => done(state(true)), 300), (e) => done(state(false, e)));
        """, audio)
        assert played["ok"], played
        assert played["duration"] == pytest.approx(2.0, abs=0.01) and played["readyState"] >= 2, played
        assert played["currentTime"] > 0, played

        row.find_element(By.CSS_SELECTOR, "input.note").send_keys("TTS artefacts")
        row.find_element(By.CSS_SELECTOR, 'button[data-label="synthetic"]').click()
        wait.until(lambda d: row.find_element(By.CSS_SELECTOR, ".item-label").get_attribute("data-current-label")
                   == "synthetic")
        assert "Grace" in row.find_element(By.CSS_SELECTOR, ".item-label").text
        assert f"item {ids[1]} labelled synthetic by Grace" in browser.find_element(By.ID, "review-status").text
        if os.environ.get("CALLGUARD_DASHBOARD_SCREENSHOT"):
            browser.save_screenshot(os.environ["CALLGUARD_DASHBOARD_SCREENSHOT"])
        problems = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
        assert problems == []  # no script errors, no refused requests, no CSP violations

    with ReviewStore(review_dir) as store:
        item = store.get(ids[1])
        assert (item["label"], item["labelled_by"]) == ("synthetic", "Grace")
        assert item["labelled_at"] > time.time() - 120
        assert item["history"][-1]["note"] == "TTS artefacts"
        assert store.get(ids[2])["label"] is None  # only the clicked one

