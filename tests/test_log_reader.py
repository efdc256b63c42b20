"""Reading, checking and summarising transition logs (statesock.log_reader)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from statesock.log_reader import check, edge_counts, read_records, summarise
from statesock.machine import ConnectionMachine
from statesock.sources import NoPongReceived, ServerInitiated, UserInitiated
from statesock.transition_log import TransitionLogger


def session_lines(client: str = "c1") -> list[str]:
    """A real session's log, as an app writing structlog JSON lines would have it."""
    now = [0.0]
    machine = ConnectionMachine(lambda: now[0])
    machine.add_listener(TransitionLogger(client))

    def at(t: float) -> None:
        now[0] = t

    with capture_logs() as logs:
        machine.connect()
        at(0.1)
        machine.opened()
        at(0.2)
        machine.authenticated()
        at(60.0)
        machine.disconnect(NoPongReceived())
        at(60.1)
        machine.closed()
        at(61.0)
        machine.connect(reconnect=True)
        at(61.5)
        machine.opened()
        machine.authenticated()
        at(100.0)
        machine.closed(ServerInitiated(1011, "overloaded"))
        at(104.0)
        machine.connect(reconnect=True)
        machine.opened()
        machine.authenticated()
        at(200.0)
        machine.disconnect(UserInitiated())
        machine.closed()
    return [json.dumps(dict(entry)) for entry in logs]


def write(tmp_path: Path, lines: list[str], name: str = "log.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


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
    assert summary.outages == [1.5, 4.0]
    assert summary.longest_outage == 4.0
    assert summary.p50_reconnect == 1.5
    assert summary.p95_reconnect == 4.0
    assert round(summary.time_in_state["connected"], 3) == round(59.8 + 38.5 + 96.0, 3)


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


def test_seq_gaps_are_warnings(tmp_path: Path) -> None:
    lines = session_lines()
    shifted = [json.loads(line) for line in lines]
    for entry in shifted[5:]:
        entry["seq"] += 3
    violation, warnings = check(
        read_records(write(tmp_path, [json.dumps(e) for e in shifted])).records
    )
    assert violation is None
    assert len(warnings) == 1 and "seq jumps from 5 to 9" in warnings[0]


def test_client_filter_and_several_clients(tmp_path: Path) -> None:
    lines = session_lines("a") + session_lines("b")
    path = write(tmp_path, lines)
    assert {s.client for s in summarise(read_records(path).records)} == {"a", "b"}
    assert {r.client for r in read_records(path, client="b").records} == {"b"}
    assert check(read_records(path).records)[0] is None


def test_edge_counts() -> None:
    result = read_records(io.StringIO("\n".join(session_lines()) + "\n"))
    counts = edge_counts(result.records)
    assert counts[("disconnected", "connecting", "connect")] == 2
    assert counts[("connected", "disconnecting", "disconnect")] == 2
