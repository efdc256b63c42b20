"""Reading (statesock.tools.log_reader), checking and summarising (statesock.tools.log_analysis)
transition logs, hostile input too."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statesock.log_schema import LEGACY_RECONNECT_DETAIL, LogEvent
from statesock.tools.log_analysis import (
    Checker,
    EdgeCounter,
    LaneLabels,
    Summariser,
    check,
    edge_counts,
    summarise,
)
from statesock.tools.log_reader import LogReader, LogRecord, RetryNote, read_records
from tests.support import session_lines, write


def record(**fields: Any) -> str:
    base: dict[str, Any] = {
        "event": LogEvent.TRANSITION,
        "client": "x",
        "seq": 1,
        "src": "initialized",
        "dst": "connecting",
        "trigger": "connect",
        "at": 1.0,
        "in_state_ms": 0.0,
    }
    base.update(fields)
    return json.dumps(base)


def test_a_good_log_reads_checks_and_summarises(tmp_path: Path) -> None:
    result = read_records(write(tmp_path, session_lines()))
    assert len(result.records) == 14
    assert not result.skipped
    violation, warnings = check(result.records)
    assert violation is None and warnings == []
    [summary] = summarise(result.records)
    assert summary.client == "c1"
    assert summary.disconnections == {"no_pong": 1, "server": 1, "user": 1}
    assert summary.reconnects == 2
    assert list(summary.outages) == [1.5, 4.0]
    assert summary.longest_outage == 4.0
    assert summary.p50_reconnect == 1.5
    assert summary.p95_reconnect == 4.0
    assert round(summary.time_in_state["connected"], 3) == round(59.8 + 38.5 + 96.0, 3)


def _reconnects(tmp_path: Path, entries: list[dict[str, Any]]) -> tuple[list[bool], int]:
    """Each connect record's ``reconnect`` as read, and the summary's reconnect count."""
    records = read_records(write(tmp_path, [json.dumps(e) for e in entries])).records
    [summary] = summarise(records)
    return [r.reconnect for r in records if r.trigger == "connect"], summary.reconnects


def test_reconnects_are_counted_from_the_reconnect_field_not_the_detail(tmp_path: Path) -> None:
    entries = [json.loads(line) for line in session_lines()]
    connects = [e for e in entries if e["trigger"] == "connect"]
    assert [e["reconnect"] for e in connects] == [False, True, True]  # what the writer says
    assert all(isinstance(e["reconnect"], bool) for e in entries)
    # The detail is text for people: rewording it changes nothing.
    for entry in connects:
        entry["detail"] = "whatever" if entry["reconnect"] else LEGACY_RECONNECT_DETAIL
    assert _reconnects(tmp_path, entries) == ([False, True, True], 2)


def test_old_logs_without_the_reconnect_field_count_reconnects_from_the_detail(
    tmp_path: Path,
) -> None:
    entries = [json.loads(line) for line in session_lines()]
    for entry in entries:
        del entry["reconnect"]  # written before the field existed
    connects = [e for e in entries if e["trigger"] == "connect"]
    assert [e["detail"] for e in connects][1:] == [LEGACY_RECONNECT_DETAIL] * 2
    assert _reconnects(tmp_path, entries) == ([False, True, True], 2)
    # Only a connect's detail counts, and a malformed field falls back to it.
    entries[4]["detail"] = LEGACY_RECONNECT_DETAIL  # connected -> ... : not a connect
    connects[1]["reconnect"] = "yes"
    assert _reconnects(tmp_path, entries) == ([False, True, True], 2)
    records = read_records(write(tmp_path, [json.dumps(e) for e in entries])).records
    assert not records[4].reconnect


def test_bad_input_is_skipped_and_counted(tmp_path: Path) -> None:
    lines = session_lines()
    noisy = [
        "not json at all",
        json.dumps({"event": "request", "path": "/"}),
        json.dumps([1, 2, 3]),
        json.dumps({"event": "transition", "client": "c1"}),  # fields missing
        *lines,
    ]
    path = tmp_path / "noisy.jsonl"
    path.write_text("\n".join(noisy) + '\n{"event": "transition", "cli', encoding="utf-8")
    result = read_records(path)
    assert len(result.records) == 14
    assert result.skipped == {
        "not JSON": 1,
        "other events": 1,
        "not a JSON object": 1,
        "missing or malformed fields": 1,
        "truncated last line": 1,
    }


def test_hostile_lines_are_counted_skips_never_exceptions(tmp_path: Path) -> None:
    hostile = [
        "[" * 200_000 + "]" * 200_000,  # deeply nested: RecursionError in json
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        record(at=10**400),  # a huge int: float() would overflow
        record(in_state_ms=-(10**30)),
        record(at="12.5"),
        '{"event": "transition", "client": "x", "seq": 1, "src": "initialized", '
        '"dst": "connecting", "trigger": "connect", "at": NaN}',
        record(ts=float("inf")).replace("Infinity", "Infinity"),
        record(timestamp="2026-11-30T22:00:00"),  # naive: not comparable across machines
        record(timestamp="yesterday"),
        record(seq=True),
        record(seq=2**80),
        record(src="nowhere"),
        record(client=["x"]),
        json.dumps({"event": "reconnect_scheduled", "client": "x", "retry_in": "soon"}),
        json.dumps({"event": "reconnect_scheduled", "client": "x", "retry_in": None}),
        json.dumps({"event": "reconnect_scheduled", "client": "x", "retry_in": -1}),
        '{"event": "reconnect_scheduled", "client": "x", "retry_in": Infinity}',
        json.dumps({"event": "reconnect_scheduled", "client": "x", "retry_in": 10**500}),
        "1" * 5000,  # an int literal beyond Python's digit limit
        "\x00\x01\x02 binary",
    ]
    path = tmp_path / "hostile.jsonl"
    with path.open("wb") as out:
        out.write("\n".join(hostile).encode() + b"\n")
        out.write(b'{"event": "transition", "client": "\xff\xfe"}\n')  # not UTF-8
        out.write(b"x" * (2 << 20) + b"\n")  # a 2 MiB line
        out.write(record(seq=1).encode() + b"\n")
    reader = LogReader([path])
    items = list(reader)
    assert [type(i) for i in items] == [LogRecord]
    assert reader.records == 1
    assert reader.lines == len(hostile) + 3
    assert sum(reader.skipped.values()) == len(hostile) + 2
    assert reader.skipped["nested too deeply"] == 2
    assert reader.skipped["bad number in at"] == 3
    assert reader.skipped["bad number in in_state_ms"] == 1
    assert reader.skipped["bad ts or timestamp"] == 3
    assert reader.skipped["malformed reconnect_scheduled"] == 5
    assert reader.skipped["line longer than 1 MiB"] == 1


def test_random_bytes_never_raise(tmp_path: Path) -> None:
    path = tmp_path / "garbage.bin"
    path.write_bytes(os.urandom(300_000))
    reader = LogReader([path])
    assert list(reader) == []
    assert reader.lines > 0 and reader.valid == 0
    assert sum(reader.skipped.values()) > 0


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "event",
                        "client",
                        "seq",
                        "src",
                        "dst",
                        "trigger",
                        "at",
                        "ts",
                        "timestamp",
                        "in_state_ms",
                        "retry_in",
                        "run",
                        "source",
                        "code",
                        "detail",
                    ]
                ),
                children,
                max_size=12,
            )
        ),
        max_leaves=20,
    )
)
def test_any_json_value_is_read_or_skipped(value: Any) -> None:
    if isinstance(value, dict) and "event" not in value:
        value["event"] = "transition"
    line = json.dumps(value).encode() + b"\n"  # NaN and Infinity included
    reader = LogReader(["-"], stdin=io.BytesIO(line * 2))
    items = list(reader)
    assert reader.valid + sum(reader.skipped.values()) == 2
    for item in items:
        if isinstance(item, LogRecord):
            Checker().feed(item)
            summarise([item])
            EdgeCounter().feed(item)
            for number in (item.at, item.wall, item.in_state_ms):
                assert number is None or abs(number) <= 1e12


def test_gzip_globs_many_files_and_standard_input(tmp_path: Path) -> None:
    lines = session_lines("a")
    (tmp_path / "pods").mkdir()
    with gzip.open(tmp_path / "pods" / "a.jsonl.gz", "wt", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    write(tmp_path / "pods", session_lines("b"), "b.jsonl")
    stdin = io.BytesIO(("\n".join(session_lines("c")) + "\n").encode())
    reader = LogReader([str(tmp_path / "pods" / "*.jsonl*"), "-"], stdin=stdin)
    items = list(reader)
    assert {i.client for i in items} == {"a", "b", "c"}
    assert reader.records == 42
    assert [Path(f).name for f in reader.files] == ["a.jsonl.gz", "b.jsonl", "-"]
    assert check([i for i in items if isinstance(i, LogRecord)])[0] is None


def test_a_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    data = gzip.compress(("\n".join(session_lines()) + "\n").encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) - 30])
    reader = LogReader([path])
    records = list(reader)
    assert 0 < len(records) <= 14
    assert any("gzip" in reason for reason in reader.skipped)


def test_unreadable_inputs_are_errors_not_exceptions(tmp_path: Path) -> None:
    reader = LogReader([str(tmp_path / "missing.jsonl"), str(tmp_path / "none-*.jsonl")])
    assert list(reader) == []
    assert len(reader.errors) == 2
    assert "no file matches" in reader.errors[1]


def test_appended_runs_are_separate_lanes_not_illegal_edges(tmp_path: Path) -> None:
    for plain in (False, True):
        lines = session_lines(plain=plain) + session_lines(plain=plain)
        result = read_records(write(tmp_path, lines, f"appended-{plain}.jsonl"))
        assert check(result.records) == (None, [])
        lanes = summarise(result.records)
        assert len(lanes) == 2
        assert len({lane.run for lane in lanes}) == 2
        for lane in lanes:
            assert list(lane.outages) == [1.5, 4.0]  # no outage spans the restart


def test_inferred_runs_start_when_seq_goes_back() -> None:
    lines = [
        record(seq=1),
        record(seq=2, src="connecting", dst="disconnected", trigger="closed"),
        record(seq=2, src="disconnected", dst="connecting", trigger="connect"),
    ]
    reader = LogReader(["-"], stdin=io.BytesIO("\n".join(lines).encode()))
    runs = [item.run for item in reader]
    assert runs == ["1", "1", "2"]


def test_dates_come_from_ts_or_timestamp() -> None:
    lines = [
        record(ts=1796000000.25),
        record(seq=2, src="connecting", dst="authenticating", trigger="opened",
               timestamp="2026-11-30T22:26:01.500000Z"),
        record(seq=3, src="authenticating", dst="connected", trigger="authenticated",
               timestamp=1796000001),
        record(seq=4, src="connected", dst="connected", trigger="pong", internal=True),
    ]  # fmt: skip
    reader = LogReader(["-"], stdin=io.BytesIO("\n".join(lines).encode()))
    walls = [item.wall for item in reader]
    assert walls[0] == 1796000000.25
    assert walls[1] is not None and abs(walls[1] - 1796077561.5) < 1e-3
    assert walls[2] == 1796000001.0
    assert walls[3] is None


def test_time_in_the_last_state_counts_when_the_last_record_is_internal() -> None:
    lines = [
        record(seq=1),
        record(seq=2, src="connecting", dst="disconnected", trigger="closed", in_state_ms=100),
        record(seq=3, src="disconnected", dst="disconnected", trigger="disconnect",
               internal=True, in_state_ms=2500, source="user"),
    ]  # fmt: skip
    reader = LogReader(["-"], stdin=io.BytesIO("\n".join(lines).encode()))
    [lane] = summarise(i for i in reader if isinstance(i, LogRecord))
    assert lane.time_in_state == {"initialized": 0.0, "connecting": 0.1, "disconnected": 2.5}
    assert lane.final_source == "user"


def test_retry_notes_belong_to_the_current_run() -> None:
    lines = [
        record(seq=1, run="r1"),
        json.dumps({"event": "reconnect_scheduled", "client": "x", "retry_in": 0.5, "attempt": 2}),
    ]
    items = list(LogReader(["-"], stdin=io.BytesIO("\n".join(lines).encode())))
    note = items[1]
    assert isinstance(note, RetryNote)
    assert (note.run, note.retry_in, note.attempt) == ("r1", 0.5, 2)


def test_an_illegal_transition_is_named_with_its_line(tmp_path: Path) -> None:
    lines = session_lines()
    forged: dict[str, Any] = json.loads(lines[1])
    forged.update(src="connecting", dst="connected", trigger="opened")
    lines[1] = json.dumps(forged)
    violation, _ = check(read_records(write(tmp_path, lines)).records)
    assert violation is not None
    assert violation.line == 2
    assert "connecting -> connected on 'opened'" in violation.why


def test_a_discontinuous_record_is_illegal(tmp_path: Path) -> None:
    lines = session_lines()
    del lines[1]  # connecting -> authenticating is lost
    violation, _ = check(read_records(write(tmp_path, lines)).records)
    assert violation is not None
    assert "was connecting" in violation.why and "starts from authenticating" in violation.why


def test_seq_gaps_are_warnings_and_their_list_is_bounded(tmp_path: Path) -> None:
    shifted = [json.loads(line) for line in session_lines()]
    for entry in shifted[5:]:
        entry["seq"] += 3
    violation, warnings = check(
        read_records(write(tmp_path, [json.dumps(e) for e in shifted])).records
    )
    assert violation is None
    assert len(warnings) == 1 and "seq jumps from 5 to 9" in warnings[0]
    checker = Checker(max_warnings=3)
    for seq in range(0, 200, 2):
        checker.feed(
            LogRecord("f", seq, "x", "1", seq, "connected", "connected", "pong", None, None,
                      "", None, None, None, True, False, {})
        )  # fmt: skip
    assert checker.warning_count == 99 and len(checker.warnings) == 3


def test_client_filter_and_several_clients(tmp_path: Path) -> None:
    lines = session_lines("a") + session_lines("b")
    path = write(tmp_path, lines)
    assert {s.client for s in summarise(read_records(path).records)} == {"a", "b"}
    assert {r.client for r in read_records(path, client="b").records} == {"b"}
    assert check(read_records(path).records)[0] is None


def test_edge_counts_ignore_edges_the_machine_does_not_have(tmp_path: Path) -> None:
    lines = [*session_lines(), *(record(trigger=f"t{i}") for i in range(100))]
    counts = edge_counts(read_records(write(tmp_path, lines)).records)
    assert counts[("disconnected", "connecting", "connect")] == 2
    assert counts[("connected", "disconnecting", "disconnect")] == 2
    assert len(counts) <= 14


@pytest.mark.parametrize(
    ("src", "trigger"),
    [("connected", "connect"), ("connecting", "opened"), ("initialized", "connect")],
)
def test_check_refuses_a_forged_self_loop(tmp_path: Path, src: str, trigger: str) -> None:
    # A record whose src equals its dst is read as internal; only the table's internal
    # transitions (pong while connected, a user disconnect while going down) may be one.
    lines = [
        record(seq=1, src="initialized", dst="connecting", trigger="connect"),
        record(seq=2, src="connecting", dst="authenticating", trigger="opened"),
        record(seq=3, src="authenticating", dst="connected", trigger="authenticated"),
    ]
    if src == "connecting":
        lines = lines[:1]
    elif src == "initialized":
        lines = []
    lines.append(record(seq=len(lines) + 1, src=src, dst=src, trigger=trigger))
    violation, _ = check(read_records(write(tmp_path, lines)).records)
    assert violation is not None
    assert "is not a transition of the machine" in str(violation)


def test_every_member_of_a_multi_member_gzip_is_read(tmp_path: Path) -> None:
    # A rotated log appended to as gzip members (``gzip -c part >> all.gz``), one member
    # boundary in the middle of a line, and the zero padding some tools leave at the end.
    text = ("\n".join(session_lines("a") + session_lines("b") + session_lines("c")) + "\n").encode()
    cuts = [0, text.index(b'"client": "b"') + 5, text.index(b'"client": "c"') - 40, len(text)]
    members = [gzip.compress(text[a:b]) for a, b in itertools.pairwise(cuts)]
    data = b"".join(members) + b"\x00" * 16
    path = tmp_path / "all.jsonl.gz"
    path.write_bytes(data)
    for reader in (LogReader([path]), LogReader(["-"], stdin=io.BytesIO(data))):
        items = list(reader)
        assert reader.records == 42, reader.skipped
        assert [i.client for i in items].count("c") == 14
        assert not reader.skipped and not reader.errors
        assert check([i for i in items if isinstance(i, LogRecord)])[0] is None


def test_many_large_gzip_members_are_all_read(tmp_path: Path) -> None:
    # Members bigger than the reader's read size, so that a boundary falls inside a read.
    member = ("\n".join(session_lines("big") * 400) + "\n").encode()
    data = b""
    for _ in range(3):
        data += gzip.compress(member, compresslevel=0)  # stored: each member > 256 KiB
    assert len(data) > 3 * (1 << 18)
    reader = LogReader(["-"], stdin=io.BytesIO(data))
    assert sum(1 for _ in reader) == 3 * 400 * 14
    assert not reader.skipped


def test_free_text_from_a_log_comes_out_redacted() -> None:
    lines = [
        record(detail="Authorization: Bearer eyJ.SECRET1 token=SECRET2 Basic U0VDUkVUMw=="),
        record(seq=2, src="connecting", dst="disconnected", trigger="closed",
               source="server api_key=SECRET4", code=4001),
        record(seq=3, src="disconnected", dst="connecting", trigger="password=SECRET5"),
        json.dumps({"event": "reconnect_scheduled", "client": "x", "retry_in": 1.0,
                    "source": "secret: SECRET6"}),
    ]  # fmt: skip
    reader = LogReader(["-"], stdin=io.BytesIO("\n".join(lines).encode()))
    items = list(reader)
    shown = repr([(i.detail, i.source, i.trigger) for i in items if isinstance(i, LogRecord)])
    shown += repr([i.source for i in items if isinstance(i, RetryNote)])
    assert "SECRET" not in shown and "U0VDUkVU" not in shown
    assert shown.count("[REDACTED]") == 4  # the Authorization line is masked whole
    first = items[0]
    assert isinstance(first, LogRecord) and first.trigger == "connect"  # known text stays


def test_what_the_checker_says_is_redacted(tmp_path: Path) -> None:
    lines = session_lines("app token=SECRET1")
    gap = json.loads(lines[3])
    gap["seq"] += 5
    bad = json.loads(lines[6])
    bad.update(dst="initialized", detail="Bearer SECRET2")
    path = write(tmp_path, [*lines[:3], json.dumps(gap), *lines[4:6], json.dumps(bad)])
    violation, warnings = check(read_records(path).records)
    assert violation is not None and warnings
    said = str(violation) + " ".join(warnings)
    assert "SECRET" not in said and "[REDACTED]" in said


# -- what a record and a retry note carry, field by field ------------------------------------


def read_lines(*lines: str, client: str | None = None) -> tuple[list[Any], LogReader]:
    reader = LogReader(["-"], client, stdin=io.BytesIO("\n".join(lines).encode()))
    return list(reader), reader


def test_a_transition_line_is_read_field_by_field() -> None:
    line = record(
        client="c", seq=7, src="connected", dst="disconnecting", trigger="disconnect",
        source="server", code=1011, detail="boom", in_state_ms=12.5, at=3.25,
        ts=1700000000.5, run="r1", internal=False, reconnect=False,
    )  # fmt: skip
    [item], reader = read_lines(line)
    assert item == LogRecord(
        "-", 1, "c", "r1", 7, "connected", "disconnecting", "disconnect", "server", 1011,
        "boom", 12.5, 3.25, 1700000000.5, False, False, data={},
    )  # fmt: skip
    assert item.data == json.loads(line)
    assert (reader.lines, reader.records, reader.notes, reader.valid) == (1, 1, 0, 1)
    assert item.lane == ("c", "r1")
    assert item.edge == ("connected", "disconnecting", "disconnect")


def test_a_retry_note_is_read_field_by_field() -> None:
    note = {
        "event": "reconnect_scheduled", "client": "c", "retry_in": 2.5, "attempt": 3,
        "source": "server", "code": 1011, "ts": 1700000001.0,
    }  # fmt: skip
    items, reader = read_lines(record(client="c", run="r1"), json.dumps(note), json.dumps(note))
    assert items[1] == RetryNote("-", 2, "c", "r1", 2.5, 3, "server", 1011, 1700000001.0)
    assert items[1].lane == ("c", "r1")
    assert (reader.records, reader.notes, reader.valid) == (1, 2, 3)
    # A note before any record of its client belongs to run "1"; missing fields are None.
    lonely = {"event": "reconnect_scheduled", "client": "d", "retry_in": 0}
    [alone], _ = read_lines(json.dumps(lonely))
    assert alone == RetryNote("-", 1, "d", "1", 0.0, None, None, None, None)


@pytest.mark.parametrize(
    "fields",
    [
        {"retry_in": -1},
        {"retry_in": "soon"},
        {"client": 5},
        {"ts": "not a time"},
        {"timestamp": "2026-01-01T00:00:00"},  # naive: not comparable across machines
    ],
)
def test_a_malformed_retry_note_is_skipped_and_counted(fields: dict[str, Any]) -> None:
    note = {"event": "reconnect_scheduled", "client": "c", "retry_in": 1.0, **fields}
    items, reader = read_lines(json.dumps(note))
    assert items == []
    assert reader.skipped == {"malformed reconnect_scheduled": 1}
    assert reader.notes == 0


def test_the_client_filter_applies_to_notes_too() -> None:
    note = {"event": "reconnect_scheduled", "client": "c", "retry_in": 1.0}
    other = {**note, "client": "d"}
    items, reader = read_lines(json.dumps(note), json.dumps(other), client="d")
    assert [i.client for i in items] == ["d"]
    assert reader.notes == 1 and not reader.skipped


@pytest.mark.parametrize(
    "fields",
    [
        {"client": 5},
        {"seq": "1"},
        {"seq": True},
        {"src": "nowhere"},
        {"dst": "nowhere"},
        {"trigger": 3},
    ],
)
def test_each_missing_or_malformed_field_skips_the_record(fields: dict[str, Any]) -> None:
    items, reader = read_lines(record(**fields))
    assert items == []
    assert reader.skipped == {"missing or malformed fields": 1}
    assert reader.records == 0


@pytest.mark.parametrize(
    ("value", "code"),
    [(1011, 1011), (None, None), ("1011", None), (True, None), (10.5, None)],
)
def test_a_close_code_is_an_int_or_nothing(value: Any, code: int | None) -> None:
    [item], _ = read_lines(record(code=value))
    assert item.code == code


@pytest.mark.parametrize(
    ("detail", "shown_as"),
    [("boom", "boom"), (5, "5"), (2.5, "2.5"), (None, ""), ([1], ""), (True, "")],
)
def test_a_detail_is_text_or_a_number_or_empty(detail: Any, shown_as: str) -> None:
    [item], _ = read_lines(record(detail=detail))
    assert item.detail == shown_as
    [missing], _ = read_lines(record())
    assert missing.detail == ""


@pytest.mark.parametrize(
    ("fields", "internal"),
    [
        ({}, False),
        ({"internal": True}, True),
        ({"src": "connected", "dst": "connected", "trigger": "pong"}, True),
        ({"internal": 0}, False),
    ],
)
def test_a_record_is_internal_when_it_says_so_or_stays_in_its_state(
    fields: dict[str, Any], internal: bool
) -> None:
    [item], _ = read_lines(record(**fields))
    assert item.internal is internal


def test_a_record_leaving_initialized_after_others_starts_a_run_even_with_seq_going_on() -> None:
    lines = [
        record(seq=1),
        record(seq=2, src="connecting", dst="disconnected", trigger="closed"),
        record(seq=3),  # initialized -> connecting again: a restarted process
        record(seq=4, src="connecting", dst="disconnected", trigger="closed"),
    ]
    items, _ = read_lines(*lines)
    assert [i.run for i in items] == ["1", "1", "2", "2"]


@pytest.mark.parametrize(
    ("given", "runs"),
    [
        ("r", ["r", "r", "r.2"]),
        (7, ["7", "7", "7.2"]),
        ("x" * 100, ["x" * 64, "x" * 64, "x" * 64 + ".2"]),
        (2.5, ["1", "1", "2"]),  # neither a str nor an int: no name, numbered
    ],
)
def test_run_names_come_from_the_writer_and_restarts_number_them(
    given: Any, runs: list[str]
) -> None:
    lines = [
        record(seq=1, run=given),
        record(seq=2, src="connecting", dst="disconnected", trigger="closed", run=given),
        record(seq=1, run=given),
    ]
    items, _ = read_lines(*lines)
    assert [i.run for i in items] == runs


def test_each_client_counts_its_own_runs() -> None:
    lines = [
        record(client="a", seq=1),
        record(client="b", seq=1),
        record(client="a", seq=1),
        record(client="b", seq=2, src="connecting", dst="disconnected", trigger="closed"),
    ]
    items, _ = read_lines(*lines)
    assert [(i.client, i.run) for i in items] == [("a", "1"), ("b", "1"), ("a", "2"), ("b", "1")]


@pytest.mark.parametrize(
    ("value", "read_as"),
    [
        (1.5, 1.5), (-2, -2.0), (10**12, 1e12), (10**12 + 1, None), (-1e12, -1e12),
        (1e12 * 1.5, None), (float("nan"), None), (True, None), ("1", None),
    ],
)  # fmt: skip
def test_times_are_plausible_numbers(value: Any, read_as: float | None) -> None:
    items, reader = read_lines(record(at=value))
    if read_as is None:
        assert items == [] and reader.skipped == {"bad number in at": 1}
    else:
        assert items[0].at == read_as
    items, reader = read_lines(record(in_state_ms=value))
    if read_as is None:
        assert items == [] and reader.skipped == {"bad number in in_state_ms": 1}
    else:
        assert items[0].in_state_ms == read_as


@pytest.mark.parametrize(
    ("value", "read_as"),
    [(2**53, 2**53), (-(2**53), -(2**53)), (2**53 + 1, None), (-(2**53) - 1, None)],
)
def test_seq_and_attempt_are_exact_integers(value: int, read_as: int | None) -> None:
    items, _ = read_lines(record(seq=value))
    assert [i.seq for i in items] == ([] if read_as is None else [read_as])
    note = {"event": "reconnect_scheduled", "client": "c", "retry_in": 1.0, "attempt": value}
    [item], _ = read_lines(json.dumps(note))
    assert item.attempt == read_as


def test_the_skip_summary_says_how_many_and_why() -> None:
    _, reader = read_lines(record())
    assert reader.skipped_text() == "skipped: none"
    _, reader = read_lines("not json", "[1]", "{}", "also not json", record(seq="x"))
    assert reader.skipped_text() == (
        "skipped: 5 (1 missing or malformed fields, 2 not JSON, 1 not a JSON object, "
        "1 other events)"
    )


def test_the_last_line_without_a_newline_is_read_or_called_truncated() -> None:
    items, reader = read_lines(record(seq=1), record(seq=2))  # no newline at the end
    assert [i.seq for i in items] == [1, 2]
    assert [i.line for i in items] == [1, 2]
    assert reader.lines == 2
    items, reader = read_lines(record(seq=1), record(seq=2)[:-5])
    assert [i.seq for i in items] == [1]
    assert reader.skipped == {"truncated last line": 1}
    assert reader.lines == 2


def test_blank_lines_count_as_lines_and_nothing_else() -> None:
    items, reader = read_lines(record(seq=1), "", "   ", record(seq=2), "")
    assert [i.line for i in items] == [1, 4]
    assert reader.lines == 4 and not reader.skipped


def test_an_over_long_line_is_skipped_and_the_next_one_read() -> None:
    from statesock.tools.log_reader import MAX_LINE

    long = "x" * (MAX_LINE + 10)
    huge = "x" * (3 * MAX_LINE)  # longer than two blocks: dropped as it streams by
    items, reader = read_lines(
        record(seq=1), long, record(seq=2), huge, record(seq=3), long, record(seq=4), "end"
    )
    assert [(i.seq, i.line) for i in items] == [(1, 1), (2, 3), (3, 5), (4, 7)]
    assert reader.skipped == {"line longer than 1 MiB": 3, "truncated last line": 1}
    assert reader.lines == 8
    # A line exactly at the limit is read (it is not JSON here, so it is skipped as that).
    items, reader = read_lines("y" * MAX_LINE, record(seq=3))
    assert reader.skipped == {"not JSON": 1}
    assert [(i.seq, i.line) for i in items] == [(3, 2)]


# -- checking, counting and summarising, exactly -------------------------------------------------


def records_of(*lines: str) -> list[LogRecord]:
    items, _ = read_lines(*lines)
    return [item for item in items if isinstance(item, LogRecord)]


def test_a_violation_names_the_file_line_rule_and_the_record_sorted() -> None:
    [bad] = records_of(record(seq=1, src="connected", dst="initialized", trigger="connect", b=2))
    violation, _ = check([bad])
    assert violation is not None
    assert str(violation) == (
        "- line 1: connected -> initialized on 'connect' is not a transition of the machine: "
        + json.dumps(json.loads(record(src="connected", dst="initialized", trigger="connect",
                                       b=2)), sort_keys=True)
    )  # fmt: skip
    jumped = records_of(record(seq=1), record(seq=2, src="authenticating", dst="connected",
                                              trigger="authenticated"))  # fmt: skip
    violation, _ = check(jumped)
    assert violation is not None
    assert violation.why == (
        "client 'x' (run 1) was connecting (line 1) but this record starts from authenticating"
    )
    assert (violation.file, violation.line) == ("-", 2)
    assert violation.record == jumped[1].data


def test_seq_gaps_are_counted_and_the_first_twenty_kept() -> None:
    lines = [
        record(seq=1),
        record(seq=2, src="connecting", dst="authenticating", trigger="opened"),
        record(seq=3, src="authenticating", dst="connected", trigger="authenticated"),
    ]
    lines += [
        record(seq=5 + 2 * i, src="connected", dst="connected", trigger="pong", internal=True)
        for i in range(25)
    ]
    checker = Checker()
    for item in records_of(*lines):
        assert checker.feed(item) is None
    assert checker.records == 28 and checker.lanes == 1
    assert checker.warning_count == 25
    assert len(checker.warnings) == 20
    assert checker.warnings[0] == "- line 4: client 'x' seq jumps from 3 to 5"
    _, warnings = check(records_of(*lines))
    assert len(warnings) == 25
    many = lines[:3] + [
        record(seq=5 + 2 * i, src="connected", dst="connected", trigger="pong", internal=True)
        for i in range(1001)
    ]
    _, warnings = check(records_of(*many))
    assert len(warnings) == 1000  # check() keeps a thousand


def test_the_edge_counter_counts_each_illegal_record_once() -> None:
    counter = EdgeCounter()
    for item in records_of(
        record(seq=1),
        record(seq=2, src="connected", dst="initialized", trigger="connect"),
        record(seq=3, src="connected", dst="initialized", trigger="bogus"),
    ):
        counter.feed(item)
    assert counter.illegal == 2
    assert dict(counter.counts) == {("initialized", "connecting", "connect"): 1}


def test_lane_labels_name_a_clients_later_runs_by_their_run() -> None:
    labels = LaneLabels()
    assert labels("c", "r1") == "c"
    assert labels("c", "r2" + "x" * 20) == "c#r2xxxxxxxxxx"  # the run cut at 12
    assert labels("c", "r1") == "c"
    assert labels("token=abc", "1") == "token=[REDACTED]"
    assert labels.known[("c", "r1")] == "c"


def test_a_lane_summary_as_a_dict() -> None:
    lines = [
        record(seq=1, ts=100.0),
        record(seq=2, src="connecting", dst="authenticating", trigger="opened",
               in_state_ms=1234.5678, ts=101.0),
        record(seq=3, src="authenticating", dst="connected", trigger="authenticated", at=2.0,
               ts=102.0),
        record(seq=4, src="connected", dst="connected", trigger="pong", internal=True,
               in_state_ms=500, ts=103.0),
        record(seq=5, src="connected", dst="disconnected", trigger="closed", source=None,
               at=3.0, ts=104.0),
        record(seq=6, src="disconnected", dst="connecting", trigger="connect", reconnect=True,
               at=4.0, ts=105.0),
        record(seq=7, src="connecting", dst="authenticating", trigger="opened", at=4.5,
               ts=105.5),
        record(seq=8, src="authenticating", dst="connected", trigger="authenticated", at=5.2346,
               ts=106.0),
    ]  # fmt: skip
    summariser = Summariser()
    for item in records_of(*lines):
        summariser.feed(item)
    [lane] = summariser.finish()
    assert lane.as_dict() == {
        "client": "x", "run": "1", "label": "x", "records": 8, "pongs": 1,
        "state": "connected", "final_source": None, "final_code": None,
        "time_in_state_s": {"authenticating": 0.0, "connected": 0.0, "connecting": 1.235,
                            "disconnected": 0.0, "initialized": 0.0},
        "disconnections": {"unknown": 1}, "reconnects": 1, "outages": 1,
        "longest_outage_s": 2.235, "p50_time_to_reconnect_s": 2.235,
        "p95_time_to_reconnect_s": 2.235, "first_ts": 100.0, "last_ts": 106.0,
    }  # fmt: skip
    assert summariser.finish() == [lane]  # finishing twice adds nothing


def test_an_outage_is_measured_on_the_wall_clock_when_a_record_has_no_loop_time() -> None:
    def no_at(**fields: Any) -> str:
        data = json.loads(record(**fields))
        del data["at"]
        return json.dumps(data)

    lines = [
        no_at(seq=1, ts=10.0),
        no_at(seq=2, src="connecting", dst="authenticating", trigger="opened", ts=10.5),
        no_at(seq=3, src="authenticating", dst="connected", trigger="authenticated", ts=11.0),
        no_at(seq=4, src="connected", dst="disconnected", trigger="closed", source="server",
              ts=20.0),
        no_at(seq=5, src="disconnected", dst="connecting", trigger="connect", ts=21.0),
        no_at(seq=6, src="connecting", dst="authenticating", trigger="opened", ts=22.0),
        no_at(seq=7, src="authenticating", dst="connected", trigger="authenticated", ts=23.5),
        no_at(seq=8, src="connected", dst="disconnected", trigger="closed", source="server",
              ts=30.0),
        no_at(seq=9, src="disconnected", dst="connecting", trigger="connect", ts=31.0),
        no_at(seq=10, src="connecting", dst="authenticating", trigger="opened", ts=31.5),
        no_at(seq=11, src="authenticating", dst="connected", trigger="authenticated", ts=29.0),
    ]  # fmt: skip
    [lane] = summarise(records_of(*lines))
    assert list(lane.outages) == [3.5, 0.0]  # a clock going back never makes a negative one
    assert (lane.first_wall, lane.last_wall) == (10.0, 29.0)
    assert lane.disconnections == {"server": 2}


def test_the_fleet_adds_up_its_lanes() -> None:
    lines = [
        *session_lines("a"),
        *session_lines("b"),
    ]
    summariser = Summariser()
    for item in records_of(*lines):
        summariser.feed(item)
    fleet = summariser.fleet()
    [one, _two] = summariser.finish()
    assert fleet["clients"] == 2 and fleet["runs"] == 2
    assert fleet["records"] == 2 * one.records
    assert fleet["time_in_state_s"] == {
        k: round(2 * v, 3) for k, v in sorted(one.time_in_state.items())
    }
    assert fleet["disconnections"] == {k: 2 * v for k, v in sorted(one.disconnections.items())}
    assert fleet["reconnects"] == 4 and fleet["outages"] == 4
    assert fleet["longest_outage_s"] == 4.0
    assert fleet["p50_time_to_reconnect_s"] == 1.5
    assert fleet["p95_time_to_reconnect_s"] == 4.0
    empty = Summariser().fleet()
    assert empty["longest_outage_s"] is None and empty["p50_time_to_reconnect_s"] is None


# -- inputs: standard input, globs, gzip members, unreadable paths, bounded reads ----------------


def test_standard_input_is_read_when_no_stream_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    data = (record(seq=1) + "\n").encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    items = list(LogReader(["-"]))
    assert [i.seq for i in items if isinstance(i, LogRecord)] == [1]


def test_standard_input_then_a_file_are_both_read(tmp_path: Path) -> None:
    path = write(tmp_path, [record(client="f")])
    reader = LogReader(["-", path], stdin=io.BytesIO(record(client="s").encode()))
    assert [i.client for i in reader] == ["s", "f"]
    assert reader.files == ["-", str(path)]


def test_a_file_named_like_a_glob_is_read_as_itself(tmp_path: Path) -> None:
    literal = write(tmp_path, [record(client="literal")], name="a*.jsonl")
    write(tmp_path, [record(client="other")], name="ab.jsonl")
    assert [i.client for i in LogReader([literal])] == ["literal"]
    assert sorted(i.client for i in LogReader([tmp_path / "a?.jsonl"])) == ["literal", "other"]


def test_unreadable_inputs_say_why(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    reader = LogReader([missing, tmp_path])
    assert list(reader) == []
    assert reader.errors == [f"{missing}: No such file or directory", f"{tmp_path}: Is a directory"]


def test_a_cut_gzip_says_so_and_padding_after_the_last_member_is_not_damage(
    tmp_path: Path,
) -> None:
    whole = gzip.compress((record(seq=1) + "\n" + record(seq=2) + "\n").encode())
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[:-12])
    reader = LogReader([cut])
    list(reader)
    assert reader.skipped == {
        "truncated or corrupt gzip (the gzip stream ends before its end marker)": 1
    }
    padded = tmp_path / "padded.jsonl.gz"
    padded.write_bytes(whole + b"\x00" * 16)
    reader = LogReader([padded])
    assert [i.seq for i in reader if isinstance(i, LogRecord)] == [1, 2] and not reader.skipped
    trailing = tmp_path / "trailing.jsonl.gz"
    trailing.write_bytes(whole + b"XX")
    reader = LogReader([trailing])
    assert [i.seq for i in reader if isinstance(i, LogRecord)] == [1, 2]
    assert list(reader.skipped) == ["truncated or corrupt gzip (Error -3 while decompressing "
                                    "data: incorrect header check)"]  # fmt: skip


class Sizes(io.BytesIO):
    """A buffered stream that records how much each read asks for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int | None] = []

    def peek(self, size: int = 0) -> bytes:
        return self.getvalue()[self.tell() : self.tell() + max(size, 1)]

    def read(self, size: int | None = -1) -> bytes:
        self.asked.append(size)
        return super().read(size)


