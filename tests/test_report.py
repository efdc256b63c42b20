"""The HTML report (statesock.tools.report) without a browser: content, safety, scale.

tests/test_report_browser.py loads the same pages in a real headless Chromium.
"""

from __future__ import annotations

import io
import itertools
import json
import math
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


# -- what the page says: the summary, the edge table, the legend, the sources -----------------


def table(page: str, cls: str) -> list[list[str]]:
    """The cells of ``<table class='cls'>``, header row first."""
    found = re.search(rf"<table class='{cls}'>(.*?)</table>", page, re.S)
    assert found is not None, cls
    rows = re.findall(r"<tr>(.*?)</tr>", found.group(1), re.S)
    return [re.findall(r"<t[dh]>(.*?)</t[dh]>", row, re.S) for row in rows]


def page_of(*lines: str, title: str = "t") -> str:
    text = "\n".join(lines) + "\n"
    return build_report(LogReader(["-"], stdin=io.BytesIO(text.encode())), title=title).html


def test_the_summary_tables_say_time_in_state_sources_and_the_numbers() -> None:
    page = page_of(*session_lines("alpha"))
    assert table(page, "summary states") == [
        ["state", "time in state", "share"],
        ["initialized", "0.000 s", "0.0%"],
        ["connecting", "0.600 s", "0.3%"],
        ["authenticating", "0.100 s", "0.1%"],
        ["connected", "194.300 s", "97.2%"],
        ["disconnecting", "0.100 s", "0.1%"],
        ["disconnected", "4.900 s", "2.5%"],
    ]
    assert table(page, "summary sources") == [
        ["disconnection source", "count"],
        ["no_pong", "1"],
        ["server", "1"],
        ["user", "1"],
    ]
    assert table(page, "summary numbers") == [
        ["", ""],
        ["clients", "1"],
        ["client runs", "1"],
        ["transition records", "14"],
        ["pongs", "0"],
        ["reconnects", "2"],
        ["outages that ended in connected", "2"],
        ["time to reconnect p50", "1.500 s"],
        ["time to reconnect p95", "4.000 s"],
        ["longest outage", "4.000 s"],
    ]
    assert "<div class='cards'><table class='summary states'>" in page
    assert "<table class='summary numbers'>" in page and "</table></div>" in page


def test_an_empty_log_says_so_in_every_table() -> None:
    report = build_report([])
    page = report.html
    assert table(page, "summary sources")[1:] == [["none", "0"]]
    numbers = dict(row for row in table(page, "summary numbers")[1:])
    assert numbers["clients"] == numbers["client runs"] == "0"
    assert numbers["time to reconnect p50"] == numbers["longest outage"] == "–"
    assert [row[2] for row in table(page, "summary states")[1:]] == ["0.0%"] * 6
    assert '<p class="meta">From –.' in page
    assert (report.lanes_total, report.lanes_shown, report.bands, report.merged_lanes) == (
        0,
        0,
        0,
        0,
    )


def test_the_edge_table_counts_every_edge_of_the_machine_and_the_illegal_ones() -> None:
    lines = [
        record_line(1, "initialized", "connecting", "connect"),
        record_line(2, "connecting", "authenticating", "opened"),
        record_line(3, "authenticating", "connected", "authenticated"),
        record_line(4, "connected", "connected", "pong", internal=True),
        record_line(5, "connected", "connected", "pong", internal=True),
        record_line(6, "connected", "initialized", "connect"),  # not an edge of the machine
    ]
    rows = table(page_of(*lines), "edges")
    assert rows[0] == ["from", "to", "trigger", "count"]
    counted = {(src, dst, trigger): count for src, dst, trigger, count in rows[1:]}
    assert counted[("initialized", "connecting", "connect")] == "1"
    assert counted[("connected", "connected", "pong (internal)")] == "2"
    assert counted[("disconnecting", "disconnecting", "disconnect (internal)")] == "0"
    assert counted[("connecting", "disconnected", "closed")] == "0"
    assert rows[-1] == ["–", "–", "not an edge of the machine", "1"]
    assert len(rows) == 1 + 14 + 1


def record_line(seq: int, src: str, dst: str, trigger: str, **fields: Any) -> str:
    return json.dumps(
        {"event": "transition", "client": "c", "seq": seq, "src": src, "dst": dst,
         "trigger": trigger, "at": float(seq), "in_state_ms": 1000.0, **fields}
    )  # fmt: skip


