"""The statesock command line: logs, diagram --log, demo end to end, connect."""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from statesock.cli import build_parser, main
from statesock.testing import TestServer
from tests.test_log_reader import session_lines, write

ROOT = Path(__file__).resolve().parent.parent


def test_logs_prints_timeline_and_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, session_lines())
    assert main(["logs", str(path)]) == 0
    out = capsys.readouterr().out
    assert "connected → disconnecting" in out
    assert "source=no_pong" in out
    assert "reconnects: 2" in out
    assert "longest 4.000 s" in out
    assert "14 records from 14 lines; skipped: none" in out
    # Dates: the writer's ts becomes a UTC date and time on every line.
    first = next(line for line in out.splitlines() if "initialized → connecting" in line)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z  c1  ", first), first


def test_pongs_collapse_into_one_count_per_connected_period(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pong = {
        "event": "transition", "client": "p", "src": "connected", "dst": "connected",
        "trigger": "pong", "internal": True, "at": 1.0, "in_state_ms": 1.0,
    }  # fmt: skip
    lines = [
        json.dumps({**pong, "seq": 1, "src": "authenticating", "trigger": "authenticated",
                    "internal": False}),
        *(json.dumps({**pong, "seq": n}) for n in range(2, 102)),
        json.dumps({**pong, "seq": 102, "dst": "disconnected", "trigger": "closed",
                    "internal": False, "source": "server", "code": 1011}),
    ]  # fmt: skip
    path = write(tmp_path, lines)
    assert main(["logs", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("pong") == 2  # the count line and the summary's "(… 100 pongs)"
    assert "p: 100 pongs while connected" in out
    assert out.index("100 pongs while") < out.index("connected → disconnected")
    assert main(["logs", "--pongs", str(path)]) == 0
    assert capsys.readouterr().out.count("(internal)  pong") == 100


def test_logs_check_passes_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, session_lines(), "good.jsonl")
    assert main(["logs", "--check", str(good)]) == 0
    assert "ok: 14 records" in capsys.readouterr().out
    lines = session_lines()
    forged = json.loads(lines[3])
    forged["dst"] = "initialized"
    lines[3] = json.dumps(forged)
    bad = write(tmp_path, lines, "bad.jsonl")
    assert main(["logs", "--check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "bad.jsonl line 4: " in out and "illegal transition" in out


def test_logs_check_accepts_a_log_appended_across_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, session_lines(plain=True) * 3)
    assert main(["logs", "--check", str(path)]) == 0
    assert "ok: 42 records follow the machine's table (3 client runs" in capsys.readouterr().out
    assert main(["logs", "--summary-only", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("outages: 2, longest 4.000 s") == 3  # never one outage spanning two processes
    assert "client c1#3" in out and "fleet: 1 clients, 3 runs" in out


def test_logs_on_a_truncated_log_never_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cut.jsonl"
    text = "\n".join(session_lines())
    path.write_text(text[: len(text) - 40] + "\n\x00garbage\n" + text[:30], encoding="utf-8")
    assert main(["logs", str(path)]) == 0
    out = capsys.readouterr().out
    assert "truncated last line" in out
    assert "not JSON" in out


def test_logs_json_summary_and_client_filter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, session_lines("a") + session_lines("b"))
    assert main(["logs", "--json", "--client", "b", str(path)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [c["client"] for c in payload["clients"]] == ["b"]
    assert payload["clients"][0]["reconnects"] == 2
    assert payload["clients"][0]["p95_time_to_reconnect_s"] == 4.0
    assert payload["fleet"]["outages"] == 2


def _strict(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_logs_json_is_strict_json_even_from_hostile_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = session_lines()
    lines.insert(2, re.sub(r'"in_state_ms": [0-9.]+', '"in_state_ms": NaN', lines[2]))
    lines.insert(3, lines[3].replace('"at":', '"at": Infinity, "x":'))
    lines.insert(4, lines[4].replace('"at":', '"at": 1e999, "x":'))
    lines.append('{"event": "reconnect_scheduled", "client": "c1", "retry_in": NaN}')
    path = write(tmp_path, lines)
    assert main(["logs", "--json", str(path)]) == 0
    payload = _strict(capsys.readouterr().out)
    assert payload["records"] == 14
    assert sum(payload["skipped"].values()) >= 3


def test_hostile_files_through_the_cli(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(os.urandom(100_000) + b"[" * 100_000 + b"\n")
    nested = tmp_path / "nested.jsonl"
    nested.write_text("[" * 100_000 + "\n" + '{"event":"transition","at":' + "9" * 400 + "}\n")
    for args in (["logs"], ["logs", "--check"], ["logs", "--json"], ["report", "-o", "-"]):
        result = subprocess.run(
            [sys.executable, "-m", "statesock", *args, str(garbage), str(nested)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert "no valid transition records" in result.stderr
    assert main(["logs", str(tmp_path / "missing.jsonl")]) == 2


def test_logs_reads_standard_input_gzip_and_globs(tmp_path: Path) -> None:
    text = "\n".join(session_lines()) + "\n"
    with gzip.open(tmp_path / "one.jsonl.gz", "wt", encoding="utf-8") as out:
        out.write("\n".join(session_lines("g")) + "\n")
    write(tmp_path, session_lines("h"), "two.jsonl")
    result = subprocess.run(
        [sys.executable, "-m", "statesock", "logs", "--check", "-", str(tmp_path / "*.jsonl*")],
        input=text.encode(),
        capture_output=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert b"ok: 42 records" in result.stdout
    gz = subprocess.run(
        [sys.executable, "-m", "statesock", "logs", "--summary-only", "-"],
        input=gzip.compress(text.encode()),
        capture_output=True,
        cwd=ROOT,
        check=False,
    )
    assert gz.returncode == 0 and b"reconnects: 2" in gz.stdout


def test_logs_on_a_missing_file_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "/nonexistent/statesock.jsonl"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import statesock

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"statesock {statesock.__version__}"


def test_every_argument_has_help_text() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"statesock {name} {action.dest} has no help text"


def test_diagram_with_log_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, session_lines())
    assert main(["diagram", "--log", str(path)]) == 0
    out = capsys.readouterr().out
    assert "disconnected --> connecting: connect ×2" in out
    assert "connected --> disconnecting: disconnect ×2" in out


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    log = tmp_path / "demo.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "statesock", "demo", "--log-file", str(log), "--speed", "2"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    out = result.stdout
    for expected in ("source=server(1006)", "source=no_pong", "source=system", "4401"):
        assert expected in out
    assert "recovery gave up: True" in out
    assert f"statesock logs {log}" in out
    assert main(["logs", "--check", str(log)]) == 0


def test_connect_prints_messages_and_disconnects_cleanly_on_ctrl_c() -> None:
    async def scenario() -> tuple[int, str]:
        async with TestServer() as server:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "statesock",
                "connect",
                server.url,
                "--ping",
                "json",
                "--ack-type",
                "connection.ok",
                "--auth-message",
                '{"type": "auth", "token": "t"}',
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=ROOT,
            )
            assert process.stdout is not None
            seen = ""
            while "authenticating → connected" not in seen:
                seen += (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
            await server.broadcast({"type": "event", "seq": 1})
            while '"seq": 1' not in seen:
                seen += (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
            ws = next(iter(server.connections.values()))
            process.send_signal(signal.SIGINT)
            rest, _ = await asyncio.wait_for(process.communicate(), 20)
            await ws.wait_closed()
            assert ws.close_code == 1000
            return process.returncode or 0, seen + rest.decode()

    code, out = asyncio.run(scenario())
    assert code == 0
    assert "source=user" in out
    assert "Traceback" not in out


def test_the_readme_json_lines_recipe_feeds_statesock_logs(tmp_path: Path) -> None:
    log = tmp_path / "transitions.jsonl"
    app = f"""
import asyncio, structlog
from statesock import WebSocketClient
from statesock.testing import TestServer, auth_hook, decode_message

structlog.configure(
    processors=[
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.JSONRenderer(),
    ],
    logger_factory=structlog.WriteLoggerFactory(file=open({str(log)!r}, "a")),
)

async def main():
    async with TestServer() as server:
        client = WebSocketClient(server.url, decode_message,
                                 on_connection_established=auth_hook("t"), label="app")
        async with client:
            await server.close_all(1011)
            await asyncio.sleep(0.2)

asyncio.run(main())
"""
    result = subprocess.run(
        [sys.executable, "-c", app], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    checked = subprocess.run(
        [sys.executable, "-m", "statesock", "logs", "--check", str(log)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout
    assert "ok: 5 records" in checked.stdout