def test_input_is_read_in_bounded_blocks() -> None:
    plain = Sizes((record(seq=1) + "\n").encode())
    list(LogReader(["-"], stdin=plain))
    assert plain.asked and set(plain.asked) == {1 << 20}
    packed = Sizes(gzip.compress((record(seq=1) + "\n").encode()))
    list(LogReader(["-"], stdin=packed))
    assert packed.asked and set(packed.asked) == {1 << 18}


def test_read_records_takes_one_path_or_many_and_keeps_the_notes(tmp_path: Path) -> None:
    note = json.dumps({"event": "reconnect_scheduled", "client": "x", "retry_in": 1.0})
    path = write(tmp_path, [record(seq=1), note, "junk"])
    for source in (path, str(path), [path], (path,)):
        result = read_records(source)
        assert [r.seq for r in result.records] == [1]
        assert [n.retry_in for n in result.annotations] == [1.0]
        assert result.lines == 3 and result.skipped == {"not JSON": 1} and result.errors == []


def test_shown_text_is_redacted_whatever_its_length_and_the_cache_stays_bounded() -> None:
    import uuid

    from statesock.tools import log_reader

    fresh = f"short-{uuid.uuid4()}"
    assert log_reader.shown(fresh) == fresh
    assert log_reader.shown(fresh) == fresh  # from the cache
    assert log_reader.shown("x" * 300) == "x" * 300  # no 200-character cut here
    assert log_reader.shown("y" * 600) == "y" * 500
    assert log_reader.shown("token=abc " + "z" * 100) == "token=[REDACTED] " + "z" * 100
    log_reader._SHOWN.clear()
    for index in range(4096):
        log_reader.shown(f"label-{index}")
    assert len(log_reader._SHOWN) == 4096
    log_reader.shown("one more")  # full: cleared first
    assert len(log_reader._SHOWN) == 1


