"""No planted secret reaches any log line, whatever renderer the app configured.

A real client connects to a loopback server with secrets planted everywhere a user's
credentials go: the URL's query (``token``, ``api_key``) and userinfo (whose Basic encoding
websockets also sends), ``Authorization`` / ``Cookie`` / ``X-Api-Key`` headers, the auth
message, the text of an exception the auth hook raises, the server's close reason and a failing
network-monitor callback. Every line of every logger is captured (structlog's output and the
standard library's root logger at DEBUG, which also sees websockets, asyncio and transitions)
and grepped for each secret.

Renderers: structlog ``ConsoleRenderer``; ``JSONRenderer`` after ``format_exc_info``;
``JSONRenderer`` after ``dict_tracebacks``; structlog through the standard library with
``ProcessorFormatter``; and structlog left unconfigured with stdlib logging at DEBUG and a plain
formatter.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from websockets.asyncio.client import connect

from statesock import (
    ConnectFailed,
    ConnectionState,
    ManualNetworkMonitor,
    StateChange,
    WebSocketClient,
)
from statesock.testing import TestServer, decode_message
from statesock.transition_log import websockets_logger
from tests.conftest import run_virtual

QUERY_TOKEN = "QTOKEN1111"
QUERY_KEY = "QAPIKEY2222"
URL_PASSWORD = "UPASS3333"
HEADER_BEARER = "HBEARER4444"
HEADER_COOKIE = "HCOOKIE5555"
HEADER_KEY = "HKEY6666"
MESSAGE_TOKEN = "MTOKEN7777"
EXCEPTION_PASSWORD = "EXPASS8888"
CLOSE_TOKEN = "CLOSE9999"
NETWORK_KEY = "NETKEY0000"
SECRETS = [
    QUERY_TOKEN,
    QUERY_KEY,
    URL_PASSWORD,
    base64.b64encode(f"ann:{URL_PASSWORD}".encode()).decode(),
    HEADER_BEARER,
    HEADER_COOKIE,
    HEADER_KEY,
    MESSAGE_TOKEN,
    EXCEPTION_PASSWORD,
    CLOSE_TOKEN,
    NETWORK_KEY,
]
HEADERS = {
    "Authorization": f"Bearer {HEADER_BEARER}",
    "Cookie": f"sid={HEADER_COOKIE}; theme=dark",
    "X-Api-Key": HEADER_KEY,
}


class Capture:
    """Everything written by structlog and by every stdlib logger, as lines."""

    def __init__(self) -> None:
        self.structlog_out = io.StringIO()
        self.stdlib_out = io.StringIO()

    def lines(self) -> list[str]:
        return (self.structlog_out.getvalue() + self.stdlib_out.getvalue()).splitlines()


@pytest.fixture
def capture() -> Iterator[Capture]:
    cap = Capture()
    handler = logging.StreamHandler(cap.stdlib_out)
    # The loopback TestServer's own websockets logger is the test's, not the library's.
    handler.addFilter(lambda record: not record.name.startswith("websockets.server"))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    structlog.reset_defaults()
    try:
        yield cap
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        structlog.reset_defaults()


def _console(cap: Capture, handler: logging.Handler) -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=cap.structlog_out),
    )


def _json_format_exc_info(cap: Capture, handler: logging.Handler) -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=cap.structlog_out),
    )


def _json_dict_tracebacks(cap: Capture, handler: logging.Handler) -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=cap.structlog_out),
    )


def _structlog_through_stdlib(cap: Capture, handler: logging.Handler) -> None:
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=structlog.dev.ConsoleRenderer(colors=False),
            foreign_pre_chain=[structlog.stdlib.add_log_level],
        )
    )


def _stdlib_only(cap: Capture, handler: logging.Handler) -> None:
    """structlog left unconfigured: statesock writes to the stdlib logger."""


RENDERERS: dict[str, Callable[[Capture, logging.Handler], None]] = {
    "structlog-console": _console,
    "structlog-json-format_exc_info": _json_format_exc_info,
    "structlog-json-dict_tracebacks": _json_dict_tracebacks,
    "structlog-via-stdlib-processorformatter": _structlog_through_stdlib,
    "stdlib-debug-plain": _stdlib_only,
}


async def _leaky_session() -> None:
    async with TestServer() as server:
        server.close_on_auth = (1008, f"rejected token={CLOSE_TOKEN}")
        url = (
            f"ws://ann:{URL_PASSWORD}@127.0.0.1:{server.port}/connect"
            f"?token={QUERY_TOKEN}&api_key={QUERY_KEY}&v=1"
        )

        async def authenticate(client: Any) -> None:
            await client.send({"type": "auth", "token": MESSAGE_TOKEN})
            raise RuntimeError(f"auth rejected: password={EXCEPTION_PASSWORD}")

        client = WebSocketClient(
            url,
            decode_message,
            on_connection_established=authenticate,
            headers=HEADERS,
            proxy=None,
        )
        down = asyncio.Event()

        def listen(record: object) -> None:
            if isinstance(record, StateChange) and record.current is ConnectionState.DISCONNECTED:
                down.set()

        client.add_listener(listen)
        with contextlib.suppress(ConnectFailed):
            await client.connect()
        await asyncio.wait_for(down.wait(), 30)
        await client.close()
        assert server.received and server.received[0] == {"type": "auth", "token": MESSAGE_TOKEN}

    def failing_callback(available: bool) -> None:
        raise ValueError(f"cannot reach the status API with api_key={NETWORK_KEY}")

    monitor = ManualNetworkMonitor()
    monitor.subscribe(failing_callback)
    monitor.set_available(False)


def _leaks(lines: list[str]) -> list[tuple[str, str]]:
    return [(secret, line) for line in lines for secret in SECRETS if secret in line]


@pytest.mark.parametrize("renderer", list(RENDERERS))
def test_no_secret_reaches_any_log_line(capture: Capture, renderer: str) -> None:
    handler = logging.getLogger().handlers[-1]
    RENDERERS[renderer](capture, handler)
    run_virtual(_leaky_session())
    lines = capture.lines()
    text = "\n".join(lines)
    # The session produced the records whose leaks this test looks for.
    assert "transition" in text
    assert "callback_failed" in text
    assert "network_callback_failed" in text
    assert "Traceback" in text or '"frames"' in text
    assert "REDACTED" in text
    assert not _leaks(lines), _leaks(lines)


@pytest.mark.transports(
    "websockets", reason="about websockets' own logger; picows's lines: tests/test_picows.py"
)
def test_websockets_debug_lines_are_redacted(capture: Capture) -> None:
    run_virtual(_leaky_session())
    lines = [line for line in capture.lines() if " websockets." in line]
    text = "\n".join(lines)
    assert "> GET /connect?" in text, "the client gave websockets no logger of its own"
    assert "> TEXT" in text and "< CLOSE" in text
    assert not _leaks(lines), _leaks(lines)


async def _raw_connect(logger: logging.LoggerAdapter | None) -> None:  # type: ignore[type-arg]
    async with TestServer() as server:
        server.close_on_auth = (1008, f"rejected token={CLOSE_TOKEN}")
        url = f"ws://ann:{URL_PASSWORD}@127.0.0.1:{server.port}/c?token={QUERY_TOKEN}"
        kwargs: dict[str, Any] = {} if logger is None else {"logger": logger}
        async with connect(url, additional_headers=HEADERS, proxy=None, **kwargs) as ws:
            await ws.send(f'{{"type": "auth", "token": "{MESSAGE_TOKEN}"}}')
            with contextlib.suppress(Exception):
                await ws.recv()


@pytest.mark.transports(
    "websockets", reason="about websockets' own logger; picows's lines: tests/test_picows.py"
)
def test_websockets_logger_redacts_request_headers_frames_and_close_reason(
    capture: Capture,
) -> None:
    run_virtual(_raw_connect(websockets_logger("raw")))
    lines = [line for line in capture.lines() if "websockets.client" in line]
    text = "\n".join(lines)
    assert "> GET /c?token=[REDACTED] HTTP/1.1" in text
    assert "> Authorization: [REDACTED]" in text
    assert "> Cookie: [REDACTED]" in text
    assert "> X-Api-Key: [REDACTED]" in text
    assert "token=[REDACTED]" in text  # the close reason
    assert not _leaks(lines), _leaks(lines)


@pytest.mark.transports(
    "websockets", reason="about websockets' own logger; picows's lines: tests/test_picows.py"
)
def test_websockets_own_logger_would_leak_which_is_why_statesock_replaces_it(
    capture: Capture,
) -> None:
    run_virtual(_raw_connect(None))
    leaked = {secret for secret, _ in _leaks(capture.lines())}
    assert {QUERY_TOKEN, HEADER_BEARER, HEADER_COOKIE, MESSAGE_TOKEN} <= leaked
