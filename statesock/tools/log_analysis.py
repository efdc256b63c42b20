"""Analysing transition logs: checking them against the machine's table, counting, summarising.

What :mod:`statesock.tools.log_reader` yields, one record at a time: :class:`Checker` replays
each client run (lane) against the machine's table (``statesock logs --check``),
:class:`EdgeCounter` counts how often each edge happened (``statesock diagram --log``, the
report), and :class:`Summariser` computes each run's :class:`LaneSummary` (time in each state,
disconnections by source, reconnects, outages, p50/p95 time to reconnect) and the fleet's
totals. Each takes records with ``feed``, so the CLI streams a 100 MB log through them in
linear time with memory bounded by the number of lanes. Reconnects are counted from
:attr:`LogRecord.reconnect <statesock.tools.log_reader.LogRecord.reconnect>` (the log's
``reconnect`` field, or the legacy ``detail``), never from free text here. Whatever these
classes put in text for people (lane labels, a violation's record, a warning) is redacted: a
client label or a foreign record may hold a secret. No network imports.
"""

from __future__ import annotations

import json
import math
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..states import Trigger
from .diagram import EdgeKey, edges
from .log_reader import MAX_TEXT, LogRecord, shown

__all__ = [
    "Checker",
    "EdgeCounter",
    "LaneLabels",
    "LaneSummary",
    "Summariser",
    "Violation",
    "check",
    "edge_counts",
    "percentile",
    "summarise",
]

_PONG = str(Trigger.PONG)  # a plain str: comparing with an enum member costs 5x more
_CONNECT = str(Trigger.CONNECT)


# -- checking ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    record: Mapping[str, Any]
    why: str

    def __str__(self) -> str:
        text = json.dumps(self.record, sort_keys=True, default=str)
        return f"{shown(self.file)} line {self.line}: {self.why}: {shown(text)[:MAX_TEXT]}"


class Checker:
    """Replays records against the machine's table, lane by lane.

    A record is illegal when its (src, dst, trigger) is not an edge of the table, or when it
    does not start where its lane's previous record ended. A gap in ``seq`` is a warning
    (records were lost or filtered), not a violation. Only the first ``max_warnings``
    warnings are kept; ``warning_count`` counts them all.
    """

    def __init__(self, max_warnings: int = 20) -> None:
        self.legal = frozenset(key for key, _internal in edges())
        self.last: dict[tuple[str, str], tuple[str, int, int]] = {}  # lane -> dst, seq, line
        self.violation: Violation | None = None
        self.warnings: list[str] = []
        self.warning_count = 0
        self.max_warnings = max_warnings
        self.records = 0

    def feed(self, record: LogRecord) -> Violation | None:
        self.records += 1
        if record.edge not in self.legal:
            self.violation = Violation(
                record.file,
                record.line,
                record.data,
                f"{record.src} -> {record.dst} on {record.trigger!r} "  # redacted by the reader
                "is not a transition of the machine",
            )
            return self.violation
        previous = self.last.get(record.lane)
        if previous is not None:
            dst, seq, line = previous
            if record.src != dst:
                self.violation = Violation(
                    record.file,
                    record.line,
                    record.data,
                    f"client {shown(repr(record.client))} (run {shown(record.run)}) was {dst} "
                    f"(line {line}) but this record starts from {record.src}",
                )
                return self.violation
            if record.seq != seq + 1:
                self.warning_count += 1
                if len(self.warnings) < self.max_warnings:
                    self.warnings.append(
                        f"{shown(record.file)} line {record.line}: client "
                        f"{shown(repr(record.client))} seq jumps from {seq} to {record.seq}"
                    )
        self.last[record.lane] = (record.dst, record.seq, record.line)
        return None

    @property
    def lanes(self) -> int:
        return len(self.last)


def check(records: Iterable[LogRecord]) -> tuple[Violation | None, list[str]]:
    """The first violation in ``records`` (or None) and the seq-gap warnings."""
    checker = Checker(max_warnings=1000)
    for record in records:
        if checker.feed(record) is not None:
            break
    return checker.violation, checker.warnings


class EdgeCounter:
    """How often each edge of the table happened; anything else is one ``illegal`` count."""

    def __init__(self) -> None:
        self.legal = frozenset(key for key, _internal in edges())
        self.counts: Counter[EdgeKey] = Counter()
        self.illegal = 0

    def feed(self, record: LogRecord) -> None:
        if record.edge in self.legal:
            self.counts[record.edge] += 1
        else:
            self.illegal += 1  # hostile triggers must not grow the table


def edge_counts(records: Iterable[LogRecord]) -> dict[EdgeKey, int]:
    counter = EdgeCounter()
    for record in records:
        counter.feed(record)
    return dict(counter.counts)


# -- summarising ---------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (p50 of [1, 2, 3, 4] is 2)."""
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[index]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class LaneLabels:
    """Readable lane names: a client's first run is just the client, later ones ``client#run``;
    redacted (a label may hold a secret), and each computed once."""

    def __init__(self) -> None:
        self.first: dict[str, str] = {}
        self.known: dict[tuple[str, str], str] = {}

    def __call__(self, client: str, run: str) -> str:
        label = self.known.get((client, run))
        if label is None:
            first = self.first.setdefault(client, run)
            label = shown(client if run == first else f"{client}#{run[:12]}")
            self.known[(client, run)] = label
        return label


