"""``statesock report``: one self-contained HTML file that shows a fleet's connections.

:func:`build_report` streams a :class:`~statesock.log_reader.LogReader` once and writes a
page with no network fetches (inline CSS, JavaScript and SVG):

* the fleet over time: how many client runs were in each state (stacked, per slice of time)
  and how many disconnections began in each slice;
* a swimlane timeline, one lane per client run, states as coloured bands, disconnections
  marked with their source and close code, reconnect delays hatched, outages as bars under
  the lane; hovering anything shows its record;
* the state diagram with each edge's count, and the same counts as a table;
* the summary (time in state, disconnections by source, p50/p95 time to reconnect) for the
  whole log and per lane.

Scale (1,000 clients, 1M records): the summary is exact, computed while streaming. The
drawing keeps at most :data:`BAND_BUDGET` bands in memory and in the page: a lane that has
more bands than its share has neighbouring bands merged in pairs into *summary bands*
(coloured by the state they spent most time in; the tooltip gives the share of each state
and the number of records). Lanes are paginated in the browser (:data:`LANES_PER_PAGE` per
page), sorted by trouble (disconnections, then outage time) and filterable by name. The page
says all this above the timeline. No network imports.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .diagram import EdgeKey, edges
from .log_reader import STATES, EdgeCounter, LaneSummary, LogRecord, RetryNote, Summariser

__all__ = ["BAND_BUDGET", "LANES_PER_PAGE", "Report", "build_report", "diagram_svg"]

BAND_BUDGET = 40_000  # bands kept across all lanes (memory and page size stay bounded)
MIN_LANE_BANDS = 16
MAX_OUTAGES_DRAWN = 64  # per lane: the longest are kept
LANES_PER_PAGE = 40
OVERVIEW_COLUMNS = 120
STATE_INDEX = {name: index for index, name in enumerate(STATES)}
COLOURS = {
    "initialized": "#9ca3af",
    "connecting": "#60a5fa",
    "authenticating": "#a78bfa",
    "connected": "#22c55e",
    "disconnecting": "#f59e0b",
    "disconnected": "#ef4444",
}

# A band is a small list (mutable while it is the lane's open band):
START, END, STATE, INFO, RECORDS, PONGS, DISCONNECTS, RETRY, MIX = range(9)


@dataclass(frozen=True)
class Report:
    html: str
    lanes_total: int
    lanes_shown: int
    bands: int
    merged_lanes: int


def _when(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    try:
        moment = datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _Lane:
    """The drawable history of one client run, downsampled to a band limit."""

    def __init__(self, record: LogRecord, file_index: int) -> None:
        self.client, self.run = record.client, record.run
        self.wall_clock = record.wall is not None
        self.bands: list[list[Any]] = []
        self.outages: list[tuple[float, float]] = []
        self.last_t = 0.0
        self.anchor: float | None = None
        self.down_at: float | None = None
        self.merges = 0
        self.file_index = file_index

    def time_of(self, record: LogRecord) -> float:
        """Loop time (``at``: monotonic, what in_state_ms measures), moved onto the wall clock
        by the lane's first record; wall time alone when a record has no ``at``."""
        if record.at is not None:
            if self.anchor is None:
                self.anchor = record.wall - record.at if record.wall is not None else 0.0
            self.last_t = record.at + self.anchor
        elif record.wall is not None and self.wall_clock:
            self.last_t = record.wall
        return self.last_t

    def feed(self, record: LogRecord, file_index: int, limit: int) -> int:
        """Add a record; returns the change in the number of bands kept."""
        t = self.time_of(record)
        added = 0
        if not self.bands:
            # The first record starts where it starts: draw the state it left as a stub.
            self.bands.append([t, t, STATE_INDEX[record.src], None, 0, 0, 0, None, None])
            added += 1
        current = self.bands[-1]
        current[END] = max(current[END], t)
        if record.internal:
            current[RECORDS] += 1  # a band's records: the one that opened it, and internals
            if record.trigger == "pong":
                current[PONGS] += 1
            return added
        info = (
            record.src,
            record.trigger,
            record.source,
            record.code,
            record.detail[:200],
            record.seq,
            file_index,
            record.line,
            record.wall,  # formatted only for the bands that are kept
            record.at,
            record.in_state_ms,
        )
        disconnect = int(
            record.dst == "disconnecting"
            or (record.dst == "disconnected" and record.src != "disconnecting")
        )
        self.bands.append([t, t, STATE_INDEX[record.dst], info, 1, 0, disconnect, None, None])
        added += 1
        if record.src == "connected":
            self.down_at = t
        elif record.dst == "connected" and self.down_at is not None:
            self.outages.append((self.down_at, t))
            self.down_at = None
            if len(self.outages) > 2 * MAX_OUTAGES_DRAWN:
                longest = sorted(self.outages, key=lambda o: o[0] - o[1])[:MAX_OUTAGES_DRAWN]
                self.outages = sorted(longest)
        if len(self.bands) > limit:
            added += self.halve()
        return added

    def note(self, note: RetryNote) -> None:
        if self.bands:
            band = self.bands[-1]
            at = note.wall if self.wall_clock and note.wall is not None else band[START]
            band[RETRY] = (at, note.retry_in, note.attempt)

    def halve(self) -> int:
        """Merge neighbouring closed bands in pairs; the open (last) band stays as it is."""
        closed, last = self.bands[:-1], self.bands[-1]
        merged = [_merge(closed[i], closed[i + 1]) for i in range(0, len(closed) - 1, 2)]
        if len(closed) % 2:
            merged.append(closed[-1])
        before = len(self.bands)
        self.bands = [*merged, last]
        self.merges += 1
        return len(self.bands) - before


