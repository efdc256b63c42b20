"""Reading transition logs back, streaming: parse, group by client and run, check, summarise.

An application writes statesock's structlog events as JSON lines (see the README); fleets
write many files, rotate and gzip them, or pipe them from ``kubectl logs``. :class:`LogReader`
reads any mix of paths, globs, gzip files and standard input (``-``) one line at a time and
yields :class:`LogRecord` (a ``transition``) and :class:`RetryNote` (a
``reconnect_scheduled``). Nothing is trusted: a line that is not JSON, too long, nested too
deeply, not an object, from another logger, missing a field or carrying an absurd number is
skipped and counted by reason, never fatal. Memory is bounded by the number of client runs,
never by the number of lines.

Runs: every record belongs to one *lane*, ``(client, run)``. The writer's ``run`` field names
the run when present; otherwise a client's ``seq`` going backwards, or a record leaving
``initialized`` after others, starts a new run (a restarted process appending to the same
file), so a restart is never read as an illegal edge or as one long outage.

:class:`Checker`, :class:`Summariser` and :class:`EdgeCounter` each take records one at a time
(``feed``), so the CLI streams a 100 MB log through them in linear time. No network imports.
"""

from __future__ import annotations

import glob
import io
import json
import json.scanner
import math
import os
import sys
import zlib
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

from .diagram import EdgeKey, edges

__all__ = [
    "STATES",
    "Checker",
    "EdgeCounter",
    "LaneLabels",
    "LaneSummary",
    "LogReader",
    "LogRecord",
    "ReadResult",
    "RetryNote",
    "Summariser",
    "Violation",
    "check",
    "edge_counts",
    "percentile",
    "read_records",
    "summarise",
]

STATES = (
    "initialized",
    "connecting",
    "authenticating",
    "connected",
    "disconnecting",
    "disconnected",
)
_STATE_SET = frozenset(STATES)
# The C scanner itself: json.loads adds two regex matches and a wrapper per line.
_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
MAX_LINE = 1 << 20  # a longer line is skipped: one hostile line must not take the memory
# Past this, a number is corruption, not a time: 1e12 s is 31,000 years (and floats of
# huge ints would turn every sum into inf).
_MAX_NUMBER = 1e12
_MAX_TEXT = 500  # detail and source are cut here: records are kept for tooltips


@dataclass(slots=True)  # not frozen: a frozen __init__ costs a third of the parse time
class LogRecord:
    """One ``transition`` record, validated, with where it came from and its lane."""

    file: str
    line: int
    client: str
    run: str
    seq: int
    src: str
    dst: str
    trigger: str
    source: str | None
    code: int | None
    detail: str
    in_state_ms: float | None
    at: float | None  # the writer's loop time, seconds: comparable within one run only
    wall: float | None  # epoch seconds from ``ts`` or ``timestamp``, when the writer had one
    internal: bool
    data: Mapping[str, Any] = field(compare=False, repr=False)

    @property
    def lane(self) -> tuple[str, str]:
        return (self.client, self.run)

    @property
    def edge(self) -> EdgeKey:
        return (self.src, self.dst, self.trigger)


@dataclass(slots=True)
class RetryNote:
    """A ``reconnect_scheduled`` event: the recovery handler will reconnect in ``retry_in``."""

    file: str
    line: int
    client: str
    run: str
    retry_in: float
    attempt: int | None
    source: str | None
    code: int | None
    wall: float | None

    @property
    def lane(self) -> tuple[str, str]:
        return (self.client, self.run)


Item = LogRecord | RetryNote


def _number(value: Any) -> float | None:
    """A finite, plausible number, or None (bool, NaN, inf, huge ints, strings)."""
    kind = type(value)  # exact types: bool is not a number here, and this runs per field
    if kind is float:
        return value if -_MAX_NUMBER <= value <= _MAX_NUMBER else None  # NaN compares False
    if kind is int:
        return float(value) if -_MAX_NUMBER <= value <= _MAX_NUMBER else None
    return None


