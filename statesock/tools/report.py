"""``statesock report``: one self-contained HTML file that shows a fleet's connections.

:func:`build_report` streams a :class:`~statesock.tools.log_reader.LogReader` once and writes a
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
says all this above the timeline. The page's HTML template, CSS and JavaScript are package
data (``statesock/tools/report_assets/``, read with :mod:`importlib.resources`). No network
imports.

Safety: every text from the log, and the title, is redacted (the reader redacts a record's free
text; labels, runs, file names and the title are redacted here), then escaped for where it goes:
HTML-escaped in the page, ``<``-free JSON in the data block, and set as text by the script.
"""

from __future__ import annotations

import functools
import html
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from ..states import Trigger
from .diagram import EdgeKey, edges
from .log_analysis import EdgeCounter, LaneSummary, Summariser
from .log_reader import STATES, LogRecord, RetryNote, shown

__all__ = ["BAND_BUDGET", "LANES_PER_PAGE", "Report", "asset", "build_report", "diagram_svg"]

BAND_BUDGET = 40_000  # bands kept across all lanes (memory and page size stay bounded)
MIN_LANE_BANDS = 16
MAX_OUTAGES_DRAWN = 64  # per lane: the longest are kept
LANES_PER_PAGE = 40
OVERVIEW_COLUMNS = 120
STATE_INDEX = {name: index for index, name in enumerate(STATES)}
_PONG = str(Trigger.PONG)  # a plain str: comparing with an enum member costs 5x more
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
            if record.trigger == _PONG:
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
        "label": summary.label,  # redacted by LaneLabels
        "client": shown(summary.client),
        "run": shown(summary.run),
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
    title = shown(title)
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
            files.append(shown(item.file))
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

ASSETS = "report_assets"
"""The directory, beside this module, of the page's package data: ``report.html`` (the page, a
:meth:`str.format` template: its only braces are the ``{name}`` fields :func:`_page` fills),
``report.css`` and ``report.js`` (inlined into it, so the page fetches nothing)."""


@functools.cache
def asset(name: str) -> str:
    """The text of one of the report's package data files (read once, from wherever the
    package is installed: a wheel, a zip file, a source tree)."""
    return resources.files(__package__).joinpath(ASSETS, name).read_text(encoding="utf-8")


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
    return asset("report.html").format(
        title=html.escape(title),
        files=html.escape(", ".join(files)) or "–",
        summary=_summary_html(fleet),
        legend=legend,
        per_page=LANES_PER_PAGE,
        budget=budget,
        diagram=diagram_svg(counter.counts),
        edges=_table(edge_rows, ["from", "to", "trigger", "count"], "edges"),
        data=data,
        css=asset("report.css"),
        js=asset("report.js"),
    )