def _shrink(lanes: Iterable[_Lane], limit: int) -> int:
    change = 0
    for lane in lanes:
        while len(lane.bands) > limit:
            change += lane.halve()
    return change


def _mix(band: list[Any]) -> list[float]:
    if band[MIX] is not None:
        return list(band[MIX])
    mix = [0.0] * len(STATES)
    mix[band[STATE]] = band[END] - band[START]
    return mix


def _merge(a: list[Any], b: list[Any]) -> list[Any]:
    mix = [x + y for x, y in zip(_mix(a), _mix(b), strict=True)]
    top = max(range(len(mix)), key=mix.__getitem__) if any(mix) else a[STATE]
    return [
        a[START],
        b[END],
        top,
        None,
        a[RECORDS] + b[RECORDS],
        a[PONGS] + b[PONGS],
        a[DISCONNECTS] + b[DISCONNECTS],
        None,
        mix,
    ]


class _Overview:
    """The whole fleet over time: in each of OVERVIEW_COLUMNS slices, how many client runs
    were in each state (on average over the slice) and how many disconnections began."""

    def __init__(self, end: float) -> None:
        self.width = end / OVERVIEW_COLUMNS
        self.states = [[0.0] * len(STATES) for _ in range(OVERVIEW_COLUMNS)]
        self.disconnections = [0] * OVERVIEW_COLUMNS

    def add(self, lane: dict[str, Any]) -> None:
        width, last = self.width, OVERVIEW_COLUMNS - 1
        if width <= 0:
            return
        for band in lane["bands"]:
            a, b = band["a"], band["b"]
            if band.get("d"):
                self.disconnections[min(last, max(0, int(a / width)))] += band["d"]
            if b <= a:
                continue
            mix = band.get("m")
            total = sum(mix) if mix else 0.0
            shares = [(i, v / total) for i, v in enumerate(mix) if v] if total else [(band["s"], 1)]
            first, final = min(last, max(0, int(a / width))), min(last, max(0, int(b / width)))
            for column in range(first, final + 1):
                start = max(a, column * width)
                stop = min(b, (column + 1) * width)
                if stop > start:
                    for state, share in shares:
                        self.states[column][state] += (stop - start) * share / width

    def result(self) -> dict[str, Any] | None:
        if self.width <= 0:
            return None
        return {
            "width": _r(self.width),
            "states": [[round(v, 2) for v in column] for column in self.states],
            "disconnections": self.disconnections,
        }


def _trouble(summary: LaneSummary) -> tuple[int, float, str]:
    return (
        -sum(summary.disconnections.values()),
        -sum(summary.outages),
        summary.client,
    )


def _r(value: float) -> float:
    return round(value, 3)