def _integer(value: Any) -> int | None:
    if type(value) is not int:
        return None
    return value if -(2**53) <= value <= 2**53 else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _wall(data: Mapping[str, Any]) -> float | None:
    """Epoch seconds from ``ts`` or ``timestamp``, None when absent; ValueError when unusable."""
    stamp = data.get("ts")
    if stamp is None:
        stamp = data.get("timestamp")
    if stamp is None:
        return None
    if isinstance(stamp, str):
        parsed = datetime.fromisoformat(stamp)
        if parsed.tzinfo is None:
            raise ValueError("a naive local time is not comparable across machines")
        stamp = parsed.timestamp()
    number = _number(stamp)
    if number is None:
        raise ValueError(f"not a time: {stamp!r}")
    return number


_BLOCK = 1 << 20


def _blocks(stream: IO[bytes]) -> Iterator[bytes]:
    while block := stream.read(_BLOCK):
        yield block


def _gunzip(stream: IO[bytes]) -> Iterator[bytes]:
    """Decompress gzip (several members too) in bounded blocks; EOFError if cut short.

    Unlike GzipFile, every byte decompressed before the damage is yielded first.
    """
    decompressor = zlib.decompressobj(wbits=31)
    while chunk := stream.read(_BLOCK // 4):
        while chunk:
            out = decompressor.decompress(chunk, _BLOCK)  # bounded: no zip bomb in memory
            if out:
                yield out
            chunk = decompressor.unconsumed_tail
            if decompressor.eof:
                chunk = decompressor.unused_data + chunk
                if chunk.strip(b"\x00"):
                    decompressor = zlib.decompressobj(wbits=31)  # the next gzip member
                else:
                    chunk = b""
    if not decompressor.eof:
        raise EOFError("the gzip stream ends before its end marker")


class _Runs:
    """Names each client's current run: the writer's ``run``, split further at restarts.

    A restart (``seq`` going back, or leaving ``initialized`` after other records) starts a
    new run even under the same ``run`` id: two clients with one label in one process, or a
    writer without run ids (``1``, ``2``, ... then).
    """

    def __init__(self) -> None:
        self.last_seq: dict[tuple[str, str], int] = {}
        self.restarts: dict[tuple[str, str], int] = {}
        self.current: dict[str, str] = {}

    def assign(self, client: str, seq: int, src: str, given: Any) -> str:
        if type(given) is str:
            base = given if len(given) <= 64 else given[:64]
        else:
            base = str(given) if type(given) is int else ""
        key = (client, base)
        previous = self.last_seq.get(key)
        number = self.restarts.get(key, 1)
        if previous is not None and (seq <= previous or src == "initialized"):
            number += 1
        self.restarts[key] = number
        self.last_seq[key] = seq
        run = str(number) if not base else base if number == 1 else f"{base}.{number}"
        self.current[client] = run
        return run


class LogReader:
    """Stream records from paths, globs, ``.gz`` files and ``-`` (standard input).

    Iterate it once. Afterwards (or during) ``lines``, ``records``, ``skipped`` (reason ->
    count), ``files`` and ``errors`` (inputs that could not be read) describe what was read.
    """

    def __init__(
        self,
        inputs: Sequence[str | Path] | str | Path,
        client: str | None = None,
        *,
        stdin: IO[bytes] | None = None,
    ) -> None:
        self.inputs = [inputs] if isinstance(inputs, str | Path) else list(inputs)
        self.client = client
        self.stdin = stdin
        self.lines = 0
        self.records = 0
        self.notes = 0
        self.skipped: Counter[str] = Counter()
        self.files: list[str] = []
        self.errors: list[str] = []
        self._runs = _Runs()

    @property
    def valid(self) -> int:
        return self.records + self.notes

    def skipped_text(self) -> str:
        if not self.skipped:
            return "skipped: none"
        parts = ", ".join(f"{count} {why}" for why, count in sorted(self.skipped.items()))
        return f"skipped: {sum(self.skipped.values())} ({parts})"

    def _expand(self) -> Iterator[str]:
        for item in self.inputs:
            name = str(item)
            if name == "-" or os.path.exists(name) or not glob.has_magic(name):
                yield name
                continue
            matches = sorted(glob.glob(name))
            if not matches:
                self.errors.append(f"{name}: no file matches")
            yield from matches

    def __iter__(self) -> Iterator[Item]:
        for name in self._expand():
            if name == "-":
                stream: IO[bytes] = self.stdin if self.stdin is not None else sys.stdin.buffer
                yield from self._read_stream(name, stream)
                continue
            try:
                handle = open(name, "rb")  # noqa: SIM115 (closed below; generators need it)
            except OSError as exc:
                self.errors.append(f"{name}: {exc.strerror or exc}")
                continue
            try:
                yield from self._read_stream(name, handle)
            finally:
                handle.close()

    def _read_stream(self, name: str, raw: IO[bytes]) -> Iterator[Item]:
        self.files.append(name)
        # peek() needs a buffered reader; files and sys.stdin.buffer already are.
        buffered: Any = raw if hasattr(raw, "peek") else io.BufferedReader(cast(Any, raw))
        try:
            gzipped = buffered.peek(2)[:2] == b"\x1f\x8b"
            blocks = _gunzip(buffered) if gzipped else _blocks(buffered)
            yield from self._read_lines(name, blocks)
        except IsADirectoryError:
            self.errors.append(f"{name}: is a directory")
        except (EOFError, zlib.error) as exc:
            # A gzip file cut short or corrupt: what was read before stays read.
            self.skipped[f"truncated or corrupt gzip ({exc})"] += 1
        except OSError as exc:
            self.errors.append(f"{name}: {exc.strerror or exc}")

    def _read_lines(self, name: str, blocks: Iterator[bytes]) -> Iterator[Item]:
        # Split blocks into lines (faster than readline()); a line longer than MAX_LINE is
        # dropped as it streams by instead of being held in memory.
        number = 0  # this file's line number
        pending = b""
        too_long = False
        for block in blocks:
            lines = (pending + block).split(b"\n") if pending else block.split(b"\n")
            pending = lines.pop()
            for raw in lines:
                if too_long:
                    too_long = False  # the end of an over-long line, already counted
                    continue
                number += 1
                self.lines += 1
                if len(raw) > MAX_LINE:
                    self.skipped["line longer than 1 MiB"] += 1
                    continue
                item = self._parse(name, number, raw, True)
                if item is not None:
                    yield item
            if len(pending) > MAX_LINE:
                if not too_long:
                    number += 1
                    self.lines += 1
                    self.skipped["line longer than 1 MiB"] += 1
                too_long, pending = True, b""
        if pending and not too_long:
            self.lines += 1
            item = self._parse(name, number + 1, pending, False)
            if item is not None:
                yield item

    def _parse(self, name: str, number: int, raw: bytes, complete: bool) -> Item | None:
        try:
            text = raw.decode("utf-8").strip()
            if not text:
                return None
            data, end = _scan(text, 0)
            if end != len(text):
                raise ValueError("text after the JSON value")
        except RecursionError:
            self.skipped["nested too deeply"] += 1
            return None
        except (ValueError, StopIteration):  # ValueError: also bad UTF-8, huge int literals
            self.skipped["not JSON" if complete else "truncated last line"] += 1
            return None
        if not isinstance(data, dict):
            self.skipped["not a JSON object"] += 1
            return None
        event = data.get("event")
        if event == "transition":
            return self._transition(name, number, data)
        if event == "reconnect_scheduled":
            return self._note(name, number, data)
        self.skipped["other events"] += 1
        return None

    def _transition(self, name: str, number: int, data: dict[str, Any]) -> LogRecord | None:
        get = data.get
        client, seq = get("client"), _integer(get("seq"))
        src, dst, trigger = get("src"), get("dst"), get("trigger")
        if (
            type(client) is not str
            or seq is None
            or src not in _STATE_SET
            or dst not in _STATE_SET
            or type(trigger) is not str
        ):
            self.skipped["missing or malformed fields"] += 1
            return None
        raw_at, raw_spent = get("at"), get("in_state_ms")
        at, spent = _number(raw_at), _number(raw_spent)
        if (raw_at is not None and at is None) or (raw_spent is not None and spent is None):
            bad = "at" if raw_at is not None and at is None else "in_state_ms"
            self.skipped[f"bad number in {bad}"] += 1
            return None
        ts = get("ts")
        wall = ts if type(ts) is float and 0 <= ts <= _MAX_NUMBER else None  # the common case
        if wall is None:
            try:
                wall = _wall(data)
            except ValueError:
                self.skipped["bad ts or timestamp"] += 1
                return None
        if self.client is not None and client != self.client:
            return None
        assert isinstance(src, str) and isinstance(dst, str) and isinstance(trigger, str)
        run = self._runs.assign(client, seq, src, get("run"))
        self.records += 1
        source, detail, code = get("source"), get("detail"), get("code")
        return LogRecord(
            name,
            number,
            client,
            run,
            seq,
            src,
            dst,
            trigger[:_MAX_TEXT],
            source if source is None or type(source) is str else _text(source),
            code if code is None or type(code) is int else None,
            detail[:_MAX_TEXT] if type(detail) is str else (_text(detail) or ""),
            spent,
            at,
            wall,
            bool(get("internal")) or src == dst,
            data,
        )

    def _note(self, name: str, number: int, data: dict[str, Any]) -> RetryNote | None:
        client, retry_in = data.get("client"), _number(data.get("retry_in"))
        try:
            wall = _wall(data)
        except ValueError:
            wall = retry_in = None  # an unusable time makes the whole note unusable
        if not isinstance(client, str) or retry_in is None or retry_in < 0:
            self.skipped["malformed reconnect_scheduled"] += 1
            return None
        if self.client is not None and client != self.client:
            return None
        self.notes += 1
        return RetryNote(
            file=name,
            line=number,
            client=client,
            run=self._runs.current.get(client, "1"),
            retry_in=retry_in,
            attempt=_integer(data.get("attempt")),
            source=_text(data.get("source")),
            code=_integer(data.get("code")),
            wall=wall,
        )


# -- checking ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    record: Mapping[str, Any]
    why: str

    def __str__(self) -> str:
        text = json.dumps(self.record, sort_keys=True, default=str)
        return f"{self.file} line {self.line}: {self.why}: {text[:_MAX_TEXT]}"


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
                f"{record.src} -> {record.dst} on {record.trigger!r} "
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
                    f"client {record.client!r} (run {record.run}) was {dst} (line {line}) "
                    f"but this record starts from {record.src}",
                )
                return self.violation
            if record.seq != seq + 1:
                self.warning_count += 1
                if len(self.warnings) < self.max_warnings:
                    self.warnings.append(
                        f"{record.file} line {record.line}: client {record.client!r} "
                        f"seq jumps from {seq} to {record.seq}"
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
    """Readable lane names: a client's first run is just the client, later ones ``client#run``."""

    def __init__(self) -> None:
        self.first: dict[str, str] = {}

    def __call__(self, client: str, run: str) -> str:
        first = self.first.setdefault(client, run)
        return client if run == first else f"{client}#{run[:12]}"


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
            if record.trigger == "pong":
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
        if record.trigger == "connect" and record.detail == "reconnect":
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
            "client": self.client,
            "run": self.run,
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


# -- reading everything at once (small logs, tests, the demo) -------------------------------


@dataclass
class ReadResult:
    records: list[LogRecord] = field(default_factory=list)
    annotations: list[RetryNote] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    lines: int = 0
    errors: list[str] = field(default_factory=list)


def read_records(
    source: str | Path | Sequence[str | Path], client: str | None = None
) -> ReadResult:
    """Read a whole (small) log into memory; the CLI streams instead."""
    reader = LogReader(source if isinstance(source, str | Path) else list(source), client)
    result = ReadResult()
    for item in reader:
        if isinstance(item, LogRecord):
            result.records.append(item)
        else:
            result.annotations.append(item)
    result.skipped, result.lines, result.errors = reader.skipped, reader.lines, reader.errors
    return result
