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
from statesock.tools.log_analysis import Checker, EdgeCounter, check, edge_counts, summarise
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