@dataclass
class LaneSummary:
    """What one run of one client did: time in each state, disconnections, outages."""

    client: str
    run: str
    label: str = ""  # the client, plus ``#run`` unless this is the client's first run
    records: int = 0
    pongs: int = 0
    time_in_state: dict[str, float] = field(default_factory=dict)  # seconds
    disconnections: Counter[str] = field(default_factory=Counter)  # by source kind
    reconnects: int = 0
    outages: array[float] = field(default_factory=lambda: array("d"))  # ended in connected
    state: str = "initialized"
    final_source: str | None = None
    final_code: int | None = None
    first_wall: float | None = None
    last_wall: float | None = None
    # Time spent so far in the current state: internal records carry it, so a run that ends
    # with an internal record still accounts for its last state.
    _open_ms: float = 0.0
    _down_at: float | None = None
    _down_wall: float | None = None

    def feed(self, record: LogRecord) -> None:
        self.records += 1
        if record.wall is not None:
            if self.first_wall is None:
                self.first_wall = record.wall
            self.last_wall = record.wall
        spent = max(0.0, record.in_state_ms or 0.0)
        if record.internal:
            if record.trigger == _PONG:
                self.pongs += 1
            self._open_ms = spent
            self.final_source, self.final_code = record.source, record.code
            return
        self.time_in_state[record.src] = self.time_in_state.get(record.src, 0.0) + spent / 1000
        self._open_ms = 0.0
        self.state = record.dst
        self.final_source, self.final_code = record.source, record.code
        if record.dst == "disconnected":
            self.disconnections[record.source or "unknown"] += 1
        if record.reconnect and record.trigger == _CONNECT:
            self.reconnects += 1
        if record.src == "connected":
            self._down_at, self._down_wall = record.at, record.wall
        elif record.dst == "connected" and (
            self._down_at is not None or self._down_wall is not None
        ):
            if self._down_at is not None and record.at is not None:
                self.outages.append(max(0.0, record.at - self._down_at))
            elif self._down_wall is not None and record.wall is not None:
                self.outages.append(max(0.0, record.wall - self._down_wall))
            self._down_at = self._down_wall = None

    def finish(self) -> None:
        if self._open_ms:
            seconds = self._open_ms / 1000
            self.time_in_state[self.state] = self.time_in_state.get(self.state, 0.0) + seconds
            self._open_ms = 0.0

    @property
    def longest_outage(self) -> float | None:
        return max(self.outages) if self.outages else None

    @property
    def p50_reconnect(self) -> float | None:
        return percentile(self.outages, 0.50)

    @property
    def p95_reconnect(self) -> float | None:
        return percentile(self.outages, 0.95)

    def as_dict(self) -> dict[str, Any]:
        return {
            "client": shown(self.client),
            "run": shown(self.run),
            "label": self.label,
            "records": self.records,
            "pongs": self.pongs,
            "state": self.state,
            "final_source": self.final_source,
            "final_code": self.final_code,
            "time_in_state_s": {k: round(v, 3) for k, v in sorted(self.time_in_state.items())},
            "disconnections": dict(sorted(self.disconnections.items())),
            "reconnects": self.reconnects,
            "outages": len(self.outages),
            "longest_outage_s": _round(self.longest_outage),
            "p50_time_to_reconnect_s": _round(self.p50_reconnect),
            "p95_time_to_reconnect_s": _round(self.p95_reconnect),
            "first_ts": self.first_wall,
            "last_ts": self.last_wall,
        }


class Summariser:
    """Per-lane summaries and the fleet's totals, fed one record at a time."""

    def __init__(self) -> None:
        self.lanes: dict[tuple[str, str], LaneSummary] = {}
        self.labels = LaneLabels()
        self._finished = False

    def feed(self, record: LogRecord) -> LaneSummary:
        lane = self.lanes.get(record.lane)
        if lane is None:
            label = self.labels(record.client, record.run)
            lane = self.lanes[record.lane] = LaneSummary(record.client, record.run, label)
        lane.feed(record)
        return lane

    def finish(self) -> list[LaneSummary]:
        if not self._finished:
            for lane in self.lanes.values():
                lane.finish()
            self._finished = True
        return list(self.lanes.values())

    def fleet(self) -> dict[str, Any]:
        lanes = self.finish()
        time_in_state: Counter[str] = Counter()
        disconnections: Counter[str] = Counter()
        outages: array[float] = array("d")
        for lane in lanes:
            time_in_state.update(lane.time_in_state)
            disconnections.update(lane.disconnections)
            outages.extend(lane.outages)
        return {
            "clients": len({lane.client for lane in lanes}),
            "runs": len(lanes),
            "records": sum(lane.records for lane in lanes),
            "pongs": sum(lane.pongs for lane in lanes),
            "time_in_state_s": {k: round(v, 3) for k, v in sorted(time_in_state.items())},
            "disconnections": dict(sorted(disconnections.items())),
            "reconnects": sum(lane.reconnects for lane in lanes),
            "outages": len(outages),
            "longest_outage_s": _round(max(outages) if outages else None),
            "p50_time_to_reconnect_s": _round(percentile(outages, 0.50)),
            "p95_time_to_reconnect_s": _round(percentile(outages, 0.95)),
        }


def summarise(records: Iterable[LogRecord]) -> list[LaneSummary]:
    summariser = Summariser()
    for record in records:
        summariser.feed(record)
    return summariser.finish()