def test_the_legend_the_files_and_the_scale_are_stated(tmp_path: Path) -> None:
    first = write(tmp_path, session_lines("a"), name="a.jsonl")
    second = write(tmp_path, session_lines("b"), name="b.jsonl")
    page = build_report(LogReader([first, second]), band_budget=500).html
    assert f'<p class="meta">From {first}, {second}. Generated by' in page
    legend = re.search(r'<div class="legend">(.*?)</div>', page, re.S)
    assert legend is not None
    assert legend.group(1) == "".join(
        f"<span class='key'><i style='background:{colour}'></i>{state}</span>"
        for state, colour in [
            ("initialized", "#9ca3af"),
            ("connecting", "#60a5fa"),
            ("authenticating", "#a78bfa"),
            ("connected", "#22c55e"),
            ("disconnecting", "#f59e0b"),
            ("disconnected", "#ef4444"),
        ]
    )
    assert "At scale: 40 lanes per page (filter by name below), and at most 500 bands" in page
    assert "<title>statesock report</title>" in page and "<h1>statesock report</h1>" in page


# -- the state diagram: every edge drawn from box to box, labelled, weighted by its count -------

# Where the boxes are (the layout: the happy path along the top, the way down below it).
BOXES = {
    "initialized": (80, 100),
    "connecting": (310, 100),
    "authenticating": (560, 100),
    "connected": (810, 100),
    "disconnected": (310, 360),
    "disconnecting": (810, 360),
}
BOX_W, BOX_H = 130, 40
SVG_OPEN = (
    '<svg class="diagram" viewBox="0 0 900 440" xmlns="http://www.w3.org/2000/svg" '
    'role="img" aria-label="state diagram with edge counts">\n'
    "<defs><marker id='arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' "
    "markerHeight='7' orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' "
    "fill='#374151'/></marker></defs>\n"
)


def expected_edge(src: str, dst: str) -> tuple[str, float, float, str]:
    """The path, the label's position and anchor of one edge, by the layout's rules: a line
    trimmed to 4 px outside both boxes and bent 24 px to its left (36 px for the vertical
    ones), its label a quarter of the way from the bend to the chord plus 6 / 10 px outward
    (and 4 px to the baseline), beside a steep edge growing away from it; a loop leaves the
    top of a box on the top row (the bottom of one below) and returns beside it."""
    (x1, y1), (x2, y2) = BOXES[src], BOXES[dst]
    if src == dst:
        up = -1 if y1 < 200 else 1
        y0 = y1 + up * BOX_H / 2
        path = f"M{x1 - 20},{y0} C{x1 - 40},{y0 + up * 55} {x1 + 40},{y0 + up * 55} {x1 + 20},{y0}"
        return path, float(x1), y0 + up * 52, "middle"
    dx, dy = x2 - x1, y2 - y1
    scale = min(
        (BOX_W / 2 + 4) / abs(dx) if dx else math.inf,
        (BOX_H / 2 + 4) / abs(dy) if dy else math.inf,
    )
    sx, sy, ex, ey = x1 + dx * scale, y1 + dy * scale, x2 - dx * scale, y2 - dy * scale
    nx, ny = -dy / math.hypot(dx, dy), dx / math.hypot(dx, dy)
    bend = 36 if dx == 0 else 24
    cx, cy = (sx + ex) / 2 + nx * bend, (sy + ey) / 2 + ny * bend
    path = f"M{sx:.1f},{sy:.1f} Q{cx:.1f},{cy:.1f} {ex:.1f},{ey:.1f}"
    lx = (sx + 2 * cx + ex) / 4 + nx * 6
    ly = (sy + 2 * cy + ey) / 4 + ny * 10 + 4
    anchor = "middle" if abs(nx) < 0.7 else ("end" if nx < 0 else "start")
    return path, lx, ly, anchor