def _lane_data(lane: _Lane, summary: LaneSummary, shift: float, files: list[str]) -> dict[str, Any]:
    bands: list[Any] = []
    for band in lane.bands:
        start, end = _r(band[START] - shift), _r(band[END] - shift)
        item: dict[str, Any] = {"a": start, "b": end, "s": band[STATE], "n": band[RECORDS]}
        if band[PONGS]:
            item["p"] = band[PONGS]
        if band[DISCONNECTS]:
            item["d"] = band[DISCONNECTS]
        info = band[INFO]
        if info is not None:
            src, trigger, source, code, detail, seq, file_index, line, wall, at, spent = info
            item["r"] = {
                "src": src,
                "trigger": trigger,
                "source": source,
                "code": code,
                "detail": detail,
                "seq": seq,
                "where": f"{files[file_index] if file_index < len(files) else '?'}:{line}",
                "ts": _when(wall),
                "at": at,
                "in_prev_ms": spent,
            }
        if band[MIX] is not None:
            item["m"] = [_r(x) for x in band[MIX]]
        if band[RETRY] is not None:
            at, delay, attempt = band[RETRY]
            item["w"] = [_r(at - shift), _r(delay), attempt]
        bands.append(item)
    return {
        "label": summary.label,
        "client": summary.client,
        "run": summary.run,
        "bands": bands,
        "outages": [[_r(a - shift), _r(b - shift)] for a, b in lane.outages],
        "merged": lane.merges > 0,
        "sum": {
            "records": summary.records,
            "pongs": summary.pongs,
            "disconnections": dict(summary.disconnections),
            "reconnects": summary.reconnects,
            "outages": len(summary.outages),
            "p50": summary.p50_reconnect,
            "p95": summary.p95_reconnect,
            "longest": summary.longest_outage,
            "state": summary.state,
            "final_source": summary.final_source,
            "final_code": summary.final_code,
            "time": {k: _r(v) for k, v in summary.time_in_state.items()},
        },
    }


