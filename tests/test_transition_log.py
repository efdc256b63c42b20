"""The transition log's schema and the redaction of secrets."""

from __future__ import annotations

import subprocess
import sys

import pytest
from structlog.testing import capture_logs

from statesock.events import HealthCheckInfo
from statesock.machine import ConnectionMachine
from statesock.redaction import REDACTED, redact_headers, redact_text, redact_url
from statesock.sources import ServerInitiated, UserInitiated
from statesock.transition_log import TransitionLogger, transition_fields

SECRETS = ["s3cr3t-tok", "k3y-value", "hunter2", "sig-abc123", "eyJhbGciOi.payload.sig"]


def test_each_change_and_internal_transition_is_one_transition_event() -> None:
    now = [0.0]
    machine = ConnectionMachine(lambda: now[0])
    machine.add_listener(TransitionLogger("feed-1"))
    with capture_logs() as logs:
        machine.connect()
        now[0] = 0.2
        machine.opened()
        machine.authenticated(HealthCheckInfo("c-1"))
        machine.pong(HealthCheckInfo("c-1", round_trip=0.004))
        now[0] = 3.0
        machine.disconnect(ServerInitiated(1011, "overloaded"))
        machine.disconnect(UserInitiated())
        machine.closed()
    assert [e["event"] for e in logs] == ["transition"] * 7
    assert [e["seq"] for e in logs] == list(range(1, 8))
    assert [(e["src"], e["dst"], e["trigger"]) for e in logs] == [
        ("initialized", "connecting", "connect"),
        ("connecting", "authenticating", "opened"),
        ("authenticating", "connected", "authenticated"),
        ("connected", "connected", "pong"),
        ("connected", "disconnecting", "disconnect"),
        ("disconnecting", "disconnecting", "disconnect"),
        ("disconnecting", "disconnected", "closed"),
    ]
    assert [e["internal"] for e in logs] == [False, False, False, True, False, True, False]
    fifth = logs[4]
    assert fifth["client"] == "feed-1"
    assert fifth["source"] == "server"
    assert fifth["code"] == 1011
    assert fifth["detail"] == "server closed with 1011: overloaded"
    assert fifth["in_state_ms"] == 2800.0
    assert logs[1]["in_state_ms"] == 200.0
    assert logs[-1]["source"] == "user"
    assert logs[-1]["code"] is None
    for field in ("client", "seq", "src", "dst", "trigger", "source", "code", "detail"):
        assert all(field in e for e in logs)


def test_logger_is_fetched_at_call_time() -> None:
    machine = ConnectionMachine(lambda: 0.0)
    machine.add_listener(TransitionLogger("late"))
    # Configuration made after the listener exists must still apply.
    with capture_logs() as logs:
        machine.connect()
    assert logs and logs[0]["client"] == "late"


def test_using_the_library_never_configures_structlog() -> None:
    code = (
        "import structlog, statesock.transition_log as log, statesock.machine as m\n"
        "mc = m.ConnectionMachine(lambda: 0.0)\n"
        "mc.add_listener(log.TransitionLogger('x'))\n"
        "mc.connect()\n"
        "assert not structlog.is_configured()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "wss://example.test/connect?token=s3cr3t-tok&user=ann",
        "wss://example.test/connect?api_key=k3y-value",
        "wss://ann:hunter2@example.test/connect",
        "wss://example.test/c?X-Amz-Signature=sig-abc123&x=1",
        "ws://example.test/?access_token=eyJhbGciOi.payload.sig",
        "wss://example.test/c?AUTH=hunter2",
    ],
)
def test_redact_url_masks_secrets_and_keeps_the_rest(url: str) -> None:
    redacted = redact_url(url)
    assert not any(secret in redacted for secret in SECRETS)
    assert "example.test" in redacted
    assert REDACTED in redacted or "%5BREDACTED%5D" in redacted


def test_redact_url_keeps_harmless_parameters() -> None:
    assert redact_url("wss://h.test/c?user=ann&v=2") == "wss://h.test/c?user=ann&v=2"


def test_redact_headers() -> None:
    headers = {
        "Authorization": "Bearer s3cr3t-tok",
        "X-Api-Key": "k3y-value",
        "Cookie": "session=hunter2",
        "X-Request-Id": "r-1",
    }
    assert dict(redact_headers(headers)) == {
        "Authorization": REDACTED,
        "X-Api-Key": REDACTED,
        "Cookie": REDACTED,
        "X-Request-Id": "r-1",
    }
    assert redact_headers([("authorization", "Basic aGk=")]) == [("authorization", REDACTED)]
    assert redact_headers(None) == []


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "auth", "token": "s3cr3t-tok"}',
        "Authorization: Bearer eyJhbGciOi.payload.sig",
        "password=hunter2&user=x",
        "apiKey: k3y-value",
        b'{"signature":"sig-abc123"}',
    ],
)
def test_redact_text_masks_inline_secrets(text: str | bytes) -> None:
    redacted = redact_text(text)
    assert not any(secret in redacted for secret in SECRETS)


def test_redact_text_truncates() -> None:
    assert redact_text("x" * 1000, limit=10) == "xxxxxxxxxx… (1000 chars)"


def test_secrets_in_sources_never_reach_the_log() -> None:
    machine = ConnectionMachine(lambda: 0.0)
    machine.connect()
    machine.opened()
    record = machine.closed(ServerInitiated(4001, 'bad token="s3cr3t-tok"'))
    assert record is not None
    fields = transition_fields("c", record)
    assert "s3cr3t-tok" not in str(fields)