def test_the_diagram_draws_each_edge_from_box_to_box_weighted_and_labelled() -> None:
    from statesock.tools.diagram import edges
    from statesock.tools.report import diagram_svg

    counts = {key: [0, 1, 9, 123456][i % 4] for i, (key, _internal) in enumerate(edges())}
    svg = diagram_svg(counts)
    assert svg.startswith(SVG_OPEN)
    assert svg.endswith("\n</svg>")
    drawn = re.findall(
        r"<path class='edge' d='([^']*)' fill='none' stroke='#374151' stroke-width='([^']*)'"
        r"( stroke-dasharray='4 3')? marker-end='url\(#arrow\)'><title>(.*?) → (.*?): (.*?)"
        r"</title></path>",
        svg,
    )
    labels = re.findall(
        r"<text class='edge-label' x='([^']*)' y='([^']*)' text-anchor='([^']*)' "
        r"data-edge='([^']*)->([^']*)'>(.*?)</text>",
        svg,
    )
    assert len(drawn) == len(labels) == len(list(edges()))  # no two edges share their ends
    for (path, width, dash, src, dst, title), (lx, ly, anchor, lsrc, ldst, text) in zip(
        drawn, labels, strict=True
    ):
        [(trigger, count)] = [(k[2], n) for k, n in counts.items() if k[:2] == (src, dst)]
        assert (lsrc, ldst) == (src, dst)
        assert title == text == f"{trigger} ×{count}"
        assert float(width) == round(1 + min(4.0, math.log10(count + 1)), 1)
        assert bool(dash) == (count == 0)  # an edge that never happened is dashed
        want_path, want_x, want_y, want_anchor = expected_edge(src, dst)
        assert path == want_path, (src, dst)
        assert (lx, ly, anchor) == (f"{want_x:.1f}", f"{want_y:.1f}", want_anchor), (src, dst)
    nodes = re.findall(
        r"<g class='node' data-state='([^']*)'><rect x='([^']*)' y='([^']*)' width='130' "
        r"height='40' rx='8' fill='([^']*)' fill-opacity='0.25' stroke='([^']*)'/>"
        r"<text x='([^']*)' y='([^']*)' text-anchor='middle'>([^<]*)</text></g>",
        svg,
    )
    assert [n[0] for n in nodes] == list(BOXES)
    for state, x, y, fill, stroke, tx, ty, name in nodes:
        bx, by = BOXES[state]
        assert (float(x), float(y)) == (bx - BOX_W / 2, by - BOX_H / 2)
        assert (int(tx), int(ty), name) == (bx, by + 5, state)
        assert fill == stroke
    # Lines first, then boxes, then every label on top; one element per line.
    lines = svg.split("\n")
    assert len(lines) == 2 + len(drawn) + len(nodes) + len(labels) + 1
    assert all(line.startswith("<path class='edge'") for line in lines[2 : 2 + len(drawn)])
    assert all(line.startswith("<text class='edge-label'") for line in lines[-1 - len(labels) : -1])


# -- the page's data: every band, note, outage and summary a lane carries -----------------------


def transition(  # noqa: PLR0917 (the fields of a record, in the log's order)
    client: str, seq: int, src: str, dst: str, trigger: str, at: float, **kw: Any
) -> str:
    return json.dumps(
        {"event": "transition", "client": client, "seq": seq, "src": src, "dst": dst,
         "trigger": trigger, "at": at, "in_state_ms": kw.pop("ms", 0.0), **kw}
    )  # fmt: skip