def test_the_edges_of_plausible_numbers() -> None:
    items, _ = read_lines(record(at=-(10**12)), record(at=-(10**12) - 1), record(at=1e12))
    assert [i.at for i in items] == [-1e12, 1e12]
    items, _ = read_lines(record(run="r" * 65, seq=1), record(run="r" * 64, seq=1))
    assert [i.run for i in items] == ["r" * 64, "r" * 64 + ".2"]


class Failing(io.BytesIO):
    """A stream whose reads fail with ``error``."""

    def __init__(self, error: OSError) -> None:
        super().__init__(b"")
        self.error = error

    def peek(self, size: int = 0) -> bytes:
        return b"{"

    def read(self, size: int | None = -1) -> bytes:
        raise self.error


def test_a_stream_that_fails_is_an_error_named_by_its_reason() -> None:
    reader = LogReader(["-"], stdin=Failing(IsADirectoryError(21, "Is a directory")))
    assert list(reader) == [] and reader.errors == ["-: is a directory"]
    reader = LogReader(["-"], stdin=Failing(OSError(5, "Input/output error")))
    assert list(reader) == [] and reader.errors == ["-: Input/output error"]


def test_each_damaged_gzip_is_counted(tmp_path: Path) -> None:
    whole = gzip.compress((record(seq=1) + "\n").encode())
    paths = []
    for name in ("a.gz", "b.gz"):
        path = tmp_path / name
        path.write_bytes(whole[:-12])
        paths.append(path)
    reader = LogReader(paths)
    list(reader)
    assert sum(reader.skipped.values()) == 2


