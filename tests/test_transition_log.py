"""The log writer: silent by default, stdlib or structlog when asked, the transition schema,
nothing built for a disabled level, exceptions logged redacted."""

from __future__ import annotations

import functools
import io
import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture, capture_logs

from statesock import transition_log
from statesock.events import HealthCheckInfo
from statesock.log_schema import TRANSITION_FIELDS, LogEvent
from statesock.machine import ConnectionMachine
from statesock.sources import NoPongReceived, ServerInitiated, UserInitiated
from statesock.transition_log import (
    LOGGER_NAME,
    RUN_ID,
    emit,
    log_enabled,
    transition_fields,
)
from tests.support import Recording, logged_machine

FIELDS = (
    "client",
    "seq",
    "src",
    "dst",
    "trigger",
    "source",
    "code",
    "detail",
    "in_state_ms",
    "internal",
    "reconnect",
    "at",
    "ts",
    "run",
)


@pytest.fixture(autouse=True)
def unconfigured() -> Iterator[None]:
    """Each test starts as an app that configured nothing, and leaves it that way."""
    structlog.reset_defaults()
    logger = logging.getLogger(LOGGER_NAME)
    level = logger.level
    yield
    structlog.reset_defaults()
    logger.setLevel(level)


def _machine(label: str = "c") -> Recording:
    return logged_machine(label)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )


def test_each_change_and_internal_transition_is_one_transition_event() -> None:
    now = [0.0]
    machine = logged_machine("feed-1", lambda: now[0])
    before = time.time()
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
    for field in FIELDS:
        assert all(field in e for e in logs), field
    assert {e["run"] for e in logs} == {RUN_ID}
    assert all(before <= e["ts"] <= time.time() for e in logs)


def test_the_fields_are_the_schema_in_its_order() -> None:
    assert FIELDS == TRANSITION_FIELDS
    [record] = ConnectionMachine(lambda: 0.0).connect()
    assert tuple(transition_fields("c", record)) == TRANSITION_FIELDS


def test_the_reconnect_field_says_whether_recovery_fired_the_connect() -> None:
    machine = logged_machine("feed-1")
    with capture_logs() as logs:
        machine.connect()
        machine.opened()
        machine.authenticated()
        machine.pong(HealthCheckInfo("c-1"))
        machine.disconnect(NoPongReceived())
        machine.closed()
        machine.connect(reconnect=True)
        machine.disconnect(NoPongReceived())
        machine.disconnect(UserInitiated())
    steps = [(e["trigger"], e["internal"], e["reconnect"]) for e in logs]
    assert steps == [
        ("connect", False, False),  # the user's
        ("opened", False, False),
        ("authenticated", False, False),
        ("pong", True, False),
        ("disconnect", False, False),
        ("closed", False, False),
        ("connect", False, True),  # recovery's
        ("disconnect", False, False),
        ("disconnect", True, False),
    ]
    assert all(type(e["reconnect"]) is bool for e in logs)


def test_event_names_reach_renderers_as_plain_strings() -> None:
    out = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.KeyValueRenderer(key_order=["event"])],
        logger_factory=structlog.WriteLoggerFactory(file=out),
    )
    with capture_logs() as logs:
        _machine("kv").connect()
        emit("info", LogEvent.NETWORK_STATUS, available=False)
    assert [type(e["event"]) for e in logs] == [str, str]
    assert [e["event"] for e in logs] == [LogEvent.TRANSITION, LogEvent.NETWORK_STATUS]
    _machine("kv").connect()
    emit("info", LogEvent.NETWORK_STATUS, available=False)
    lines = out.getvalue().splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == [
        "event='transition'",
        "event='network_status'",
    ]


def test_the_run_id_is_drawn_once_per_process() -> None:
    assert re.fullmatch(r"[0-9a-f]{12}", RUN_ID)
    other = _run("import statesock.transition_log as t; print(t.RUN_ID)").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{12}", other)
    assert other != RUN_ID