def test_the_data_block_carries_each_band_with_its_record_note_and_outage(tmp_path: Path) -> None:
    wall = [
        transition("c", 1, "initialized", "connecting", "connect", 10.0, ts=1000.0),
        transition("c", 2, "connecting", "authenticating", "opened", 10.5, ts=1000.5, ms=500.0),
        transition("c", 3, "authenticating", "connected", "authenticated", 11.0, ts=1001.0,
                   ms=500.0),
        transition("c", 4, "connected", "connected", "pong", 20.0, ts=1010.0, internal=True,
                   ms=9000.0),
        transition("c", 5, "connected", "disconnecting", "disconnect", 30.0, ts=1020.0,
                   source="no_pong", detail="no pong", ms=19000.0),
        transition("c", 6, "disconnecting", "disconnected", "closed", 30.5, ts=1020.5,
                   source="no_pong", code=1006, ms=500.0),
        json.dumps({"event": "reconnect_scheduled", "client": "c", "retry_in": 2.0,
                    "attempt": 1, "ts": 1020.6}),
        transition("c", 7, "disconnected", "connecting", "connect", 32.5, ts=1022.5,
                   reconnect=True, ms=2000.0),
        transition("c", 8, "connecting", "authenticating", "opened", 33.0, ts=1023.0, ms=500.0),
        transition("c", 9, "authenticating", "connected", "authenticated", 33.5, ts=1023.5,
                   ms=500.0),
    ]  # fmt: skip
    loop = [  # no wall clock: drawn from the axis start
        transition("d", 1, "initialized", "connecting", "connect", 5.0),
        transition("d", 2, "connecting", "disconnected", "closed", 6.0, source="server",
                   code=1011, ms=1000.0),
    ]  # fmt: skip
    first, second = write(tmp_path, wall, name="a.jsonl"), write(tmp_path, loop, name="b.jsonl")
    report = build_report(LogReader([first, second]), title="fleet")
    data = payload_of(report.html)

    def r(  # noqa: PLR0917 (one positional per field of the record, in the data's order)
        file: Path, line: int, src: str, trigger: str, seq: int, ts: str | None, at: float,
        spent: float, source: str | None = None, code: int | None = None, detail: str = "",
    ) -> dict[str, Any]:  # fmt: skip
        return {
            "src": src, "trigger": trigger, "source": source, "code": code, "detail": detail,
            "seq": seq, "where": f"{file}:{line}", "ts": ts, "at": at, "in_prev_ms": spent,
        }  # fmt: skip

    day = "1970-01-01 00:"
    assert data["lanes"][0]["bands"] == [
        {"a": 0.0, "b": 0.0, "s": 0, "n": 0},
        {"a": 0.0, "b": 0.5, "s": 1, "n": 1,
         "r": r(first, 1, "initialized", "connect", 1, f"{day}16:40.000Z", 10.0, 0.0)},
        {"a": 0.5, "b": 1.0, "s": 2, "n": 1,
         "r": r(first, 2, "connecting", "opened", 2, f"{day}16:40.500Z", 10.5, 500.0)},
        {"a": 1.0, "b": 20.0, "s": 3, "n": 2, "p": 1,
         "r": r(first, 3, "authenticating", "authenticated", 3, f"{day}16:41.000Z", 11.0, 500.0)},
        {"a": 20.0, "b": 20.5, "s": 4, "n": 1, "d": 1,
         "r": r(first, 5, "connected", "disconnect", 5, f"{day}17:00.000Z", 30.0, 19000.0,
                "no_pong", None, "no pong")},
        {"a": 20.5, "b": 22.5, "s": 5, "n": 1, "w": [20.6, 2.0, 1],
         "r": r(first, 6, "disconnecting", "closed", 6, f"{day}17:00.500Z", 30.5, 500.0,
                "no_pong", 1006)},
        {"a": 22.5, "b": 23.0, "s": 1, "n": 1,
         "r": r(first, 8, "disconnected", "connect", 7, f"{day}17:02.500Z", 32.5, 2000.0)},
        {"a": 23.0, "b": 23.5, "s": 2, "n": 1,
         "r": r(first, 9, "connecting", "opened", 8, f"{day}17:03.000Z", 33.0, 500.0)},
        {"a": 23.5, "b": 23.5, "s": 3, "n": 1,
         "r": r(first, 10, "authenticating", "authenticated", 9, f"{day}17:03.500Z", 33.5, 500.0)},
    ]  # fmt: skip
    assert data["lanes"][1]["bands"] == [
        {"a": 0.0, "b": 0.0, "s": 0, "n": 0},
        {"a": 0.0, "b": 1.0, "s": 1, "n": 1,
         "r": r(second, 1, "initialized", "connect", 1, None, 5.0, 0.0)},
        {"a": 1.0, "b": 1.0, "s": 5, "n": 1, "d": 1,
         "r": r(second, 2, "connecting", "closed", 2, None, 6.0, 1000.0, "server", 1011)},
    ]  # fmt: skip
    lanes = [{k: v for k, v in lane.items() if k != "bands"} for lane in data["lanes"]]
    assert lanes == [
        {"label": "c", "client": "c", "run": "1", "outages": [[20.0, 23.5]], "merged": False,
         "sum": {"records": 9, "pongs": 1, "disconnections": {"no_pong": 1}, "reconnects": 1,
                 "outages": 1, "p50": 3.5, "p95": 3.5, "longest": 3.5, "state": "connected",
                 "final_source": None, "final_code": None,
                 "time": {"initialized": 0.0, "connecting": 1.0, "authenticating": 1.0,
                          "connected": 19.0, "disconnecting": 0.5, "disconnected": 2.0}}},
        {"label": "d", "client": "d", "run": "1", "outages": [], "merged": False,
         "sum": {"records": 2, "pongs": 0, "disconnections": {"server": 1}, "reconnects": 0,
                 "outages": 0, "p50": None, "p95": None, "longest": None,
                 "state": "disconnected", "final_source": "server", "final_code": 1011,
                 "time": {"initialized": 0.0, "connecting": 1.0}}},
    ]  # fmt: skip
    top = {k: v for k, v in data.items() if k not in ("lanes", "overview", "fleet")}
    assert top == {
        "title": "fleet", "origin": 1000.0, "origin_text": f"{day}16:40.000Z", "end": 23.5,
        "states": ["initialized", "connecting", "authenticating", "connected", "disconnecting",
                   "disconnected"],
        "colours": ["#9ca3af", "#60a5fa", "#a78bfa", "#22c55e", "#f59e0b", "#ef4444"],
        "per_page": 40, "band_budget": 40000,
    }  # fmt: skip
    overview = data["overview"]
    assert overview["width"] == round(23.5 / 120, 3)
    assert [(i, n) for i, n in enumerate(overview["disconnections"]) if n] == [(5, 1), (102, 1)]
    assert len(overview["states"]) == 120
    # Each slice counts the runs in each state, on average over the slice.
    assert overview["states"][0] == [0.0, 2.0, 0.0, 0.0, 0.0, 0.0]
    assert overview["states"][2] == [0.0, 1.55, 0.45, 0.0, 0.0, 0.0]
    assert all(round(sum(column), 2) <= 2.0 for column in overview["states"])
    assert (report.lanes_total, report.lanes_shown, report.bands, report.merged_lanes) == (
        2,
        2,
        12,
        0,
    )