def test_a_summary_counts_pongs_short_outages_and_time_left_open() -> None:
    lines = [
        record(seq=1, at=0.0),
        record(seq=2, src="connecting", dst="authenticating", trigger="opened", at=0.0),
        record(seq=3, src="authenticating", dst="connected", trigger="authenticated", at=0.0),
        record(seq=4, src="connected", dst="connected", trigger="pong", internal=True, at=1.0),
        record(seq=5, src="connected", dst="disconnected", trigger="closed", at=5.0,
               in_state_ms=5000),
        record(seq=6, src="disconnected", dst="connecting", trigger="connect", at=5.25),
        record(seq=7, src="connecting", dst="authenticating", trigger="opened", at=5.25),
        record(seq=8, src="authenticating", dst="connected", trigger="authenticated", at=5.5),
        record(seq=9, src="connected", dst="connected", trigger="pong", internal=True, at=7.0,
               in_state_ms=1500),
    ]  # fmt: skip
    summariser = Summariser()
    for item in records_of(*lines):
        summariser.feed(item)
    [lane] = summariser.finish()
    assert lane.pongs == 2
    assert list(lane.outages) == [0.5]  # under a second, kept as it was
    assert lane.time_in_state["connected"] == 5.0 + 1.5  # the time still open at the end too
    summariser.finish()
    lane.finish()  # finishing again adds nothing
    assert lane.time_in_state["connected"] == 6.5


