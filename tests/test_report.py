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


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(2)> & co'


def test_the_title_and_labels_are_escaped() -> None:
    lines = session_lines(HOSTILE)
    page = build_report(
        LogReader(["-"], stdin=io.BytesIO("\n".join(lines).encode())), title=HOSTILE
    ).html
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"
    assert f"<title>{escaped} &amp; co</title>" in page
    assert f"<h1>{escaped} &amp; co</h1>" in page
    assert "<script>alert" not in page and "<img" not in page
    assert page.count("</script>") == 2  # the data block's end and the code's end
    data = payload_of(page)
    assert data["title"] == HOSTILE  # as text, for the script to set with textContent
    assert [lane["label"] for lane in data["lanes"]] == [HOSTILE]


def test_the_default_title_names_the_files_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write(tmp_path, session_lines(), "<b>log<i>.jsonl")
    assert main(["report", str(log), "-o", "-"]) == 0
    page = capsys.readouterr().out
    assert "<b>log" not in page
    assert "&lt;b&gt;log&lt;i&gt;.jsonl</title>" in page


def pong_only(client: str) -> str:
    """One internal record: a log that starts (rotated, filtered) in the middle of a session."""
    return json.dumps({
        "event": "transition", "client": client, "seq": 40, "src": "connected",
        "dst": "connected", "trigger": "pong", "internal": True, "at": 5.0, "in_state_ms": 900.0,
    })  # fmt: skip


def test_a_lane_with_a_single_band_is_drawn() -> None:
    lines = [*session_lines("busy"), pong_only("quiet")]
    report = build_report(LogReader(["-"], stdin=io.BytesIO("\n".join(lines).encode())))
    assert report.lanes_total == report.lanes_shown == 2
    lanes = {lane["label"]: lane for lane in payload_of(report.html)["lanes"]}
    assert set(lanes) == {"busy", "quiet"}
    [band] = lanes["quiet"]["bands"]
    assert band["s"] == 3 and band["n"] == 1 and band["p"] == 1  # connected, one pong
    assert lanes["quiet"]["sum"]["pongs"] == 1


def test_a_report_of_only_single_band_lanes() -> None:
    lines = [pong_only("a"), pong_only("b")]
    report = build_report(LogReader(["-"], stdin=io.BytesIO("\n".join(lines).encode())))
    assert report.lanes_shown == 2
    assert [len(lane["bands"]) for lane in payload_of(report.html)["lanes"]] == [1, 1]
