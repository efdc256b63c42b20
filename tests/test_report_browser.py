"""The HTML report in a real headless Chromium (Debian's ``chromium`` driven by Playwright).

``make test`` installs Chromium first when it is missing (``make browser``). When Chromium or
Playwright is still missing, these tests FAIL under CI (``CI=true``): the report must be
tested in a browser there. Elsewhere they skip, with the reason in the summary and on stderr.
Playwright's own browser download (``playwright install``) is never used.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from statesock.tools.log_reader import LogReader
from statesock.tools.report import build_report
from tests.support import fleet_lines, session_lines

CHROMIUM = os.environ.get("STATESOCK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[dev]')"
    if not os.path.exists(CHROMIUM):
        return f"Chromium is not installed at {CHROMIUM} (run `make browser`, as root)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _unavailable()
    if reason is not None:
        message = f"THE REPORT'S BROWSER TESTS DID NOT RUN: {reason}"
        print(f"\n*** {message} ***", file=sys.stderr)
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Page:
    """A loaded report, with every console message, page error and request it made."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.messages: list[str] = []
        self.requests: list[str] = []
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.page.on("console", lambda m: self.messages.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.messages.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("body[data-ready='1']", timeout=20_000)

    def texts(self, selector: str) -> list[str]:
        return list(self.page.locator(selector).all_inner_texts())

    def attrs(self, selector: str, name: str) -> list[str | None]:
        found = self.page.locator(selector)
        return [found.nth(i).get_attribute(name) for i in range(found.count())]

    def tooltip(self, selector: str) -> str:
        # Hover the band's top-left corner: the lower half may carry a retry hatch.
        self.page.locator(selector).first.hover(position={"x": 1, "y": 1})
        tip = self.page.locator("#tip")
        tip.wait_for(state="visible")
        return str(tip.inner_text())

    def close(self) -> None:
        self.page.close()


def write_report(tmp_path: Path, lines: list[str], name: str = "report.html") -> Path:
    stdin = io.BytesIO(("\n".join(lines) + "\n").encode())
    path = tmp_path / name
    path.write_text(build_report(LogReader(["-"], stdin=stdin), title="test").html, "utf-8")
    return path


def note(client: str, retry_in: float, attempt: int) -> str:
    return json.dumps(
        {"event": "reconnect_scheduled", "client": client, "retry_in": retry_in, "attempt": attempt}
    )


def test_lanes_bands_markers_and_tooltips(browser: Any, tmp_path: Path) -> None:
    alpha = session_lines("alpha")
    alpha.insert(5, note("alpha", 0.9, 1))  # after the no-pong close
    alpha.insert(10, note("alpha", 3.5, 1))  # after the 1011 close
    beta = session_lines("beta", plain=True) * 2  # one process, restarted: two runs
    path = write_report(tmp_path, alpha + beta)
    page = Page(browser, path)
    try:
        assert page.attrs("g.lane", "data-lane") == ["alpha", "beta", "beta#2"]
        lane = "g.lane[data-lane='alpha'] "
        states = page.attrs(lane + "rect.band", "data-state")
        assert states == [
            "initialized",  # where the log starts
            "connecting",
            "authenticating",
            "connected",
            "disconnecting",
            "disconnected",
            "connecting",
            "authenticating",
            "connected",
            "disconnected",
            "connecting",
            "authenticating",
            "connected",
            "disconnecting",
            "disconnected",
        ]
        sources = page.attrs(lane + "path.marker", "data-source")
        codes = page.attrs(lane + "path.marker", "data-code")
        assert list(zip(sources, codes, strict=True)) == [
            ("no_pong", ""),
            ("server", "1011"),
            ("user", ""),
        ]
        assert page.page.locator(lane + "rect.retry").count() == 2
        assert page.page.locator(lane + "rect.outage").count() == 2
        assert page.page.locator("g.lane[data-lane='beta#2'] rect.outage").count() == 2

        tip = page.tooltip(lane + "rect.band[data-state='disconnected'] >> nth=1")
        assert "alpha: disconnected for 4.000 s" in tip
        assert "record: connected → disconnected on closed  (seq 9)" in tip
        assert "source: server (1011)" in tip
        assert "detail: server closed with 1011: overloaded" in tip
        assert "reconnect in 3.500 s (attempt 1)" in tip
        assert "line: -:10" in tip
        # A 100 ms band in a 200 s lane is a sliver: it gets a wider hit area.
        sliver = page.page.locator(lane + "rect.hit[data-state='disconnecting']").first
        sliver.hover()
        tip = page.page.locator("#tip").inner_text()
        assert "alpha: disconnecting for 100.0 ms" in tip and "source: no_pong" in tip
        outage = page.page.locator(lane + "rect.outage").nth(1)
        outage.hover()
        assert "alpha: outage 4.000 s" in page.page.locator("#tip").inner_text()

        # The summary, the per-lane table and the diagram's counts.
        summary = " ".join(page.texts("table.summary"))
        assert "time to reconnect p95\t4.000 s" in summary
        assert "no_pong\t3" in summary and "server\t3" in summary
        rows = page.texts("#lane-table tbody tr")
        assert len(rows) == 3 and rows[0].startswith("alpha\t14\t0\tno_pong=1, server=1, user=1")
        labels = page.page.locator("svg.diagram text.edge-label").all_text_contents()
        assert "connect ×6" in labels  # disconnected -> connecting, 2 per session
        assert "authenticated ×9" in labels

        assert page.messages == []
        assert all(url.startswith("file://") for url in page.requests), page.requests
        page.page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    finally:
        page.close()


def test_a_thousand_clients_paginate_and_filter(browser: Any, tmp_path: Path) -> None:
    path = write_report(tmp_path, fleet_lines(1000, 6), "fleet.html")
    page = Page(browser, path)
    try:
        assert page.page.locator("g.lane").count() == 40
        assert page.page.locator("svg.overview g.col").count() == 120
        page.page.locator("svg.overview g.col").nth(60).hover()
        tip = page.page.locator("#tip").inner_text()
        assert "connected:" in tip and "client runs" in tip and "disconnections:" in tip
        assert page.texts("#page-label") == ["lanes 1–40 of 1000 (page 1 of 25)"]
        first = page.attrs("g.lane", "data-lane")[0]
        page.page.click("#next")
        assert page.texts("#page-label") == ["lanes 41–80 of 1000 (page 2 of 25)"]
        assert first not in page.attrs("g.lane", "data-lane")
        page.page.fill("#filter", "feed-0999")
        assert page.attrs("g.lane", "data-lane") == ["feed-0999"]
        assert page.page.locator("g.lane rect.band").count() == 25
        tip = page.tooltip("g.lane rect.band[data-state='disconnected']")
        assert "source: server (1011)" in tip
        page.page.select_option("#zoom", "16")
        assert page.page.locator("g.lane rect.band").count() == 25
        assert page.messages == []
    finally:
        page.close()


def test_hostile_titles_and_labels_show_as_text_and_single_band_lanes_are_drawn(
    browser: Any, tmp_path: Path
) -> None:
    hostile = '<img src=x onerror="window.owned=1"><script>window.owned=2</script>'
    quiet = json.dumps({
        "event": "transition", "client": "quiet", "seq": 40, "src": "connected",
        "dst": "connected", "trigger": "pong", "internal": True, "at": 5.0, "in_state_ms": 900.0,
    })  # fmt: skip
    stdin = io.BytesIO(("\n".join([*session_lines(hostile), quiet]) + "\n").encode())
    path = tmp_path / "hostile.html"
    path.write_text(build_report(LogReader(["-"], stdin=stdin), title=hostile).html, "utf-8")
    page = Page(browser, path)
    try:
        assert page.page.evaluate("window.owned") is None
        assert page.texts("h1") == [hostile]
        assert page.page.title() == hostile
        assert page.attrs("g.lane", "data-lane") == [hostile, "quiet"]
        assert page.attrs("g.lane[data-lane='quiet'] rect.band", "data-state") == ["connected"]
        # Its one band is an instant: a sliver with a wider hit area.
        page.page.locator("g.lane[data-lane='quiet'] rect.hit").first.hover()
        assert "pongs: 1" in page.page.locator("#tip").inner_text()
        rows = page.texts("#lane-table tbody tr")
        assert [row.split("\t")[0] for row in rows] == [hostile, "quiet"]
        assert page.messages == []
        assert all(url.startswith("file://") for url in page.requests), page.requests
    finally:
        page.close()
