"""The HTML report (statesock.tools.report) without a browser: content, safety, scale.

tests/test_report_browser.py loads the same pages in a real headless Chromium.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from statesock.tools.cli import main
from statesock.tools.log_reader import LogReader
from statesock.tools.report import build_report
from tests.support import fleet_lines, session_lines, write


def payload_of(page: str) -> Any:
    found = re.search(
        r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S
    )
    assert found is not None
    return json.loads(found.group(1))


def test_the_report_is_self_contained_and_carries_the_log() -> None:
    text = "\n".join(session_lines("alpha")) + "\n"
    report = build_report(LogReader(["-"], stdin=io.BytesIO(text.encode())), title="t")
    page = report.html
    # Nothing to fetch: no external scripts, styles, images or links, and a CSP that forbids it.
    assert not re.search(r"<(link|img|iframe)\b", page)
    assert not re.search(r"\bsrc\s*=", page)
    assert "@import" not in page
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}
    assert "default-src 'none'" in page
    data = payload_of(page)
    [lane] = data["lanes"]
    assert lane["label"] == "alpha"
    states = [data["states"][band["s"]] for band in lane["bands"]]
    assert states[:4] == ["initialized", "connecting", "authenticating", "connected"]
    assert len(lane["bands"]) == 15  # a stub for where the log starts, then 14 changes
    assert len(lane["outages"]) == 2
    assert data["fleet"]["p95_time_to_reconnect_s"] == 4.0
    assert report.lanes_total == report.lanes_shown == 1


def test_record_text_cannot_break_out_of_the_page() -> None:
    lines = session_lines()
    hostile = json.loads(lines[4])
    hostile["detail"] = "</script><script>alert(1)</script><b>"
    lines[4] = json.dumps(hostile)
    page = build_report(LogReader(["-"], stdin=io.BytesIO("\n".join(lines).encode()))).html
    assert "<script>alert(1)" not in page
    assert page.count("</script>") == 2  # the data block's end and the code's end
    details = [b.get("r", {}).get("detail") for b in payload_of(page)["lanes"][0]["bands"]]
    assert "</script><script>alert(1)</script><b>" in details


def test_a_thousand_clients_stay_within_the_band_budget() -> None:
    lines = fleet_lines(1000, 8)
    stdin = io.BytesIO(("\n".join(lines) + "\n").encode())
    report = build_report(LogReader(["-"], stdin=stdin), band_budget=4000)
    data = payload_of(report.html)
    assert report.lanes_total == report.lanes_shown == 1000
    # Each lane keeps at most its share of the budget (never fewer than 16 bands).
    assert all(len(lane["bands"]) <= 16 for lane in data["lanes"])
    assert report.merged_lanes == 1000
    # The summary counts every record, whatever the drawing merged.
    assert data["fleet"]["records"] == 32_000
    assert data["fleet"]["disconnections"] == {"server": 8000}
    # The overview accounts for every drawn second of every lane, and every disconnection.
    overview = data["overview"]
    assert len(overview["states"]) == 120
    assert sum(overview["disconnections"]) == 8000
    drawn = sum(band["b"] - band["a"] for lane in data["lanes"] for band in lane["bands"])
    counted = sum(sum(column) for column in overview["states"]) * overview["width"]
    assert abs(counted - drawn) / drawn < 0.01
    merged = [band for band in data["lanes"][0]["bands"] if "m" in band]
    assert merged and all(sum(band["m"]) > 0 for band in merged)
    assert sum(band["n"] for band in data["lanes"][0]["bands"]) == 32


def test_lanes_are_sorted_by_trouble() -> None:
    calm = fleet_lines(1, 1)
    troubled = [line.replace("feed-0000", "stormy") for line in fleet_lines(1, 5)]
    stdin = io.BytesIO(("\n".join(calm + troubled) + "\n").encode())
    data = payload_of(build_report(LogReader(["-"], stdin=stdin)).html)
    assert [lane["label"] for lane in data["lanes"]] == ["stormy", "feed-0000"]


def test_report_command_and_logs_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = write(tmp_path, session_lines())
    out = tmp_path / "r.html"
    assert main(["report", str(log), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert payload_of(out.read_text(encoding="utf-8"))["lanes"][0]["label"] == "c1"
    other = tmp_path / "other.html"
    assert main(["logs", str(log), "--html", str(other)]) == 0
    assert other.exists()
    assert main(["report", str(tmp_path / "missing.jsonl"), "-o", str(out)]) == 2
    assert main(["report", str(log), "-o", str(tmp_path / "no" / "such" / "dir.html")]) == 2