def test_a_long_lane_is_merged_into_summary_bands_and_keeps_its_longest_outages() -> None:
    lines = [
        transition("c", 1, "initialized", "connecting", "connect", 0.0),
        transition("c", 2, "connecting", "authenticating", "opened", 1.0),
        transition("c", 3, "authenticating", "connected", "authenticated", 2.0),
    ]
    seq, t = 4, 2.0
    for i in range(130):
        t += 10
        lines.append(transition("c", seq, "connected", "disconnected", "closed", t,
                                source="server", code=1011))  # fmt: skip
        t += 1 + i % 7  # outages of 1 to 7 s
        lines += [
            transition("c", seq + 1, "disconnected", "connecting", "connect", t, reconnect=True),
            transition("c", seq + 2, "connecting", "authenticating", "opened", t),
            transition("c", seq + 3, "authenticating", "connected", "authenticated", t),
        ]
        seq += 4
    report = build_report(
        LogReader(["-"], stdin=io.BytesIO("\n".join(lines).encode())), band_budget=16
    )
    data = payload_of(report.html)
    [lane] = data["lanes"]
    bands = lane["bands"]
    assert lane["merged"] is True and report.merged_lanes == 1
    assert report.bands == len(bands) <= 16
    assert all(a["b"] == b["a"] for a, b in itertools.pairwise(bands))  # no gap
    assert sum(band["n"] for band in bands) == len(lines)  # every record is in a band
    assert sum(band.get("d", 0) for band in bands) == 130
    for band in bands:
        if "m" in band:  # a summary band: the time in each state, coloured by the most
            assert sum(band["m"]) == pytest.approx(band["b"] - band["a"])
            assert band["s"] == max(range(6), key=band["m"].__getitem__)
            assert "r" not in band
    outages = lane["outages"]
    assert len(outages) == 65  # the 64 longest when it had 129, then one more
    assert outages == sorted(outages)
    assert min(b - a for a, b in outages) == 4.0
    assert sum(data["overview"]["disconnections"]) == 130
    assert lane["sum"]["outages"] == 130  # the summary counts them all


def test_the_data_block_escapes_every_less_than_and_the_tables_escape_log_text() -> None:
    lines = [
        transition("c", 1, "initialized", "connecting", "connect", 0.0),
        transition("c", 2, "connecting", "disconnected", "closed", 1.0, source="<i>",
                   detail="<b>"),
    ]  # fmt: skip
    page = page_of(*lines)
    assert "\\u003cb>" in page and "\\u003ci>" in page
    assert table(page, "summary sources")[1:] == [["&lt;i&gt;", "1"]]


def test_report_times_are_utc_whatever_the_local_time_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time as clock

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    clock.tzset()
    try:
        page = page_of(transition("c", 1, "initialized", "connecting", "connect", 1.0, ts=0.25))
    finally:
        monkeypatch.undo()
        clock.tzset()
    data = payload_of(page)
    assert data["origin_text"] == "1970-01-01 00:00:00.250Z"
    assert data["lanes"][0]["bands"][1]["r"]["ts"] == "1970-01-01 00:00:00.250Z"


def lane_bands(*lines: str) -> list[dict[str, Any]]:
    [lane] = payload_of(page_of(*lines))["lanes"]
    return [{k: band[k] for k in ("a", "b", "s")} for band in lane["bands"]]


def no_at(line: str) -> str:
    data = json.loads(line)
    del data["at"]
    return json.dumps(data)


def test_a_lane_is_drawn_on_the_wall_clock_when_its_records_have_no_loop_time() -> None:
    bands = lane_bands(
        no_at(transition("c", 1, "initialized", "connecting", "connect", 0, ts=100.0)),
        no_at(transition("c", 2, "connecting", "authenticating", "opened", 0, ts=102.0)),
        no_at(transition("c", 3, "authenticating", "connected", "authenticated", 0, ts=105.0)),
    )
    assert bands == [
        {"a": 0.0, "b": 0.0, "s": 0},
        {"a": 0.0, "b": 2.0, "s": 1},
        {"a": 2.0, "b": 5.0, "s": 2},
        {"a": 5.0, "b": 5.0, "s": 3},
    ]


def test_a_lane_without_any_time_stays_at_the_start_and_one_that_gains_a_wall_time_too() -> None:
    timeless = [
        no_at(transition("c", 1, "initialized", "connecting", "connect", 0)),
        no_at(transition("c", 2, "connecting", "authenticating", "opened", 0)),
    ]
    assert {(band["a"], band["b"]) for band in lane_bands(*timeless)} == {(0.0, 0.0)}
    late_wall = [
        no_at(transition("c", 1, "initialized", "connecting", "connect", 0)),
        no_at(transition("c", 2, "connecting", "authenticating", "opened", 0, ts=500.0)),
    ]
    # The lane began without a wall clock: a wall time on a later record is not its time.
    assert {(band["a"], band["b"]) for band in lane_bands(*late_wall)} == {(0.0, 0.0)}


