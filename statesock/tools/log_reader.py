"""Reading transition logs back, streaming: parse, validate, name runs. Analysis is elsewhere.

An application writes statesock's structlog events as JSON lines (see the README); fleets
write many files, rotate and gzip them, or pipe them from ``kubectl logs``. :class:`LogReader`
reads any mix of paths, globs, gzip files and standard input (``-``) one line at a time and
yields :class:`LogRecord` (a ``transition``) and :class:`RetryNote` (a
``reconnect_scheduled``); the event names come from :class:`statesock.log_schema.LogEvent`.
Nothing is trusted: a line that is not JSON, too long, nested too deeply, not an object, from
another logger, missing a field or carrying an absurd number is skipped and counted by reason,
never fatal. Memory is bounded by the number of client runs, never by the number of lines.

Runs: every record belongs to one *lane*, ``(client, run)``. The writer's ``run`` field names
the run when present; otherwise a client's ``seq`` going backwards, or a record leaving
``initialized`` after others, starts a new run (a restarted process appending to the same
file), so a restart is never read as an illegal edge or as one long outage.

Secrets: a log written by an older statesock, or by another writer, may hold secrets in its
free text. The text fields a tool can show (``detail``, ``source``, an unknown ``trigger``) are
redacted here (:func:`statesock.redaction.redact_text`), so every display gets them masked; the
client label stays as written (it tells lanes apart) and is redacted where it is shown
(:func:`shown`). ``LogRecord.data`` is the raw line: whoever prints it redacts it.

Reconnects: :attr:`LogRecord.reconnect` is the record's ``reconnect`` field (True for a connect
that recovery fired); logs written before that field existed say so only in ``detail``
(:data:`statesock.log_schema.LEGACY_RECONNECT_DETAIL`), which is read when the field is absent.

What is done with the records (checking them against the machine's table, counting edges,
summarising runs and the fleet) is :mod:`statesock.tools.log_analysis`. No network imports.
"""

from __future__ import annotations

import glob
import io
import json
import json.scanner
import os
import sys
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

from ..log_schema import LEGACY_RECONNECT_DETAIL, LogEvent
from ..redaction import redact_text
from ..states import Trigger
from .diagram import EdgeKey

__all__ = [
    "MAX_LINE",
    "MAX_TEXT",
    "STATES",
    "Item",
    "LogReader",
    "LogRecord",
    "ReadResult",
    "RetryNote",
    "read_records",
    "shown",
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
MAX_TEXT = 500  # detail and source are cut here: records are kept for tooltips
# The names as plain strings: comparing a line's str with an enum member costs 5x more.
_TRANSITION = str(LogEvent.TRANSITION)
_RETRY_NOTE = str(LogEvent.RECONNECT_SCHEDULED)
_CONNECT = str(Trigger.CONNECT)
_TRIGGERS = frozenset(str(trigger) for trigger in Trigger)


# Logs repeat their short texts ("server", "user connect", a close reason) endlessly: each is
# redacted once. Bounded: cleared when full.
_SHOWN: dict[str, str] = {}
_SHOWN_SIZE = 4096


def shown(text: str) -> str:
    """Free text from a log as a tool may show it: secrets masked, cut to MAX_TEXT."""
    if len(text) > 64:
        return redact_text(text[: 2 * MAX_TEXT], None)[:MAX_TEXT]
    found = _SHOWN.get(text)
    if found is None:
        if len(_SHOWN) >= _SHOWN_SIZE:
            _SHOWN.clear()
        found = _SHOWN[text] = redact_text(text, None)
    return found


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
    reconnect: bool  # a connect fired by recovery (the ``reconnect`` field, or a legacy detail)
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
        return shown(value)
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
        if event == _TRANSITION:
            return self._transition(name, number, data)
        if event == _RETRY_NOTE:
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
        source, raw_detail, code = get("source"), get("detail"), get("code")
        detail = shown(raw_detail) if type(raw_detail) is str else (_text(raw_detail) or "")
        flag = get("reconnect")
        if type(flag) is bool:
            reconnect = flag
        else:  # written before the field existed: only a connect's detail said so
            reconnect = trigger == _CONNECT and detail == LEGACY_RECONNECT_DETAIL
        return LogRecord(
            name,
            number,
            client,
            run,
            seq,
            src,
            dst,
            trigger if trigger in _TRIGGERS else shown(trigger),
            _text(source),
            code if code is None or type(code) is int else None,
            detail,
            spent,
            at,
            wall,
            bool(get("internal")) or src == dst,
            reconnect,
            data,
        )

    def _note(self, name: str, number: int, data: dict[str, Any]) -> RetryNote | None:
        client, retry_in = data.get("client"), _number(data.get("retry_in"))
        try:
            wall = _wall(data)
        except ValueError:
            wall = retry_in = None  # an unusable time makes the whole note unusable
        if not isinstance(client, str) or retry_in is None or retry_in < 0:
            self.skipped[f"malformed {_RETRY_NOTE}"] += 1
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
