"""Reading transition logs back: parse JSON lines, check them, summarise them.

An application writes statesock's structlog events as JSON lines (see the README). This
module reads them without trusting them: lines that are not JSON, JSON that is not an
object, records of other loggers, records missing a field and a truncated last line are
skipped and counted, never fatal. No network imports: ``statesock logs`` uses only this.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .diagram import EdgeKey, edges

__all__ = [
    "ClientSummary",
    "LogRecord",
    "ReadResult",
    "Violation",
    "check",
    "edge_counts",
    "read_records",
    "summarise",
]

REQUIRED = ("client", "seq", "src", "dst", "trigger")
STATE_NAMES = frozenset(
    {"initialized", "connecting", "authenticating", "connected", "disconnecting", "disconnected"}
)


@dataclass(frozen=True)
class LogRecord:
    """One ``transition`` record (or a ``reconnect_scheduled`` annotation) and its line."""

    line: int
    event: str
    client: str
    data: Mapping[str, Any]

    @property
    def seq(self) -> int:
        return int(self.data["seq"])

    @property
    def src(self) -> str:
        return str(self.data["src"])

    @property
    def dst(self) -> str:
        return str(self.data["dst"])

    @property
    def trigger(self) -> str:
        return str(self.data["trigger"])

    @property
    def at(self) -> float | None:
        value = self.data.get("at")
        return float(value) if isinstance(value, int | float) else None

    @property
    def internal(self) -> bool:
        return bool(self.data.get("internal")) or self.src == self.dst


@dataclass
class ReadResult:
    records: list[LogRecord] = field(default_factory=list)
    annotations: list[LogRecord] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    lines: int = 0


def _open(source: str | Path | TextIO) -> tuple[TextIO, bool]:
    if isinstance(source, str | Path):
        if str(source) == "-":
            return sys.stdin, False
        return open(source, encoding="utf-8", errors="replace"), True
    return source, False


def read_records(source: str | Path | TextIO, client: str | None = None) -> ReadResult:
    """Parse a JSON-lines file (or ``-`` for standard input), skipping what is unusable."""
    stream, owned = _open(source)
    result = ReadResult()
    try:
        for number, raw in enumerate(stream, start=1):
            result.lines = number
            text = raw.strip()
            if not text:
                continue
            try:
                data = json.loads(text)
            except ValueError:
                reason = "truncated last line" if not raw.endswith("\n") else "not JSON"
                result.skipped[reason] += 1
                continue
            if not isinstance(data, dict):
                result.skipped["not a JSON object"] += 1
                continue
            event = data.get("event")
            if event == "reconnect_scheduled" and isinstance(data.get("client"), str):
                if client is None or data["client"] == client:
                    result.annotations.append(LogRecord(number, event, data["client"], data))
                continue
            if event != "transition":
                result.skipped["other events"] += 1
                continue
            if not all(name in data for name in REQUIRED) or not _well_typed(data):
                result.skipped["missing or malformed fields"] += 1
                continue
            if client is not None and data["client"] != client:
                continue
            result.records.append(LogRecord(number, event, str(data["client"]), data))
    finally:
        if owned:
            stream.close()
    return result


def _well_typed(data: Mapping[str, Any]) -> bool:
    return (
        isinstance(data.get("seq"), int)
        and isinstance(data.get("client"), str)
        and data.get("src") in STATE_NAMES
        and data.get("dst") in STATE_NAMES
        and isinstance(data.get("trigger"), str)
    )


@dataclass(frozen=True)
class Violation:
    line: int
    record: Mapping[str, Any]
    why: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.why}: {json.dumps(self.record, sort_keys=True)}"


def check(records: Iterable[LogRecord]) -> tuple[Violation | None, list[str]]:
    """Replay records against the machine's table; the first violation, and warnings.

    A record is illegal when its (src, dst, trigger) is not an edge of the table, or when
    it does not start where the client's previous record ended. A gap in ``seq`` is a
    warning (records were lost or filtered), not a violation.
    """
    legal = {key for key, _internal in edges()}
    last: dict[str, LogRecord] = {}
    warnings: list[str] = []
    for record in records:
        key = (record.src, record.dst, record.trigger)
        if key not in legal:
            return Violation(
                record.line,
                record.data,
                f"{key[0]} -> {key[1]} on {key[2]!r} is not a transition of the machine",
            ), warnings
        previous = last.get(record.client)
        if previous is not None:
            if record.src != previous.dst:
                return Violation(
                    record.line,
                    record.data,
                    f"client {record.client!r} was {previous.dst} (line {previous.line}) "
                    f"but this record starts from {record.src}",
                ), warnings
            if record.seq != previous.seq + 1:
                warnings.append(
                    f"line {record.line}: client {record.client!r} seq jumps from "
                    f"{previous.seq} to {record.seq}"
                )
        last[record.client] = record
    return None, warnings


def edge_counts(records: Iterable[LogRecord]) -> dict[EdgeKey, int]:
    counts: Counter[EdgeKey] = Counter()
    for record in records:
        counts[(record.src, record.dst, record.trigger)] += 1
    return dict(counts)


@dataclass
class ClientSummary:
    client: str
    records: int = 0
    time_in_state: dict[str, float] = field(default_factory=dict)  # seconds
    disconnections: dict[str, int] = field(default_factory=dict)  # by source kind
    reconnects: int = 0
    outages: list[float] = field(default_factory=list)  # seconds, ended in connected
    longest_outage: float | None = None
    p50_reconnect: float | None = None
    p95_reconnect: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "records": self.records,
            "time_in_state_s": {k: round(v, 3) for k, v in sorted(self.time_in_state.items())},
            "disconnections": dict(sorted(self.disconnections.items())),
            "reconnects": self.reconnects,
            "outages": len(self.outages),
            "longest_outage_s": _round(self.longest_outage),
            "p50_time_to_reconnect_s": _round(self.p50_reconnect),
            "p95_time_to_reconnect_s": _round(self.p95_reconnect),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[index]


def summarise(records: Iterable[LogRecord]) -> list[ClientSummary]:
    by_client: dict[str, list[LogRecord]] = defaultdict(list)
    for record in records:
        by_client[record.client].append(record)
    summaries = []
    for client, items in by_client.items():
        summary = ClientSummary(client, records=len(items))
        in_state: defaultdict[str, float] = defaultdict(float)
        went_down_at: float | None = None
        for record in items:
            if record.internal:
                continue
            spent = record.data.get("in_state_ms")
            if isinstance(spent, int | float):
                in_state[record.src] += spent / 1000
            if record.dst == "disconnected":
                kind = str(record.data.get("source") or "unknown")
                summary.disconnections[kind] = summary.disconnections.get(kind, 0) + 1
            if record.trigger == "connect" and record.data.get("detail") == "reconnect":
                summary.reconnects += 1
            if record.src == "connected" and record.at is not None:
                went_down_at = record.at
            elif record.dst == "connected" and went_down_at is not None and record.at is not None:
                summary.outages.append(record.at - went_down_at)
                went_down_at = None
        summary.time_in_state = dict(in_state)
        summary.longest_outage = max(summary.outages) if summary.outages else None
        summary.p50_reconnect = _percentile(summary.outages, 0.50)
        summary.p95_reconnect = _percentile(summary.outages, 0.95)
        summaries.append(summary)
    return summaries