def test_a_loop_clock_lane_shows_a_retry_at_its_band_not_at_the_notes_wall_time() -> None:
    lines = [
        transition("c", 1, "initialized", "connecting", "connect", 50.0),
        transition("c", 2, "connecting", "disconnected", "closed", 51.0, source="server"),
        json.dumps({"event": "reconnect_scheduled", "client": "c", "retry_in": 2.0,
                    "attempt": 1, "ts": 9999.0}),
    ]  # fmt: skip
    data = payload_of(page_of(*lines))
    assert data["origin"] is None and data["origin_text"] is None  # no wall clock at all
    assert data["lanes"][0]["bands"][-1]["w"] == [1.0, 2.0, 1]


def test_wall_clock_lanes_share_one_axis_from_the_earliest() -> None:
    lines = [
        transition("a", 1, "initialized", "connecting", "connect", 1.0, ts=100.0),
        transition("b", 1, "initialized", "connecting", "connect", 7.0, ts=130.0),
    ]
    data = payload_of(page_of(*lines))
    starts = {lane["client"]: lane["bands"][0]["a"] for lane in data["lanes"]}
    assert starts == {"a": 0.0, "b": 30.0}
    assert data["origin"] == 100.0 and data["end"] == 30.0


def test_a_report_with_no_time_span_has_no_overview() -> None:
    data = payload_of(build_report([]).html)
    assert data["overview"] is None and data["end"] == 0.0 and data["lanes"] == []
    instant = payload_of(page_of(transition("c", 1, "initialized", "connecting", "connect", 5.0)))
    assert instant["overview"] is None and instant["end"] == 0.0


def test_disconnections_at_the_very_start_and_end_land_in_the_first_and_last_slices() -> None:
    lines = [
        transition("c", 1, "initialized", "connecting", "connect", 0.0),
        transition("c", 2, "connecting", "disconnected", "closed", 0.0, source="server"),
        transition("c", 3, "disconnected", "connecting", "connect", 60.0),
        transition("c", 4, "connecting", "disconnected", "closed", 120.0, source="server"),
    ]
    counts = payload_of(page_of(*lines))["overview"]["disconnections"]
    assert counts[0] == 1 and counts[-1] == 1 and sum(counts) == 2


def test_a_band_counts_its_pongs_and_its_record_keeps_200_characters_of_detail() -> None:
    lines = [
        transition("c", 1, "initialized", "connecting", "connect", 0.0),
        transition("c", 2, "connecting", "authenticating", "opened", 1.0),
        transition("c", 3, "authenticating", "connected", "authenticated", 2.0, detail="d" * 300),
        transition("c", 4, "connected", "connected", "pong", 3.0, internal=True),
        transition("c", 5, "connected", "connected", "pong", 4.0, internal=True),
    ]
    band = payload_of(page_of(*lines))["lanes"][0]["bands"][-1]
    assert (band["n"], band["p"]) == (3, 2)
    assert band["r"]["detail"] == "d" * 200


def test_the_overview_keeps_each_states_time_through_summary_bands() -> None:
    lines = [
        transition("c", 1, "initialized", "connecting", "connect", 0.0),
        transition("c", 2, "connecting", "authenticating", "opened", 0.0),
        transition("c", 3, "authenticating", "connected", "authenticated", 0.0),
    ]
    seq, t = 4, 0.0
    for _ in range(40):
        lines += [
            transition("c", seq, "connected", "disconnected", "closed", t + 9, source="server"),
            transition("c", seq + 1, "disconnected", "connecting", "connect", t + 10),
            transition("c", seq + 2, "connecting", "authenticating", "opened", t + 10),
            transition("c", seq + 3, "authenticating", "connected", "authenticated", t + 10),
        ]
        seq, t = seq + 4, t + 10
    report = build_report(
        LogReader(["-"], stdin=io.BytesIO("\n".join(lines).encode())), band_budget=16
    )
    data = payload_of(report.html)
    assert data["lanes"][0]["merged"]
    overview = data["overview"]
    width = overview["width"]
    per_state = [sum(column[s] for column in overview["states"]) * width for s in range(6)]
    # (each slice's numbers are rounded to 0.01 run: 120 slices, a second or two in all)
    assert per_state[3] == pytest.approx(40 * 9, abs=2)  # connected 9 s of every 10
    assert per_state[5] == pytest.approx(40 * 1, abs=2)  # disconnected 1 s of every 10