def test_an_outage_with_mixed_clocks_is_measured_where_both_ends_have_one() -> None:
    def without(field: str, **fields: Any) -> str:
        data = json.loads(record(**fields))
        del data[field]
        return json.dumps(data)

    up = [
        record(seq=1, at=0.0, ts=100.0),
        record(seq=2, src="connecting", dst="authenticating", trigger="opened", at=0.0, ts=100.0),
        record(seq=3, src="authenticating", dst="connected", trigger="authenticated", at=0.0,
               ts=100.0),
    ]  # fmt: skip
    down_by_wall = without("at", seq=4, src="connected", dst="disconnected", trigger="closed",
                           ts=110.0)  # fmt: skip
    back = [
        record(seq=5, src="disconnected", dst="connecting", trigger="connect", at=20.0, ts=112.0),
        record(seq=6, src="connecting", dst="authenticating", trigger="opened", at=20.0, ts=112.0),
        record(seq=7, src="authenticating", dst="connected", trigger="authenticated", at=21.0,
               ts=113.0),
    ]  # fmt: skip
    [lane] = summarise(records_of(*up, down_by_wall, *back))
    assert list(lane.outages) == [3.0]  # by the wall clock: the down record has no loop time
    down_by_loop = record(seq=4, src="connected", dst="disconnected", trigger="closed", at=10.0)
    back_by_wall = [without("at", **json.loads(line)) for line in back]
    [lane] = summarise(records_of(*up, down_by_loop, *back_by_wall))
    assert list(lane.outages) == []  # no clock common to both ends: not measured


def test_a_clients_later_runs_are_labelled_with_the_run() -> None:
    lines = [record(seq=1, run="first"), record(seq=1, run="second")]
    summariser = Summariser()
    for item in records_of(*lines):
        summariser.feed(item)
    assert [lane.label for lane in summariser.finish()] == ["x", "x#second"]


def test_the_fleets_time_in_state_is_rounded_to_milliseconds() -> None:
    lines = [
        record(seq=1),
        record(seq=2, src="connecting", dst="authenticating", trigger="opened",
               in_state_ms=1234.5678),
    ]  # fmt: skip
    summariser = Summariser()
    for item in records_of(*lines):
        summariser.feed(item)
    assert summariser.fleet()["time_in_state_s"]["connecting"] == 1.235
