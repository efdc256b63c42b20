"""The statesock command line: logs, diagram --log, demo end to end, connect."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from statesock.cli import main
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
    assert "illegal transition at line 4" in out


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


def test_logs_reads_standard_input(tmp_path: Path) -> None:
    text = "\n".join(session_lines()) + "\n"
    result = subprocess.run(
        [sys.executable, "-m", "statesock", "logs", "--check", "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ok: 14 records" in result.stdout


def test_logs_on_a_missing_file_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "/nonexistent/statesock.jsonl"]) == 2
    assert "cannot read" in capsys.readouterr().err


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