def test_the_page_inlines_its_style_script_and_diagram_and_writes_compact_data() -> None:
    from statesock.tools.report import asset

    page = page_of(*session_lines("alpha"))
    assert f"<style>{asset('report.css')}</style>" in page
    assert f"<script>{asset('report.js')}</script>" in page
    assert '<svg class="diagram" viewBox="0 0 900 440"' in page
    assert '"title":"t","origin":' in page  # compact JSON: no spaces after separators
    assert (
        "<table class='summary sources'><thead><tr><th>disconnection source</th><th>count</th>"
        "</tr></thead><tbody><tr><td>no_pong</td><td>1</td></tr><tr><td>server</td><td>1</td>"
        "</tr><tr><td>user</td><td>1</td></tr></tbody></table>"
    ) in page


def test_an_empty_log_spends_no_time_in_any_state() -> None:
    rows = table(build_report([]).html, "summary states")[1:]
    assert [row[1] for row in rows] == ["0.000 s"] * 6


def test_edges_that_never_happened_are_dashed_and_counted_zero() -> None:
    from statesock.tools.report import diagram_svg

    svg = diagram_svg({})
    titles = re.findall(r"<title>[^<]*: ([^<]*)</title>", svg)
    assert titles and all(title.endswith(" ×0") for title in titles)
    assert svg.count("stroke-dasharray='4 3'") == len(titles)


def test_a_lane_merged_once_says_so() -> None:
    lines = [transition("c", 1, "initialized", "connecting", "connect", 0.0)]
    for seq in range(2, 20):
        src, dst, trigger = (
            ("connecting", "disconnected", "closed")
            if seq % 2 == 0
            else ("disconnected", "connecting", "connect")
        )
        lines.append(transition("c", seq, src, dst, trigger, float(seq), source="server"))
    report = build_report(
        LogReader(["-"], stdin=io.BytesIO("\n".join(lines).encode())), band_budget=16
    )
    [lane] = payload_of(report.html)["lanes"]
    assert lane["merged"] is True and report.merged_lanes == 1
    assert len(lane["bands"]) <= 16


def test_the_bands_held_while_streaming_stay_within_twice_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from statesock.tools import report

    lanes: list[Any] = []
    peak = [0]
    made, fed = report._Lane.__init__, report._Lane.feed

    def tracking_init(self: Any, *args: Any) -> None:
        made(self, *args)
        lanes.append(self)

    def tracking_feed(self: Any, *args: Any) -> int:
        added = fed(self, *args)
        peak[0] = max(peak[0], sum(len(lane.bands) for lane in lanes))
        return added

    monkeypatch.setattr(report._Lane, "__init__", tracking_init)
    monkeypatch.setattr(report._Lane, "feed", tracking_feed)
    lines: list[str] = []
    for client in range(8):  # each lane grows alone first, then the next one starts
        name = f"c{client}"
        lines.append(transition(name, 1, "initialized", "connecting", "connect", 0.0))
        for seq in range(2, 200):
            src, dst, trigger = (
                ("connecting", "disconnected", "closed")
                if seq % 2 == 0
                else ("disconnected", "connecting", "connect")
            )
            lines.append(transition(name, seq, src, dst, trigger, float(seq)))
    result = build_report(
        LogReader(["-"], stdin=io.BytesIO("\n".join(lines).encode())), band_budget=128
    )
    assert peak[0] <= 2 * 128 + 1
    assert result.bands <= 128 and result.merged_lanes == 8


def lanes_growing_alone(*records: int) -> list[str]:
    """A log of lanes that each grow alone, one after the other: lane i makes ``records[i]``
    state changes (bands: one more, the stub of where its log starts)."""
    lines: list[str] = []
    for number, count in enumerate(records):
        name = f"c{number}"
        lines.append(transition(name, 1, "initialized", "connecting", "connect", 0.0))
        for seq in range(2, count + 1):
            src, dst, trigger = (
                ("connecting", "disconnected", "closed")
                if seq % 2 == 0
                else ("disconnected", "connecting", "connect")
            )
            lines.append(transition(name, seq, src, dst, trigger, float(seq), source="server"))
    return lines