def build_report(
    items: Iterable[LogRecord | RetryNote],
    *,
    title: str = "statesock report",
    band_budget: int = BAND_BUDGET,
) -> Report:
    """Stream ``items`` (usually a LogReader) once and render the report."""
    summariser = Summariser()
    counter = EdgeCounter()
    lanes: dict[tuple[str, str], _Lane] = {}
    files: list[str] = []
    file_index: dict[str, int] = {}
    total_bands = 0
    for item in items:
        if isinstance(item, RetryNote):
            found = lanes.get(item.lane)
            if found is not None:
                found.note(item)
            continue
        summariser.feed(item)
        counter.feed(item)
        index = file_index.get(item.file)
        if index is None:
            index = file_index[item.file] = len(files)
            files.append(item.file)
        lane = lanes.get(item.lane)
        if lane is None:
            lane = lanes[item.lane] = _Lane(item, index)
        limit = max(MIN_LANE_BANDS, band_budget // len(lanes))
        total_bands += lane.feed(item, index, limit)
        if total_bands > 2 * band_budget:
            # Lanes that grew while they were few hold more than today's share: shrink them.
            total_bands += _shrink(lanes.values(), limit)
    total_bands += _shrink(lanes.values(), max(MIN_LANE_BANDS, band_budget // max(1, len(lanes))))
    summaries = summariser.finish()
    fleet = summariser.fleet()

    # One time axis: wall-clock lanes as they are; loop-clock lanes (no ts / timestamp in the
    # log) start at the axis start, since loop times of different processes do not compare.
    walls = [lane for lane in lanes.values() if lane.wall_clock and lane.bands]
    origin = min((lane.bands[0][START] for lane in walls), default=None)
    if origin is None:
        origin = min((lane.bands[0][START] for lane in lanes.values() if lane.bands), default=0)
    by_key = {(s.client, s.run): s for s in summaries}
    ordered = [key for key in sorted(lanes, key=lambda k: _trouble(by_key[k])) if lanes[key].bands]
    shifts = {
        key: origin if lanes[key].wall_clock or not walls else lanes[key].bands[0][START]
        for key in ordered
    }
    end = max((_r(lanes[key].bands[-1][END] - shifts[key]) for key in ordered), default=0.0)
    overview = _Overview(end)
    # Each lane becomes JSON at once and its bands are freed: the page's data is built
    # without holding every lane's drawing twice.
    lane_json: list[str] = []
    bands = merged = 0
    for key in ordered:
        lane = lanes[key]
        data = _lane_data(lane, by_key[key], shifts[key], files)
        overview.add(data)
        lane_json.append(_json(data))
        bands += len(data["bands"])
        merged += bool(data["merged"])
        lane.bands = []
    payload = {
        "overview": overview.result(),
        "title": title,
        "origin": origin if walls else None,
        "origin_text": _when(origin) if walls else None,
        "end": end,
        "states": list(STATES),
        "colours": [COLOURS[s] for s in STATES],
        "per_page": LANES_PER_PAGE,
        "band_budget": band_budget,
        "fleet": fleet,
    }
    data_text = _json(payload)[:-1] + ',"lanes":[' + ",".join(lane_json) + "]}"
    del lane_json
    page = _page(
        title=title, data=data_text, budget=band_budget, counter=counter, fleet=fleet, files=files
    )
    return Report(
        html=page,
        lanes_total=len(lanes),
        lanes_shown=len(ordered),
        bands=bands,
        merged_lanes=merged,
    )


def _json(value: Any) -> str:
    # allow_nan=False: the page's data is strict JSON. No "<" at all, since the JSON sits in
    # a <script> element: no "</script>" or "<!--" can come from a log.
    text = json.dumps(value, allow_nan=False, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c")


# -- the state diagram as inline SVG ---------------------------------------------------------

_POS = {
    "initialized": (80, 100),
    "connecting": (310, 100),
    "authenticating": (560, 100),
    "connected": (810, 100),
    "disconnected": (310, 360),
    "disconnecting": (810, 360),
}
_NODE_W, _NODE_H = 130, 40


def diagram_svg(counts: Mapping[EdgeKey, int]) -> str:
    """The machine's edges laid out by hand (no Graphviz needed), labelled ``trigger ×n``."""
    parts = [
        '<svg class="diagram" viewBox="0 0 900 440" xmlns="http://www.w3.org/2000/svg" '
        'role="img" aria-label="state diagram with edge counts">',
        "<defs><marker id='arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' "
        "markerHeight='7' orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' "
        "fill='#374151'/></marker></defs>",
    ]
    labels: list[str] = []
    grouped: dict[tuple[str, str], list[tuple[str, int, bool]]] = {}
    for (src, dst, trigger), internal in edges():
        grouped.setdefault((src, dst), []).append(
            (trigger, counts.get((src, dst, trigger), 0), internal)
        )
    for (src, dst), items in grouped.items():
        total = sum(count for _t, count, _i in items)
        width = 1 + min(4.0, math.log10(total + 1))
        dash = "" if total else " stroke-dasharray='4 3'"
        text = " / ".join(f"{t} ×{c}" for t, c, _i in items)
        (x1, y1), (x2, y2) = _POS[src], _POS[dst]
        if src == dst:
            up = -1 if y1 < 200 else 1
            y0 = y1 + up * _NODE_H / 2
            path = (
                f"M{x1 - 20},{y0} C{x1 - 40},{y0 + up * 55} {x1 + 40},{y0 + up * 55} {x1 + 20},{y0}"
            )
            lx, ly = float(x1), y0 + up * 52
            anchor = "middle"
        else:
            # Trim the line to the boxes, then bend it so opposite edges do not overlap.
            dx, dy = x2 - x1, y2 - y1
            length = math.hypot(dx, dy)
            scale = min(
                (_NODE_W / 2 + 4) / abs(dx) if dx else math.inf,
                (_NODE_H / 2 + 4) / abs(dy) if dy else math.inf,
            )
            sx, sy = x1 + dx * scale, y1 + dy * scale
            ex, ey = x2 - dx * scale, y2 - dy * scale
            nx, ny = -dy / length, dx / length
            bend = 36 if abs(dx) < 1 else 24  # the two vertical edges need room for labels
            cx, cy = (sx + ex) / 2 + nx * bend, (sy + ey) / 2 + ny * bend
            path = f"M{sx:.1f},{sy:.1f} Q{cx:.1f},{cy:.1f} {ex:.1f},{ey:.1f}"
            lx = (sx + 2 * cx + ex) / 4 + nx * 6
            ly = (sy + 2 * cy + ey) / 4 + ny * 10 + 4
            # Beside a steep edge, the label grows away from it.
            anchor = "middle" if abs(nx) < 0.7 else ("end" if nx < 0 else "start")
        parts.append(
            f"<path class='edge' d='{path}' fill='none' stroke='#374151' "
            f"stroke-width='{width:.1f}'{dash} marker-end='url(#arrow)'>"
            f"<title>{html.escape(src)} → {html.escape(dst)}: {html.escape(text)}</title></path>"
        )
        labels.append(
            f"<text class='edge-label' x='{lx:.1f}' y='{ly:.1f}' text-anchor='{anchor}' "
            f"data-edge='{html.escape(src)}->{html.escape(dst)}'>{html.escape(text)}</text>"
        )
    for state, (x, y) in _POS.items():
        parts.append(
            f"<g class='node' data-state='{state}'><rect x='{x - _NODE_W / 2}' "
            f"y='{y - _NODE_H / 2}' width='{_NODE_W}' height='{_NODE_H}' rx='8' "
            f"fill='{COLOURS[state]}' fill-opacity='0.25' stroke='{COLOURS[state]}'/>"
            f"<text x='{x}' y='{y + 5}' text-anchor='middle'>{state}</text></g>"
        )
    parts.extend(labels)  # last, so labels sit above lines and boxes
    parts.append("</svg>")
    return "\n".join(parts)


# -- the page ----------------------------------------------------------------------------------


def _table(rows: list[list[str]], head: list[str], cls: str) -> str:
    out = [f"<table class='{cls}'><thead><tr>"]
    out += [f"<th>{html.escape(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f} s"


def _summary_html(fleet: Mapping[str, Any]) -> str:
    times = fleet["time_in_state_s"]
    total = sum(times.values()) or 1.0
    state_rows = [
        [state, f"{times.get(state, 0.0):.3f} s", f"{100 * times.get(state, 0.0) / total:.1f}%"]
        for state in STATES
    ]
    source_rows = [[k, str(v)] for k, v in sorted(fleet["disconnections"].items())] or [
        ["none", "0"]
    ]
    numbers = [
        ["clients", str(fleet["clients"])],
        ["client runs", str(fleet["runs"])],
        ["transition records", str(fleet["records"])],
        ["pongs", str(fleet["pongs"])],
        ["reconnects", str(fleet["reconnects"])],
        ["outages that ended in connected", str(fleet["outages"])],
        ["time to reconnect p50", _seconds(fleet["p50_time_to_reconnect_s"])],
        ["time to reconnect p95", _seconds(fleet["p95_time_to_reconnect_s"])],
        ["longest outage", _seconds(fleet["longest_outage_s"])],
    ]
    return (
        "<div class='cards'>"
        + _table(state_rows, ["state", "time in state", "share"], "summary states")
        + _table(source_rows, ["disconnection source", "count"], "summary sources")
        + _table(numbers, ["", ""], "summary numbers")
        + "</div>"
    )


def _page(
    *,
    title: str,
    data: str,
    budget: int,
    counter: EdgeCounter,
    fleet: Mapping[str, Any],
    files: list[str],
) -> str:
    edge_rows = [
        [src, dst, trigger + (" (internal)" if internal else ""), str(counter.counts.get(k, 0))]
        for k, internal in edges()
        for src, dst, trigger in [k]
    ]
    if counter.illegal:
        edge_rows.append(["–", "–", "not an edge of the machine", str(counter.illegal)])
    legend = "".join(
        f"<span class='key'><i style='background:{COLOURS[s]}'></i>{s}</span>" for s in STATES
    )
    return _TEMPLATE.format(
        title=html.escape(title),
        files=html.escape(", ".join(files)) or "–",
        summary=_summary_html(fleet),
        legend=legend,
        per_page=LANES_PER_PAGE,
        budget=budget,
        diagram=diagram_svg(counter.counts),
        edges=_table(edge_rows, ["from", "to", "trigger", "count"], "edges"),
        data=data,
        css=_CSS,
        js=_JS,
    )


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;
color:#111827;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.meta,.how{color:#4b5563;max-width:70em}
.cards{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
table{border-collapse:collapse}td,th{border:1px solid #e5e7eb;padding:3px 8px;text-align:left}
th{background:#f9fafb}
.controls{display:flex;gap:12px;align-items:center;margin:8px 0;flex-wrap:wrap}
.legend .key{margin-right:12px;white-space:nowrap}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
#scroller{overflow-x:auto;border:1px solid #e5e7eb}
#tip{position:fixed;pointer-events:none;background:#111827;color:#f9fafb;padding:6px 8px;
border-radius:4px;font:12px/1.35 ui-monospace,Menlo,Consolas,monospace;white-space:pre;
display:none;z-index:10;max-width:60em}
svg.lanes text,svg.overview text{font-size:11px;fill:#111827}
svg.lanes .band:hover,svg.lanes .marker:hover,svg.lanes .outage:hover{stroke:#111827;
stroke-width:1}
svg.lanes .merged{stroke:#111827;stroke-dasharray:2 2;stroke-width:.6}
svg.diagram{max-width:900px;width:100%;height:auto}
svg.diagram text{font-size:12px}svg.diagram .edge-label{font-size:10px;fill:#1f2937;
paint-order:stroke;stroke:#fff;stroke-width:3px}
"""

_JS = r"""
(function(){
"use strict";
const D = JSON.parse(document.getElementById("report-data").textContent);
const NS = "http://www.w3.org/2000/svg";
const tip = document.getElementById("tip");
const LABEL_W = 220, LANE_H = 36, BAND_H = 16, TOP = 12, AXIS_H = 22;
let page = 0, zoom = 1, filter = "";
function el(name, attrs, parent){
  const node = document.createElementNS(NS, name);
  for (const k in attrs) node.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(node);
  return node;
}
function secs(v){
  if (v == null) return "–";
  return v < 1 ? (v * 1000).toFixed(1) + " ms" : v.toFixed(3) + " s";
}
function when(t){
  if (D.origin == null) return "t=" + t.toFixed(3) + " s (loop time)";
  const d = new Date((D.origin + t) * 1000);
  return d.toISOString().replace("T", " ");
}
function lanes(){
  if (!filter) return D.lanes;
  return D.lanes.filter(l => l.label.toLowerCase().includes(filter));
}
function bandText(lane, b){
  const st = D.states[b.s];
  const lines = [lane.label + ": " + st + " for " + secs(b.b - b.a), "from " + when(b.a)];
  if (b.r){
    const r = b.r;
    lines.push("record: " + r.src + " → " + st + " on " + r.trigger + "  (seq " + r.seq + ")");
    if (r.source) lines.push("source: " + r.source + (r.code != null ? " (" + r.code + ")" : ""));
    if (r.detail) lines.push("detail: " + r.detail);
    if (r.ts) lines.push("ts: " + r.ts);
    if (r.at != null) lines.push("at: " + r.at);
    if (r.in_prev_ms != null) lines.push("in " + r.src + " before: " + secs(r.in_prev_ms / 1000));
    lines.push("line: " + r.where);
  }
  if (b.m){
    const total = b.m.reduce((x, y) => x + y, 0) || 1;
    lines.push("summary band of " + b.n + " record" + (b.n === 1 ? "" : "s") + ":");
    b.m.forEach((v, i) => {
      if (v > 0) lines.push("  " + D.states[i] + " " + (100 * v / total).toFixed(1) + "%");
    });
    if (b.d) lines.push("  disconnections: " + b.d);
  } else if (b.n > 1) lines.push("records in this band: " + b.n);
  if (b.p) lines.push("pongs: " + b.p);
  if (b.w) lines.push(retryText(b.w));
  return lines.join("\n");
}
function retryText(w){
  return "reconnect in " + secs(w[1]) + (w[2] != null ? " (attempt " + w[2] + ")" : "");
}
function hover(node, text){
  node.addEventListener("mousemove", ev => {
    tip.textContent = text();
    tip.style.display = "block";
    tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 8) + "px";
    tip.style.top = (ev.clientY + 14) + "px";
  });
  node.addEventListener("mouseleave", () => { tip.style.display = "none"; });
}
function draw(){
  const all = lanes();
  const pages = Math.max(1, Math.ceil(all.length / D.per_page));
  page = Math.min(page, pages - 1);
  const shown = all.slice(page * D.per_page, (page + 1) * D.per_page);
  document.getElementById("page-label").textContent =
    "lanes " + (all.length ? page * D.per_page + 1 : 0) + "–" + (page * D.per_page + shown.length) +
    " of " + all.length + " (page " + (page + 1) + " of " + pages + ")";
  document.getElementById("prev").disabled = page === 0;
  document.getElementById("next").disabled = page >= pages - 1;
  const box = document.getElementById("scroller");
  box.textContent = "";
  const width = Math.max(600, (box.clientWidth - LABEL_W - 20) * zoom);
  const span = Math.max(D.end, 1e-3);
  const x = t => LABEL_W + (Math.max(0, t) / span) * width;
  const svg = el("svg", {class: "lanes", width: LABEL_W + width + 10,
    height: AXIS_H + shown.length * LANE_H + 10}, box);
  for (let i = 0; i < 8; i++){  // no label at the very end: it would not fit
    const t = span * i / 8, gx = x(t);
    el("line", {x1: gx, x2: gx, y1: AXIS_H - 4, y2: AXIS_H + shown.length * LANE_H,
      stroke: "#e5e7eb"}, svg);
    const label = el("text", {x: gx + 2, y: 12}, svg);
    label.textContent = D.origin == null ? t.toFixed(1) + " s" : when(t).slice(11, 23);
  }
  shown.forEach((lane, row) => {
    const y = AXIS_H + row * LANE_H + TOP;
    const g = el("g", {class: "lane", "data-lane": lane.label}, svg);
    const name = el("text", {x: 4, y: y + BAND_H - 3, class: "lane-label"}, g);
    const dis = Object.values(lane.sum.disconnections).reduce((a, b) => a + b, 0);
    name.textContent = lane.label.slice(0, 26) + (dis ? "  ✕" + dis : "");
    hover(name, () => lane.label + "\n" + JSON.stringify(lane.sum, null, 1));
    let lastLabel = -1e9;
    const tiny = [];
    lane.bands.forEach(b => {
      const x1 = x(b.a), w = Math.max(2, x(b.b) - x1);
      const rect = el("rect", {x: x1, y: y, width: w, height: BAND_H, fill: D.colours[b.s],
        class: "band" + (b.m ? " merged" : ""), "data-state": D.states[b.s]}, g);
      hover(rect, () => bandText(lane, b));
      if (w < 4) tiny.push([x1 + w / 2, b]);  // gets a wider hit area, above its neighbours
      if (b.w){
        const wx = x(b.w[0]), ww = Math.max(1, Math.min(x(b.w[0] + b.w[1]), x(b.b)) - wx);
        const hatch = el("rect", {x: wx, y: y + BAND_H / 2, width: ww, height: BAND_H / 2,
          fill: "url(#hatch)", class: "retry"}, g);
        hover(hatch, () => lane.label + ": " + retryText(b.w));
      }
      if (b.d){
        const source = b.r ? (b.r.source || "?") : "", code = b.r ? b.r.code : null;
        const m = el("path", {d: "M" + x1 + "," + (y - 1) + " l-4,-5 h8 z", fill: "#111827",
          class: "marker", "data-source": source, "data-code": code != null ? code : ""}, g);
        const text = b.r ? source + (code != null ? " " + code : "") : "×" + b.d;
        hover(m, () => lane.label + ": disconnection " + text + "\n" + bandText(lane, b));
        if (x1 - lastLabel > 70){
          const t = el("text", {x: x1 + 3, y: y - 1, class: "marker-label"}, g);
          t.textContent = text;
          lastLabel = x1;
        }
      }
    });
    tiny.forEach(([cx, b]) => {
      const hit = el("rect", {x: cx - 3, y: y, width: 6, height: BAND_H, fill: "transparent",
        class: "hit", "data-state": D.states[b.s]}, g);
      hover(hit, () => bandText(lane, b));
    });
    lane.outages.forEach(o => {
      const ox = x(o[0]), ow = Math.max(1, x(o[1]) - ox);
      const bar = el("rect", {x: ox, y: y + BAND_H + 2, width: ow, height: 3, fill: "#7f1d1d",
        class: "outage"}, g);
      hover(bar, () => lane.label + ": outage " + secs(o[1] - o[0]) + " (left connected " +
        when(o[0]) + ", back " + when(o[1]) + ")");
    });
  });
  const defs = el("defs", {}, svg);
  const pat = el("pattern", {id: "hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse",
    patternTransform: "rotate(45)"}, defs);
  el("rect", {width: 6, height: 6, fill: "#fee2e2"}, pat);
  el("line", {x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#991b1b", "stroke-width": 2}, pat);
  const body = document.querySelector("#lane-table tbody");
  body.textContent = "";
  shown.forEach(lane => {
    const s = lane.sum, tr = document.createElement("tr");
    const dis = Object.entries(s.disconnections).map(e => e[0] + "=" + e[1]).join(", ") || "none";
    let last = s.state;
    if (s.final_source) {
      last += " (" + s.final_source + (s.final_code != null ? " " + s.final_code : "") + ")";
    }
    [lane.label, s.records, s.pongs, dis, s.reconnects, s.outages, secs(s.p50), secs(s.p95), last]
      .forEach(v => {
        const td = document.createElement("td");
        td.textContent = String(v);
        tr.appendChild(td);
      });
    body.appendChild(tr);
  });
}
function overview(){
  const O = D.overview, box = document.getElementById("overview");
  if (!O) { box.textContent = "(no time span to show)"; return; }
  const H = 120, W = Math.max(600, box.clientWidth - 20), cw = W / O.states.length;
  const most = Math.max(1, ...O.states.map(c => c.reduce((x, y) => x + y, 0)));
  const most_d = Math.max(1, ...O.disconnections);
  const svg = el("svg", {class: "overview", width: W, height: H + 40}, box);
  O.states.forEach((column, i) => {
    const g = el("g", {class: "col"}, svg);
    let y = H;
    column.forEach((v, s) => {
      if (v <= 0) return;
      const h = H * v / most;
      y -= h;
      el("rect", {x: i * cw, y: y, width: Math.max(1, cw - 0.5), height: h,
        fill: D.colours[s]}, g);
    });
    const d = O.disconnections[i];
    if (d) el("rect", {x: i * cw, y: H + 4, width: Math.max(1, cw - 0.5),
      height: 14 * d / most_d + 1, fill: "#111827", class: "disc"}, g);
    el("rect", {x: i * cw, y: 0, width: cw, height: H + 20, fill: "transparent"}, g);
    hover(g, () => {
      const t = i * O.width, lines = [when(t) + " to " + when(t + O.width)];
      column.forEach((v, s) => {
        if (v > 0) lines.push("  " + D.states[s] + ": " + v.toFixed(1) + " client runs");
      });
      lines.push("  disconnections: " + d);
      return lines.join("\n");
    });
  });
  const t0 = el("text", {x: 0, y: H + 34}, svg);
  t0.textContent = D.origin == null ? "0 s" : when(0);
  const t1 = el("text", {x: W, y: H + 34, "text-anchor": "end"}, svg);
  t1.textContent = D.origin == null ? D.end.toFixed(1) + " s" : when(D.end);
}
overview();
document.getElementById("prev").addEventListener("click", () => { page--; draw(); });
document.getElementById("next").addEventListener("click", () => { page++; draw(); });
document.getElementById("zoom").addEventListener("change", ev => {
  zoom = Number(ev.target.value); draw();
});
document.getElementById("filter").addEventListener("input", ev => {
  filter = ev.target.value.trim().toLowerCase(); page = 0; draw();
});
window.addEventListener("resize", draw);
draw();
document.body.setAttribute("data-ready", "1");
})();
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>{title}</title><style>{css}</style></head>
<body>
<h1>{title}</h1>
<p class="meta">From {files}. Generated by <code>statesock report</code>; this file fetches
nothing from the network.</p>
<h2>Summary</h2>
{summary}
<h2>The fleet over time</h2>
<p class="how">How many client runs were in each state (stacked, averaged over each slice of
time), and below it how many disconnections began in that slice. Hover a slice for numbers.</p>
<div id="overview"></div>
<h2>Timeline</h2>
<p class="how">One lane per client run, sorted by trouble (most disconnections, then most
outage time, first). Bands are states; ▼ marks a disconnection with its source and close code;
hatching is the delay before a scheduled reconnect; the dark bar under a lane is an outage
(from leaving connected to being connected again). Hover anything for its record.
At scale: {per_page} lanes per page (filter by name below), and at most {budget} bands in the
whole page: a lane with more bands than its share has neighbouring bands merged into summary
bands (dashed outline; the tooltip gives each state's share). The summary above and the table
below are exact: they count every record.</p>
<div class="controls">
<button id="prev" type="button">◀ previous</button><span id="page-label"></span>
<button id="next" type="button">next ▶</button>
<label>zoom <select id="zoom"><option value="1">1×</option><option value="2">2×</option>
<option value="4">4×</option><option value="8">8×</option><option value="16">16×</option>
<option value="64">64×</option></select></label>
<label>filter <input id="filter" type="search" placeholder="client name"></label>
</div>
<div class="legend">{legend}</div>
<div id="scroller"></div>
<h2>Lanes on this page</h2>
<table id="lane-table"><thead><tr><th>client run</th><th>records</th><th>pongs</th>
<th>disconnections</th><th>reconnects</th><th>outages</th><th>reconnect p50</th>
<th>reconnect p95</th><th>last state</th></tr></thead><tbody></tbody></table>
<h2>State diagram, with how often each edge happened</h2>
{diagram}
{edges}
<div id="tip"></div>
<script type="application/json" id="report-data">{data}</script>
<script>{js}</script>
</body></html>
"""