def test_logger_is_fetched_at_call_time() -> None:
    machine = _machine("late")
    # Configuration made after the listener exists must still apply.
    with capture_logs() as logs:
        machine.connect()
    assert logs and logs[0]["client"] == "late"


def test_using_the_library_never_configures_logging() -> None:
    code = (
        "import logging, structlog, statesock.transition_log as log, statesock.machine as m\n"
        "mc = m.ConnectionMachine(lambda: 0.0)\n"
        "lg = log.TransitionLogger('x')\n"
        "[lg(r) for r in mc.connect()]\n"
        "log.emit('error', 'boom', exc_info=ValueError('x'))\n"
        "assert not structlog.is_configured()\n"
        "assert not logging.getLogger().handlers\n"
        "assert logging.getLogger('statesock').level == logging.NOTSET\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr


def test_silent_by_default_even_for_errors() -> None:
    code = (
        "import statesock.transition_log as log, statesock.machine as m\n"
        "mc = m.ConnectionMachine(lambda: 0.0)\n"
        "lg = log.TransitionLogger('x')\n"
        "[lg(r) for r in mc.connect()]\n"
        "log.emit('error', 'callback_failed', error='boom', exc_info=ValueError('x'))\n"
        "log.emit('critical', 'worse')\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    # Without the NullHandler, logging's last-resort handler would print the error to stderr.
    assert result.stdout == ""
    assert result.stderr == ""


def test_basic_config_at_info_shows_transitions_and_hides_debug() -> None:
    code = (
        "import logging, sys\n"
        "logging.basicConfig(\n"
        "    level=logging.INFO, stream=sys.stdout, format='%(name)s %(message)s'\n"
        ")\n"
        "import statesock.transition_log as log, statesock.machine as m\n"
        "mc = m.ConnectionMachine(lambda: 0.0)\n"
        "lg = log.TransitionLogger('feed-1')\n"
        "[lg(r) for r in mc.connect()]\n"
        "log.emit('debug', 'hidden_detail')\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    # transitions logs its own steps at INFO too ("transitions.core ..."); the README's
    # recipe quiets it.
    lines = [line for line in result.stdout.splitlines() if line.startswith("statesock")]
    assert len(lines) == 1, result.stdout
    assert lines[0].startswith("statesock transition client='feed-1' seq=1 ")
    assert "src='initialized' dst='connecting' trigger='connect'" in lines[0]


def test_stdlib_records_carry_the_fields_for_formatters(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    _machine("feed-2").connect()
    [record] = caplog.records
    assert record.name == LOGGER_NAME
    assert record.levelno == logging.INFO
    fields: dict[str, Any] = record.statesock  # type: ignore[attr-defined]
    assert set(FIELDS) <= set(fields)
    assert fields["client"] == "feed-2"
    assert fields["run"] == RUN_ID
    assert record.getMessage().startswith("transition client='feed-2' seq=1")


def test_log_enabled_follows_the_stdlib_level() -> None:
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.WARNING)
    assert not log_enabled("info")
    assert not log_enabled(logging.DEBUG)
    assert log_enabled("warning")
    assert log_enabled("error")
    logger.setLevel(logging.DEBUG)
    assert log_enabled("debug")


def test_log_enabled_follows_the_structlog_filtering_level() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    assert not log_enabled("info")
    assert log_enabled("warning")


class Explode:
    """Once armed, building or redacting any field fails loudly and is recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.calls: list[str] = []

    def arm(self) -> None:
        for name in ("transition_fields", "redact_text", "redact_exception", "_clean"):
            self.monkeypatch.setattr(transition_log, name, self._fail(name))

    def _fail(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            raise AssertionError(f"{name} ran for a disabled level")

        return call


@pytest.fixture
def explode(monkeypatch: pytest.MonkeyPatch) -> Explode:
    return Explode(monkeypatch)


class _Loud:
    def __str__(self) -> str:
        raise AssertionError("formatted for a disabled level")

    __repr__ = __str__


def _log_everything_below_warning(explode: Explode) -> None:
    machine = _machine()  # the label is redacted once, here
    explode.arm()
    machine.connect()
    machine.opened()
    emit("info", LogEvent.NETWORK_STATUS, available=True, obj=_Loud())
    emit("debug", "stale_engine_event", what=_Loud(), exc_info=ValueError("x"))


def test_the_check_notices_fields_built_for_an_enabled_level(explode: Explode) -> None:
    logging.getLogger(LOGGER_NAME).setLevel(logging.INFO)
    _log_everything_below_warning(explode)
    assert "transition_fields" in explode.calls


def test_nothing_is_built_for_a_disabled_stdlib_level(explode: Explode) -> None:
    logging.getLogger(LOGGER_NAME).setLevel(logging.WARNING)
    _log_everything_below_warning(explode)
    assert explode.calls == []


def test_nothing_is_built_for_a_disabled_structlog_level(explode: Explode) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    _log_everything_below_warning(explode)
    assert explode.calls == []


def test_nothing_is_built_for_a_disabled_level_of_stdlib_backed_structlog(
    explode: Explode,
) -> None:
    structlog.configure(
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
    )
    logging.getLogger(LOGGER_NAME).setLevel(logging.WARNING)
    _log_everything_below_warning(explode)
    assert explode.calls == []


def test_structlog_receives_the_records_once_configured() -> None:
    out = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        logger_factory=structlog.WriteLoggerFactory(file=out),
    )
    _machine("json").connect()
    emit("debug", "stale_engine_event", what="opened")
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["event"], r["level"]) for r in records] == [
        ("transition", "info"),
        ("stale_engine_event", "debug"),
    ]
    assert records[0]["client"] == "json"
    assert records[0]["run"] == RUN_ID


def test_exc_info_becomes_a_redacted_exception_field() -> None:
    try:
        raise RuntimeError("login failed: password=hunter2")
    except RuntimeError as exc:
        error = exc
    with capture_logs() as logs:
        emit("error", "callback_failed", error="RuntimeError", exc_info=error)
    [entry] = logs
    assert "exc_info" not in entry
    assert "Traceback (most recent call last)" in entry["exception"]
    assert "RuntimeError: login failed: password=[REDACTED]" in entry["exception"]
    assert "hunter2" not in str(entry)


def test_exc_info_true_uses_the_exception_being_handled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER_NAME)
    try:
        raise ValueError("api_key=k3y-value")
    except ValueError:
        emit("error", "network_callback_failed", exc_info=True)
    [record] = caplog.records
    assert record.exc_info is None  # a formatter never sees the raw exception
    assert "ValueError: api_key=[REDACTED]" in record.getMessage()
    assert "k3y-value" not in caplog.text


def test_every_string_field_is_redacted_on_the_way_out() -> None:
    with capture_logs() as logs:
        emit(
            "warning",
            "decode_failed",
            error=ValueError("token=s3cr3t-tok"),
            message=b'{"password": "a b c"}',
            nested={"headers": [("Authorization", "Bearer eyJ.x")]},
            count=3,
            ratio=0.5,
            flag=None,
        )
    [entry] = logs
    assert entry["error"] == "ValueError: token=[REDACTED]"
    assert entry["message"] == '{"password": "[REDACTED]"}'
    assert entry["nested"] == {"headers": [["Authorization", "[REDACTED]"]]}
    assert (entry["count"], entry["ratio"], entry["flag"]) == (3, 0.5, None)


def test_a_broken_logging_setup_never_reaches_the_caller() -> None:
    def broken(logger: Any, name: str, event_dict: Any) -> Any:
        raise OSError("disk full")

    structlog.configure(processors=[broken])
    _machine().connect()
    emit("error", "callback_failed", exc_info=ValueError("x"))


def test_secrets_in_sources_never_reach_the_log() -> None:
    machine = ConnectionMachine(lambda: 0.0)
    machine.connect()
    machine.opened()
    [record] = machine.closed(ServerInitiated(4001, 'bad token="s3cr3t-tok"'))
    fields = transition_fields("c", record)
    assert "s3cr3t-tok" not in str(fields)


def _readme_recipe(title: str) -> str:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split(f"### Recipe: {title}", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


_DRIVE_A_MACHINE = (
    "import statesock.machine as m, statesock.sources as s, statesock.transition_log as t\n"
    "mc = m.ConnectionMachine(lambda: 0.0)\n"
    "lg = t.TransitionLogger('feed-1')\n"
    "for r in [*mc.connect(), *mc.opened(), *mc.disconnect(s.UserInitiated()), *mc.closed()]:\n"
    "    lg(r)\n"
)


def test_the_readme_stdlib_recipe_shows_transitions_only(tmp_path: Path) -> None:
    code = _readme_recipe("standard library logging") + _DRIVE_A_MACHINE
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()  # basicConfig writes to stderr
    assert len(lines) == 4, lines
    assert all(" statesock transition client='feed-1' " in line for line in lines)


def test_the_readme_structlog_recipe_writes_what_statesock_logs_reads(tmp_path: Path) -> None:
    code = _readme_recipe("structlog JSON lines for `statesock logs`") + _DRIVE_A_MACHINE
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "transitions.jsonl").open()]
    assert [r["event"] for r in records] == ["transition"] * 4
    assert {r["run"] for r in records} == {records[0]["run"]}
    check = subprocess.run(
        [sys.executable, "-m", "statesock", "logs", "--check", "transitions.jsonl"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_secret_named_keys_inside_dict_fields_are_masked_at_any_depth() -> None:
    with capture_logs() as logs:
        emit(
            "warning",
            "decode_failed",
            message={"type": "auth", "token": "s3cr3t-tok"},
            nested={"outer": {"inner": {"api_key": "k3y-value", "user": "ann"}}},
            listed=[{"password": "hunter2"}, {"Client-Secret": b"hunter3"}],
            # Under a secret-named key every string is masked, containers included...
            credentials={"user": "ann", "pass": "hunter4"},
            tokens=["eyJ.one", "eyJ.two"],
            auth_pair=("Bearer", "eyJ.three"),
            # ... while numbers, flags and None stay: under such names they are counts,
            # timeouts and states, not secrets.
            counts={"token_refreshes": 3, "auth_timeout": 10.0, "session": None},
        )
    [entry] = logs
    assert entry["message"] == {"type": "auth", "token": "[REDACTED]"}
    assert entry["nested"] == {"outer": {"inner": {"api_key": "[REDACTED]", "user": "ann"}}}
    assert entry["listed"] == [{"password": "[REDACTED]"}, {"Client-Secret": "[REDACTED]"}]
    assert entry["credentials"] == {"user": "[REDACTED]", "pass": "[REDACTED]"}
    assert entry["tokens"] == ["[REDACTED]", "[REDACTED]"]
    assert entry["auth_pair"] == ["[REDACTED]", "[REDACTED]"]
    assert entry["counts"] == {"token_refreshes": 3, "auth_timeout": 10.0, "session": None}
    text = json.dumps(entry)
    for secret in ("s3cr3t-tok", "k3y-value", "hunter", "eyJ."):
        assert secret not in text


def test_a_secret_named_field_itself_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    emit("info", "network_status", token="s3cr3t-tok", session_key=b"k3y-value", attempt=2)
    [record] = caplog.records
    fields: dict[str, Any] = record.statesock  # type: ignore[attr-defined]
    assert fields == {"token": "[REDACTED]", "session_key": "[REDACTED]", "attempt": 2}
    assert "s3cr3t-tok" not in caplog.text and "k3y-value" not in caplog.text


def test_basic_credentials_in_free_text_never_reach_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    machine = _machine("c")
    machine.connect()
    machine.opened()
    [record] = machine.closed(ServerInitiated(4001, "proxy wanted Basic dXNlcjpodW50ZXIy"))
    assert "dXNlcjpodW50ZXIy" not in str(transition_fields("c", record))
    emit("warning", "callback_failed", error="retried with Basic aHVudGVyMg== and failed")
    assert "Basic [REDACTED]" in caplog.text
    assert "dXNlcjpodW50ZXIy" not in caplog.text and "aHVudGVyMg==" not in caplog.text


# -- websockets' own lines: formatted here, redacted, handed on as text only ---------------------


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def websockets_lines() -> Iterator[Lines]:
    logger = logging.getLogger("websockets.client")
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_websockets_line_is_formatted_redacted_and_labelled(websockets_lines: Lines) -> None:
    from statesock.transition_log import websockets_logger

    adapter = websockets_logger("c1")
    adapter.debug("> GET %s HTTP/1.1", "/?token=abc")
    adapter.debug("%d frames", "many")  # a format that does not fit: the parts, joined
    adapter.debug("100%% sure")  # no arguments: the text as it is, not formatted
    adapter.info("x" * 300, extra={"peer": "p"}, stack_info=True)
    first, second, percent, third = websockets_lines.records
    assert percent.getMessage() == "100%% sure"
    assert (first.msg, first.args) == ("%s", ("> GET /?token=[REDACTED] HTTP/1.1",))
    assert first.getMessage() == "> GET /?token=[REDACTED] HTTP/1.1"
    assert first.statesock_client == "c1"  # type: ignore[attr-defined]
    assert second.getMessage() == "%d frames many"
    assert third.getMessage() == "x" * 300  # no length bound on websockets' own lines
    assert third.peer == "p" and third.statesock_client == "c1"  # type: ignore[attr-defined]
    assert third.stack_info is None
    assert first.levelno == logging.DEBUG and third.levelno == logging.INFO


def test_a_websockets_exception_becomes_redacted_text(websockets_lines: Lines) -> None:
    from statesock.transition_log import websockets_logger

    adapter = websockets_logger("c1")
    adapter.error("failed", exc_info=ValueError("password=hunter2"))
    try:
        raise RuntimeError("y" * 9000)
    except RuntimeError:
        adapter.error("also failed", exc_info=True)
    adapter.error("no exception", exc_info=None)
    first, second, third = websockets_lines.records
    text = first.getMessage()
    assert text.startswith("failed\n") and text.endswith("ValueError: password=[REDACTED]")
    assert first.exc_info is None  # never the exception object itself
    long = second.getMessage()
    assert long.startswith("also failed\nTraceback (most recent call last):")
    rendered = long.removeprefix("also failed\n")
    assert re.fullmatch(r"(?s).{8000}… \(\d+ chars\)", rendered)  # cut at 8000 characters
    assert third.getMessage() == "no exception"


def test_a_disabled_websockets_level_formats_nothing(websockets_lines: Lines) -> None:
    from statesock.transition_log import websockets_logger

    logging.getLogger("websockets.client").setLevel(logging.WARNING)

    class Exploding:
        def __str__(self) -> str:
            raise AssertionError("formatted although nobody listens")

    websockets_logger("c1").debug("%s", Exploding())
    assert websockets_lines.records == []


def test_an_unknown_level_is_never_enabled() -> None:
    from statesock.transition_log import log_enabled

    assert log_enabled("verbose") is False


def test_the_library_logger_is_named_statesock(caplog: pytest.LogCaptureFixture) -> None:
    from statesock.transition_log import get_logger

    structlog.configure(logger_factory=structlog.stdlib.LoggerFactory())
    try:
        with caplog.at_level(logging.INFO, logger="statesock"):
            get_logger().info("hello")
    finally:
        structlog.reset_defaults()
    assert [r.name for r in caplog.records] == ["statesock"]


def test_transition_fields_round_to_microseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    from statesock.machine import StateChange, Trigger
    from statesock.states import ConnectionState as S
    from statesock.transition_log import transition_fields

    monkeypatch.setattr(time, "time", lambda: 1700000000.1234567)
    record = StateChange(S.INITIALIZED, S.CONNECTING, Trigger.CONNECT, None, 1, 1.23456789,
                         0.00123456)  # fmt: skip
    fields = transition_fields("c", record)
    assert fields["in_state_ms"] == 1.235
    assert fields["at"] == 1.234568
    assert fields["ts"] == 1700000000.123457


# -- what emit() makes of each kind of field -----------------------------------------------------


class Opaque:
    def __str__(self) -> str:
        return "opaque password=hunter2"


class Long:
    def __str__(self) -> str:
        return "o" * 1500


def test_every_kind_of_field_reaches_the_renderer_safe() -> None:
    from statesock.transition_log import emit

    with capture_logs() as logs:
        emit(
            "info",
            "fields",
            n=3, f=1.5, flag=True, none=None, token_refreshes=3,
            text="token=abc", data=b"raw bytes", error=ValueError("password=p"),
            mapping={"token": "t", "count": 2, "nested": {"api_key": ["a", 1], "fine": ["b"]}},
            pairs=[("Authorization", "Bearer x"), ("X-A", "1")], items=["a", "b", "c"],
            other=Opaque(), holder={"session": Opaque(), "why": ValueError("x")},
            long="y" * 1500, api_key="k", token=ValueError("leaked"),
            sent=[("X-Api-Key", "plain"), ("Accept", "json")],
            credentials=["a", "b", "c"], long_error=ValueError("e" * 1500), long_other=Long(),
        )  # fmt: skip
    [entry] = logs
    assert entry == {
        "event": "fields", "log_level": "info",
        "n": 3, "f": 1.5, "flag": True, "none": None, "token_refreshes": 3,
        "text": "token=[REDACTED]", "data": "raw bytes", "error": "ValueError: password=[REDACTED]",
        "mapping": {"token": "[REDACTED]", "count": 2,
                    "nested": {"api_key": ["[REDACTED]", 1], "fine": ["b"]}},
        "pairs": [["Authorization", "[REDACTED]"], ["X-A", "1"]], "items": ["a", "b", "c"],
        "other": "opaque password=[REDACTED]",
        "holder": {"session": "[REDACTED]", "why": "ValueError: x"},
        "long": "y" * 1000 + "… (1500 chars)", "api_key": "[REDACTED]", "token": "[REDACTED]",
        "sent": [["X-Api-Key", "[REDACTED]"], ["Accept", "json"]],
        "credentials": ["[REDACTED]"] * 3,
        "long_error": "ValueError: " + "e" * 988 + "… (1512 chars)",
        "long_other": "o" * 1000 + "… (1500 chars)",
    }  # fmt: skip


def test_an_exception_from_exc_info_becomes_the_exception_field_cut_at_8000() -> None:
    import sys as system

    from statesock.transition_log import emit

    with capture_logs() as logs:
        try:
            raise ValueError("boom " + "z" * 9000)
        except ValueError:
            emit("error", "failed", exc_info=system.exc_info(), stack_info=True)
    [entry] = logs
    assert "stack_info" not in entry and "exc_info" not in entry
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert re.fullmatch(r"(?s).{8000}… \(\d+ chars\)", entry["exception"])


def test_through_the_standard_library_the_message_lists_the_fields_then_the_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from statesock.transition_log import emit, log_enabled

    with caplog.at_level(logging.INFO, logger="statesock"):
        assert log_enabled(logging.INFO) and log_enabled("info")
        assert not log_enabled(logging.DEBUG)
        emit("info", "plain", a=1, b="two")
        try:
            raise ValueError("bad")
        except ValueError as exc:
            emit("warning", "with_error", a=1, exc_info=exc)
    plain, failed = caplog.records
    assert plain.getMessage() == "plain a=1 b='two'"
    assert plain.statesock == {"a": 1, "b": "two"}  # type: ignore[attr-defined]
    text = failed.getMessage()
    assert text.startswith("with_error a=1\nTraceback (most recent call last):")
    assert text.endswith("ValueError: bad")
    assert "exception=" not in text


# -- the bound structlog logger: bound once per configuration ---------------------------------


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """No logger bound yet, as in a process that has logged nothing."""
    monkeypatch.setattr(transition_log, "_bound", None)


@pytest.mark.usefixtures("fresh_process")
def test_the_first_and_later_records_under_one_configuration_share_one_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    structlog.configure(
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        processors=[structlog.stdlib.render_to_log_kwargs],
    )
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        _machine("one").connect()
        _machine("two").connect()
    assert [r.name for r in caplog.records] == [LOGGER_NAME, LOGGER_NAME]  # none lost
    first = transition_log._structlog_bound()[1]
    assert transition_log._structlog_bound()[1] is first  # bound once
    # The logger itself, as the configuration wraps it (not the level check cached with it).
    assert isinstance(first, structlog.stdlib.BoundLogger)
    assert first.name == LOGGER_NAME


@pytest.mark.usefixtures("fresh_process")
def test_a_new_configuration_gets_a_new_logger_at_its_own_level() -> None:
    out = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.JSONRenderer()],
        logger_factory=structlog.WriteLoggerFactory(file=out),
    )
    _machine("before").connect()
    before = transition_log._structlog_bound()[1]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    _machine("filtered").connect()
    assert transition_log._structlog_bound()[1] is not before
    clients = [json.loads(line)["client"] for line in out.getvalue().splitlines()]
    assert clients == ["before"]  # the WARNING filter of the new configuration holds


# -- the level check asks the app's structlog wrapper in the way it answers ----------------------
#
# A structlog wrapper says which levels it writes in one of three ways: is_enabled_for()
# (structlog's filtering loggers, and its stdlib BoundLogger from 26.1), isEnabledFor() (the
# stdlib BoundLogger before 26.1, and stdlib-style wrappers), or, for the filtering loggers of
# structlog before 25.1, by making a disabled level's method structlog's shared no-op. A wrapper
# that says none of these is taken to write every level.

_WARNING_AND_UP = structlog.make_filtering_bound_logger(logging.WARNING)


class _SnakeCaseCheck(structlog.BoundLoggerBase):
    """A FilteringBoundLogger-style wrapper: it writes WARNING and up, says so only through
    is_enabled_for(), and its INFO method is a real one."""

    def is_enabled_for(self, level: int) -> bool:
        return level >= logging.WARNING

    def info(self, event: str, **kw: Any) -> Any:
        return self._proxy_to_logger("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> Any:
        return self._proxy_to_logger("warning", event, **kw)


class _CamelCaseCheck(structlog.BoundLoggerBase):
    """A stdlib-style wrapper: it writes WARNING and up and says so only through
    isEnabledFor()."""

    def isEnabledFor(self, level: int) -> bool:
        return level >= logging.WARNING

    def info(self, event: str, **kw: Any) -> Any:
        return self._proxy_to_logger("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> Any:
        return self._proxy_to_logger("warning", event, **kw)


class _BeforeIsEnabledFor(structlog.BoundLoggerBase):
    """What make_filtering_bound_logger(WARNING) made before structlog 25.1: no level check
    method; a disabled level's method is structlog's shared no-op."""

    debug = _WARNING_AND_UP.debug
    info = _WARNING_AND_UP.info
    warning = _WARNING_AND_UP.warning


class _NoCheck(structlog.BoundLoggerBase):
    """A wrapper with level methods and no way to say a level is off."""

    def info(self, event: str, **kw: Any) -> Any:
        return self._proxy_to_logger("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> Any:
        return self._proxy_to_logger("warning", event, **kw)


class _MethodsOnTheFly(structlog.BoundLoggerBase):
    """A wrapper that makes its level methods when asked for them (the class has none), and
    has no level check."""

    def __getattr__(self, name: str) -> Any:
        if name in ("debug", "info", "warning", "error", "critical"):
            return functools.partial(self._proxy_to_logger, name)
        raise AttributeError(name)


def _logged_through(wrapper: type[structlog.BoundLoggerBase]) -> list[str]:
    """Configure structlog with ``wrapper``, log a transition, an INFO and a WARNING event,
    and return the events that reached the processors."""
    capture = LogCapture()
    structlog.configure(wrapper_class=wrapper, processors=[capture])
    _machine().connect()
    emit("info", "info_event")
    emit("warning", "warning_event")
    return [str(entry["event"]) for entry in capture.entries]


@pytest.mark.parametrize("wrapper", [_SnakeCaseCheck, _CamelCaseCheck, _BeforeIsEnabledFor])
def test_a_wrapper_that_says_info_is_off_is_believed(
    wrapper: type[structlog.BoundLoggerBase],
) -> None:
    """Rule: whichever way the wrapper says INFO is off (is_enabled_for, isEnabledFor, or the
    no-op method of structlog before 25.1), INFO is off: no transition, no INFO event."""
    assert _logged_through(wrapper) == ["warning_event"]
    assert not log_enabled("info") and not log_enabled(logging.INFO)
    assert log_enabled("warning")


@pytest.mark.parametrize("wrapper", [_NoCheck, _MethodsOnTheFly, structlog.BoundLogger])
def test_a_wrapper_that_cannot_say_a_level_is_off_gets_every_record(
    wrapper: type[structlog.BoundLoggerBase],
) -> None:
    """Rule: a wrapper without is_enabled_for, isEnabledFor or no-op methods writes every
    level: the transition and both events reach it."""
    assert _logged_through(wrapper) == ["transition", "info_event", "warning_event"]
    assert log_enabled("info") and log_enabled("warning")


def test_structlogs_generic_wrapper_over_stdlib_filters_by_the_stdlib_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Rule: structlog's generic BoundLogger answers any method name, so statesock never
    asks it for a level check (that would be a record named "is_enabled_for", which stdlib's
    filter_by_level refuses, losing every statesock record): with stdlib at WARNING, the
    warning is written and the INFO event is not."""
    structlog.configure(
        wrapper_class=structlog.BoundLogger,
        processors=[structlog.stdlib.filter_by_level, structlog.processors.KeyValueRenderer()],
        logger_factory=structlog.stdlib.LoggerFactory(),
    )
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        emit("info", "info_event")
        emit("warning", "warning_event")
    assert [record.getMessage() for record in caplog.records] == ["event='warning_event'"]


# -- the transition logger's fields are cleaned once ---------------------------------------------


def test_a_long_client_label_is_cut_once_at_1000_and_says_its_real_length(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Rule: the client label is redacted and cut to 1000 characters once, when the logger is
    made; a record's fields are not cleaned again, so the note gives the label's own length
    (1500), not that of the already cut text."""
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        _machine("L" * 1500).connect()
    [record] = caplog.records
    fields: dict[str, Any] = record.statesock  # type: ignore[attr-defined]
    assert fields["client"] == "L" * 1000 + "… (1500 chars)"


# -- a stdlib record's text is an argument, never a format ---------------------------------------


def test_field_text_is_never_a_format_string(caplog: pytest.LogCaptureFixture) -> None:
    """Rule: a stdlib record's format is "%s" and statesock's text its one argument, so a %
    in a field (a server's close reason, say) is never read as a format directive, neither by
    logging nor by a handler that interpolates ``msg % args`` itself."""
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        emit("info", "closed", reason="100% %s %(x)d")
    [record] = caplog.records
    assert (record.msg, record.args) == ("%s", ("closed reason='100% %s %(x)d'",))
    assert record.msg % record.args == record.getMessage()