def test_lanes_are_merged_while_streaming_only_once_twice_the_budget_is_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The report keeps every band it can: while streaming it merges the lanes (each down to
    its share) only when the bands it holds pass twice the budget, and then at once."""
    from statesock.tools import report

    lanes: list[Any] = []
    peak = [0]
    merges: list[int] = []  # the bands held when a merge of every lane took some away
    made, fed, shrink = report._Lane.__init__, report._Lane.feed, report._shrink

    def held() -> int:
        return sum(len(lane.bands) for lane in lanes)

    def tracking_init(self: Any, *args: Any) -> None:
        made(self, *args)
        lanes.append(self)

    def tracking_feed(self: Any, *args: Any) -> int:
        added = fed(self, *args)
        peak[0] = max(peak[0], held())
        return added

    def tracking_shrink(shrunk: Any, limit: int) -> int:
        before = held()
        change = shrink(shrunk, limit)
        if held() < before:
            merges.append(before)
        return change

    monkeypatch.setattr(report._Lane, "__init__", tracking_init)
    monkeypatch.setattr(report._Lane, "feed", tracking_feed)
    monkeypatch.setattr(report, "_shrink", tracking_shrink)
    # The first lane merges itself as it grows past its share (128 of 128); the next three
    # grow to just their share (64, 42, 32 bands): the 257th band held makes the first merge
    # of every lane. Then twelve lanes of 16 bands (the least a lane keeps) fill up to the
    # 257th band again: the second. The end merges nothing more.
    lines = lanes_growing_alone(300, 63, 41, 31, *[15] * 12)
    result = build_report(
        LogReader(["-"], stdin=io.BytesIO("\n".join(lines).encode())), band_budget=128
    )
    assert peak[0] == 2 * 128 + 1
    assert merges == [257, 257]
    assert result.bands == 237 and result.lanes_shown == 16


def test_a_lane_that_fills_its_share_exactly_is_drawn_whole() -> None:
    lines = lanes_growing_alone(15)  # 16 bands: the budget
    report = build_report(
        LogReader(["-"], stdin=io.BytesIO("\n".join(lines).encode())), band_budget=16
    )
    [lane] = payload_of(report.html)["lanes"]
    assert len(lane["bands"]) == 16 and lane["merged"] is False
    assert (report.bands, report.merged_lanes) == (16, 0)


def test_a_summary_band_adds_up_the_pongs_of_what_it_merged() -> None:
    lines = [
        transition("c", 1, "initialized", "connecting", "connect", 0.0),
        transition("c", 2, "connecting", "authenticating", "opened", 0.0),
        transition("c", 3, "authenticating", "connected", "authenticated", 0.0),
    ]
    seq, t = 4, 0.0
    for _ in range(12):
        lines += [
            transition("c", seq, "connected", "connected", "pong", t + 1, internal=True),
            transition("c", seq + 1, "connected", "connected", "pong", t + 2, internal=True),
            transition("c", seq + 2, "connected", "disconnected", "closed", t + 3),
            transition("c", seq + 3, "disconnected", "connecting", "connect", t + 4),
            transition("c", seq + 4, "connecting", "authenticating", "opened", t + 4),
            transition("c", seq + 5, "authenticating", "connected", "authenticated", t + 4),
        ]
        seq, t = seq + 6, t + 4
    report = build_report(
        LogReader(["-"], stdin=io.BytesIO("\n".join(lines).encode())), band_budget=16
    )
    [lane] = payload_of(report.html)["lanes"]
    assert lane["merged"]
    assert sum(band.get("p", 0) for band in lane["bands"]) == 24


def test_a_summary_band_of_instants_takes_the_state_of_its_first_part() -> None:
    lines = [transition("c", 1, "initialized", "connecting", "connect", 5.0)]
    for seq in range(2, 40):
        src, dst, trigger = (
            ("connecting", "disconnected", "closed")
            if seq % 2 == 0
            else ("disconnected", "connecting", "connect")
        )
        lines.append(transition("c", seq, src, dst, trigger, 5.0, source="server"))
    report = build_report(
        LogReader(["-"], stdin=io.BytesIO("\n".join(lines).encode())), band_budget=16
    )
    [lane] = payload_of(report.html)["lanes"]
    instants = [band for band in lane["bands"] if "m" in band]
    assert instants and all(sum(band["m"]) == 0 for band in instants)
    # No time in any state to choose by: each keeps the state its first part was in.
    assert {band["s"] for band in instants} <= {0, 1, 5} and 5 in {b["s"] for b in instants}


# -- a lone lane's share is the whole budget -------------------------------------------------------


def test_a_lone_lane_may_keep_the_whole_budget_not_half_of_it() -> None:
    """Rule: a lane's share of the band budget is the budget divided by the number of lanes;
    a log of one lane keeps up to the whole budget, so 40 bands under a budget of 64 are all
    drawn, none merged."""
    lines = lanes_growing_alone(39)  # 40 bands: more than half the budget, within all of it
    report = build_report(
        LogReader(["-"], stdin=io.BytesIO("\n".join(lines).encode())), band_budget=64
    )
    [lane] = payload_of(report.html)["lanes"]
    assert len(lane["bands"]) == 40 and lane["merged"] is False
    assert (report.bands, report.merged_lanes) == (40, 0)
