"""The engine: URL validation, exception mapping at the boundary, per-attempt headers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import email.utils
import errno
import gc
import hashlib
import json
import logging
import re
import socket
import ssl
import struct
import sys
import time
import types
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import InvalidMessage, InvalidStatus, InvalidURI, ProtocolError
from websockets.http11 import Response
from websockets.protocol import State

from statesock import engine as engine_module
from statesock.client import WebSocketClient
from statesock.engine import (
    ALREADY_DONE,
    EngineConfig,
    SocketHandle,
    _wake,
    connect_socket,
    connect_tcp,
    make_engine,
    map_exception,
    numeric_address,
    validate_url,
)
from statesock.exceptions import (
    ConfigurationError,
    ConnectFailed,
    ConnectionFailure,
    ConnectionLost,
    ConnectionRefused,
    ConnectTimeout,
    HandshakeRejected,
    InvalidURL,
    MessageTooLarge,
    NameResolutionFailed,
    NotConnectedError,
    ProtocolViolation,
    TLSFailure,
)
from statesock.machine import ConnectionState
from statesock.sources import ServerInitiated, Timeout, default_reconnect_policy
from statesock.testing import AppEvent, TestServer, auth_hook, decode_message
from tests import conftest
from tests.conftest import virtual_time

S = ConnectionState


@pytest.mark.parametrize(
    "url",
    ["ws://127.0.0.1:8080/", "wss://example.test/connect?x=1", "ws://[::1]:9/path", "ws://h"],
)
def test_valid_urls_pass(url: str) -> None:
    assert validate_url(url) == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "non-empty"),
        ("https://example.test/", "must use ws:// or wss://"),
        ("example.test", "must use ws:// or wss://"),
        ("ws://", "has no host"),
        ("ws://h:70000/", "malformed"),
        ("ws://h:0/", "port 0"),
        ("ws://h/#top", "fragment"),
        ("wss://u:hunter2@h:99999/", "malformed"),
    ],
)
def test_invalid_urls_raise_a_clear_error(url: str, message: str) -> None:
    with pytest.raises(InvalidURL, match=message) as info:
        validate_url(url)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "scheme"), [("example.test/x", "'nothing'"), ("https://example.test/", "'https'")]
)
def test_a_url_of_another_scheme_is_refused_naming_the_scheme_it_has(url: str, scheme: str) -> None:
    with pytest.raises(InvalidURL) as info:
        validate_url(url)
    assert str(info.value) == f"URL {url!r} must use ws:// or wss://, not {scheme}"


@pytest.mark.parametrize("char", [" ", "\r", "\n", "\t", "\u200b", "\u2028", "\u00a0", "\x00"])
def test_a_url_with_whitespace_or_a_control_or_format_character_is_refused(char: str) -> None:
    """Rule: no whitespace, control, format or separator character anywhere in the URL (a
    zero-width space is no whitespace to str.isspace(), yet reads as nothing in a log); the
    error names the character and shows the URL redacted."""
    url = f"ws://h/path?token=hunter2&x={char}y"
    with pytest.raises(InvalidURL) as info:
        validate_url(url)
    assert str(info.value).startswith(
        f"url must not contain whitespace or control characters ({char!r}; percent-encode it), "
        "not 'ws://h/path?token="
    )
    assert "hunter2" not in str(info.value)


def test_a_url_with_other_unicode_letters_passes() -> None:
    assert validate_url("ws://h/caf\u00e9/\u65e5\u672c") == "ws://h/caf\u00e9/\u65e5\u672c"


def test_make_engine_defaults_to_websockets_and_refuses_an_unknown_transport() -> None:
    config = engine_for("ws://h/").config
    assert type(make_engine(config, "x")).__name__ == "WebSocketEngine"
    with pytest.raises(ConfigurationError) as info:
        make_engine(config, "x", "carrier-pigeon")
    assert str(info.value) == "unknown transport 'carrier-pigeon' (one of 'websockets', 'picows')"


def _response(status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(status, "x", Headers(headers or {}), b"go away")


@pytest.mark.transports(
    "websockets", reason="maps websockets' exceptions; picows's mapping: tests/test_picows.py"
)
@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (InvalidURI("x", "bad"), InvalidURL),
        (InvalidStatus(_response(403)), HandshakeRejected),
        (ProtocolError("bad frame"), ProtocolViolation),
        (ssl.SSLCertVerificationError("certificate verify failed"), TLSFailure),
        (ssl.SSLError("wrong version"), TLSFailure),
        (socket.gaierror(-2, "Name or service not known"), NameResolutionFailed),
        (ConnectionRefusedError(111, "refused"), ConnectionRefused),
        (TimeoutError("slow"), ConnectTimeout),
        (ConnectionResetError(104, "reset"), ConnectionLost),
        (ValueError("ssl=None is incompatible with a wss:// URI"), ConfigurationError),
        (TypeError("unexpected keyword"), ConfigurationError),
        (RuntimeError("odd"), ConnectionLost),
    ],
)
def test_foreign_exceptions_are_mapped_with_their_cause(
    exc: BaseException, kind: type[Exception]
) -> None:
    mapped = map_exception(exc)
    assert isinstance(mapped, kind)
    assert mapped.__cause__ is exc


@pytest.mark.transports(
    "websockets", reason="maps websockets' exceptions; picows's mapping: tests/test_picows.py"
)
def test_handshake_eof_is_a_lost_connection() -> None:
    exc = InvalidMessage("did not receive a valid HTTP response")
    exc.__cause__ = EOFError("connection closed")
    assert isinstance(map_exception(exc), ConnectionLost)


@pytest.mark.transports(
    "websockets", reason="maps websockets' exceptions; picows's mapping: tests/test_picows.py"
)
def test_tls_certificate_errors_stop_and_other_tls_errors_retry() -> None:
    cert = map_exception(ssl.SSLCertVerificationError("certificate verify failed"))
    other = map_exception(ssl.SSLError("wrong version"))
    assert not default_reconnect_policy(ServerInitiated(error=cert))
    assert default_reconnect_policy(ServerInitiated(error=other))


@pytest.mark.transports(
    "websockets", reason="maps websockets' exceptions; picows's mapping: tests/test_picows.py"
)
@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0", 0.0), ("soon", None), (None, None)],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    mapped = map_exception(InvalidStatus(_response(503, headers)))
    assert isinstance(mapped, HandshakeRejected)
    assert mapped.retry_after == expected
    assert mapped.body == "go away"


@pytest.mark.transports(
    "websockets", reason="maps websockets' exceptions; picows's mapping: tests/test_picows.py"
)
def test_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    mapped = map_exception(InvalidStatus(_response(429, {"Retry-After": when})))
    assert isinstance(mapped, HandshakeRejected)
    assert mapped.retry_after == pytest.approx(120, abs=2)


@virtual_time
async def test_headers_and_query_callables_are_evaluated_on_every_attempt() -> None:
    tokens = iter(["tok-1", "tok-2"])
    current: dict[str, str] = {}

    def query() -> dict[str, str]:
        current["token"] = next(tokens)
        return {"token": current["token"]}

    async def headers() -> dict[str, str]:
        return {"X-Attempt-Token": current["token"]}

    async with TestServer() as server:
        client = WebSocketClient(
            server.url + "?v=2",
            decode_message,
            on_connection_established=auth_hook("t"),
            headers=headers,
            query_params=query,
        )
        await client.connect()
        await client.disconnect()
        await client.connect()
        assert server.request_paths == ["/?v=2&token=tok-1", "/?v=2&token=tok-2"]
        assert [h["X-Attempt-Token"] for h in server.request_headers] == ["tok-1", "tok-2"]
        await client.close()


@virtual_time
async def test_subprotocol_is_negotiated() -> None:
    async with TestServer(subprotocols=["graphql-transport-ws"]) as server:
        client = WebSocketClient(
            server.url,
            decode_message,
            on_connection_established=auth_hook("t"),
            subprotocols=["graphql-transport-ws"],
        )
        await client.connect()
        assert client.subprotocol == "graphql-transport-ws"
        await client.close()


@virtual_time
async def test_a_message_over_our_max_size_is_labelled_as_such_not_as_a_server_close() -> None:
    async with TestServer() as server:
        client = WebSocketClient(
            server.url, decode_message, on_connection_established=auth_hook("t"), max_size=1000
        )
        await client.connect()
        await server.send_burst(1, size=5000)
        await asyncio.sleep(1)
        source = client.state.source
        assert isinstance(source, ServerInitiated)
        assert source.close_code is None  # the server closed nothing: our limit did
        assert isinstance(source.error, MessageTooLarge)
        assert "max_size (1000 bytes)" in source.close_reason
        # Documented default: reconnect with backoff (a later message may fit).
        assert default_reconnect_policy(source)
        await client.close()


async def _garbage_http_server(reply: bytes) -> tuple[asyncio.Server, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (b"\x00\x01\x02 this is not HTTP\r\n\r\n", ProtocolViolation),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", HandshakeRejected),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: nope\r\n\r\n", ProtocolViolation),
        (b"", ConnectionLost),
    ],
)
def test_a_server_that_speaks_garbage_fails_cleanly(reply: bytes, kind: type[Exception]) -> None:
    async def scenario() -> Any:
        server, url = await _garbage_http_server(reply)
        client = WebSocketClient(url, decode_message)
        with pytest.raises(ConnectFailed) as info:
            await client.connect()
        await client.close()
        server.close()
        await server.wait_closed()
        return info.value.source

    from tests.conftest import run_virtual

    source = run_virtual(scenario())
    assert isinstance(source, ServerInitiated)
    assert isinstance(source.error, kind)


# -- each socket reports exactly one close ---------------------------------------------------


class ReportLog:
    """A SocketListener that lists every report as (what, handle id, details)."""

    def __init__(self) -> None:
        self.reports: list[tuple[Any, ...]] = []

    def socket_opened(self, handle: SocketHandle) -> None:
        self.reports.append(("opened", handle.id))

    def socket_alive(self, handle: SocketHandle, pong: bool) -> None:
        pass

    def socket_message(self, handle: SocketHandle, data: str | bytes) -> None:
        self.reports.append(("message", handle.id))

    def socket_closed(
        self, handle: SocketHandle, code: int | None, reason: str, error: Exception | None
    ) -> None:
        self.reports.append(("closed", handle.id, code, reason, error))

    def closes(self) -> list[tuple[Any, ...]]:
        return [r for r in self.reports if r[0] == "closed"]


def engine_for(url: str) -> Any:  # the running test's transport's engine
    config = EngineConfig(
        url=url, subprotocols=(), headers=None, query_params=None, ssl=None, max_size=2**20,
        compression=False, close_timeout=1.0, protocol_keepalive=None, before_attempt=None,
        proxy=None, logger=None,
    )  # fmt: skip
    return make_engine(config, "engine-test", conftest.CURRENT_TRANSPORT)


async def settle() -> None:
    """Let every report that is coming arrive (and any second one show itself)."""
    for _ in range(5):
        await asyncio.sleep(0)
    await asyncio.sleep(10)


@pytest.mark.parametrize("how", ["close", "abort"])
@virtual_time
async def test_a_socket_stopped_before_its_first_step_still_reports_its_close(how: str) -> None:
    async with TestServer() as server:
        engine = engine_for(server.url)
        listener = ReportLog()
        handle = engine.open(listener)
        if how == "close":
            handle.close(1000, "", 1.0)
        else:
            handle.abort()
        await settle()
        # Asked for: a close without an error, and without a code (it never opened).
        assert listener.reports == [("closed", handle.id, None, "", None)]
        assert engine.sockets == 0 and server.handshakes == 0


@virtual_time
async def test_a_socket_task_cancelled_by_someone_else_reports_an_unexpected_loss() -> None:
    async with TestServer() as server:
        engine = engine_for(server.url)
        listener = ReportLog()
        handle = engine.open(listener)
        assert handle._task is not None
        handle._task.cancel()
        await settle()
        [(_, number, code, reason, error)] = listener.reports
        assert (number, code, reason) == (handle.id, None, "")
        assert isinstance(error, ConnectionLost)
        assert str(error) == "the socket task ended unexpectedly"


@virtual_time
async def test_a_server_close_is_reported_once() -> None:
    async with TestServer() as server:
        engine = engine_for(server.url)
        listener = ReportLog()
        handle = engine.open(listener)
        await server.wait_for_connections()
        await asyncio.sleep(0.1)
        await server.close_all(1011, "boom")
        await settle()
        assert listener.reports == [
            ("opened", handle.id),
            ("closed", handle.id, 1011, "boom", None),
        ]
        assert engine.sockets == 0


@virtual_time
async def test_a_close_we_asked_for_is_reported_once() -> None:
    async with TestServer() as server:
        engine = engine_for(server.url)
        listener = ReportLog()
        handle = engine.open(listener)
        await server.wait_for_connections()
        await asyncio.sleep(0.1)
        handle.close(1000, "bye", 1.0)
        await settle()
        assert listener.closes() == [("closed", handle.id, 1000, "bye", None)]
        await engine.aclose()


@virtual_time
async def test_a_socket_that_never_opens_reports_one_close_with_its_failure() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    engine = engine_for(f"ws://127.0.0.1:{port}/")
    listener = ReportLog()
    handle = engine.open(listener)
    await settle()
    [(_, number, code, reason, error)] = listener.reports
    assert (number, code, reason) == (handle.id, None, "")
    assert isinstance(error, ConnectionRefused)


@virtual_time
async def test_a_socket_that_fails_while_opening_is_reported_once_through_the_client() -> None:
    async with TestServer() as server:
        server.reject_status = 503
        client = WebSocketClient(server.url, decode_message)
        closes: list[object] = []
        real = client.socket_closed

        def counting(
            handle: SocketHandle, code: int | None, reason: str, error: ConnectionFailure | None
        ) -> None:
            closes.append(handle.id)
            real(handle, code, reason, error)

        client.socket_closed = counting  # type: ignore[method-assign]
        with pytest.raises(ConnectFailed):
            await client.connect()
        await settle()
        assert len(closes) == 1
        await client.close()


# -- what the engine's errors say ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (InvalidURI("x", "bad"), "x isn't a valid URI: bad"),
        (ProtocolError("bad frame"), "ProtocolError: bad frame"),
        (
            ssl.SSLCertVerificationError("certificate verify failed"),
            "TLS certificate verification failed: ('certificate verify failed',)",
        ),
        (ssl.SSLError("wrong version"), "TLS handshake failed: ('wrong version',)"),
        (
            socket.gaierror(-2, "Name or service not known"),
            "host name did not resolve: [Errno -2] Name or service not known",
        ),
        (ConnectionRefusedError(111, "refused"), "connection refused: [Errno 111] refused"),
        (TimeoutError("slow"), "slow"),
        (TimeoutError(), "timed out"),
        (ConnectionResetError(104, "reset"), "ConnectionResetError: [Errno 104] reset"),
        (ValueError("x"), "invalid connection settings: ValueError: x"),
        (RuntimeError("odd"), "unexpected RuntimeError: odd"),
    ],
)
def test_a_mapped_exception_says_what_failed(exc: BaseException, text: str) -> None:
    assert str(map_exception(exc)) == text


def test_a_lost_handshake_and_the_tls_verdicts_are_stated() -> None:
    lost = InvalidMessage("did not receive a valid HTTP response")
    lost.__cause__ = EOFError("connection closed")
    assert str(map_exception(lost)) == (
        "connection closed during the handshake: did not receive a valid HTTP response"
    )
    certificate = map_exception(ssl.SSLCertVerificationError("certificate verify failed"))
    other = map_exception(ssl.SSLError("wrong version"))
    assert isinstance(certificate, TLSFailure) and isinstance(other, TLSFailure)
    assert (certificate.certificate, other.certificate) == (True, False)


def test_a_rejected_handshake_keeps_200_characters_of_the_body_decoded_leniently() -> None:
    body = b"\xff" + b"x" * 300
    rejected = map_exception(InvalidStatus(Response(503, "x", Headers({}), body)))
    assert isinstance(rejected, HandshakeRejected)
    assert rejected.body == "\ufffd" + "x" * 199
    empty = map_exception(InvalidStatus(Response(403, "x", Headers({}), b"")))
    assert isinstance(empty, HandshakeRejected) and empty.body == ""


def test_a_retry_after_date_in_the_past_means_now() -> None:
    when = email.utils.formatdate(time.time() - 120, usegmt=True)
    mapped = map_exception(InvalidStatus(_response(503, {"Retry-After": when})))
    assert isinstance(mapped, HandshakeRejected) and mapped.retry_after == 0.0


def test_a_send_on_a_closed_socket_says_it_closed_first() -> None:
    from websockets.exceptions import ConnectionClosedError
    from websockets.frames import Close

    from statesock.engine import send_failure

    closed = ConnectionClosedError(Close(1011, "boom"), None)
    failure = send_failure(closed)
    assert isinstance(failure, ConnectionLost)
    assert str(failure) == f"the socket closed before the message was sent: {closed}"
    other = KeyError("x")
    assert send_failure(other) is other


# -- a socket's own sends and closes ----------------------------------------------------------


@virtual_time
async def test_a_handle_sends_once_open_and_refuses_before() -> None:
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
    async with TestServer(require_auth=False) as server:
        engine = engine_for(server.url)
        listener = ReportLog()
        handle = engine.open(listener)
        with pytest.raises(NotConnectedError) as refused:
            await handle.send("too early")
        assert refused.value.state == "no socket"
        await server.wait_for_connections()
        await asyncio.sleep(0.1)
        await handle.send("hello")
        await asyncio.sleep(0.1)
        assert "hello" in server.received
        handle.close(1000, "bye", 1.0)
        if conftest.CURRENT_TRANSPORT == "websockets":  # its close handshake is a named task
            closers = [t.get_name() for t in asyncio.all_tasks() if "close" in t.get_name()]
            assert closers == [f"statesock-close-engine-test-{handle.id}"]
        await settle()
        await engine.aclose()
    assert errors == []  # nothing left for the loop's exception handler


class AliveLog(ReportLog):
    def __init__(self) -> None:
        super().__init__()
        self.alive: list[bool] = []

    def socket_alive(self, handle: SocketHandle, pong: bool) -> None:
        self.alive.append(pong)


@virtual_time
async def test_write_now_writes_at_once_while_open_and_refuses_otherwise() -> None:
    async with TestServer(require_auth=False) as server:
        engine = engine_for(server.url)
        listener = AliveLog()
        handle = engine.open(listener)
        assert handle.write_now("too early") is False
        await server.wait_for_connections()
        await asyncio.sleep(0.1)
        assert handle.write_now("text") is True
        assert handle.write_now(b'{"type": "bytes"}') is True
        assert handle.write_now(None) is True  # a protocol Ping: its Pong proves the peer alive
        await asyncio.sleep(0.1)
        assert "text" in server.received and {"type": "bytes"} in server.received
        assert listener.alive == [True]
        handle.close(1000, "", 1.0)
        await settle()
        assert handle.write_now("gone") is False
        await engine.aclose()


@pytest.mark.transports("websockets", reason="the frames websockets would have written")
@pytest.mark.parametrize("compression", [False, True])
@pytest.mark.parametrize("debug", [False, True])
@virtual_time
async def test_write_now_sends_what_websockets_would_have_sent(
    compression: bool, debug: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # write_now writes short frames itself when websockets would only have serialized them
    # (open, no extension on a data frame, no DEBUG frame log): the peer must not tell.
    messages: list[str | bytes] = ["text", "é ünïcode ✓", "x" * 125, "y" * 126, b"\x00\xffbytes"]
    level = logging.DEBUG if debug else logging.WARNING
    with caplog.at_level(level, logger="websockets.client"):
        async with TestServer(require_auth=False) as server:
            config = dataclasses.replace(engine_for(server.url).config, compression=compression)
            engine = make_engine(config, "engine-test", "websockets")
            listener = AliveLog()
            handle = engine.open(listener)
            await server.wait_for_connections()
            await asyncio.sleep(0.1)
            for message in messages:
                assert handle.write_now(message) is True
            assert handle.write_now(None) is True
            assert handle.write_now(None) is True
            await asyncio.sleep(0.1)
            assert server.received == messages
            assert listener.alive == [True, True]
            handle.close(1000, "", 1.0)
            await settle()
            await engine.aclose()
    pings = [r for r in caplog.records if r.getMessage().startswith("> PING")]
    assert len(pings) == (2 if debug else 0)


@virtual_time
async def test_a_ping_from_the_server_proves_the_peer_alive_without_being_a_pong() -> None:
    async with TestServer(require_auth=False) as server:
        engine = engine_for(server.url)
        listener = AliveLog()
        engine.open(listener)
        await server.wait_for_connections()
        await asyncio.sleep(0.1)
        [ws] = server.connections.values()
        await ws.ping()
        await asyncio.sleep(0.1)
        assert listener.alive == [False]
        await engine.aclose()


@virtual_time
async def test_a_socket_dropped_without_a_close_frame_is_lost_in_those_words() -> None:
    async with TestServer(require_auth=False) as server:
        engine = engine_for(server.url)
        listener = ReportLog()
        handle = engine.open(listener)
        await server.wait_for_connections()
        await asyncio.sleep(0.1)
        await server.kill()
        await settle()
        [(_, number, code, reason, error)] = listener.closes()
        assert (number, code, reason) == (handle.id, 1006, "")
        assert isinstance(error, ConnectionLost)
        if conftest.CURRENT_TRANSPORT == "websockets":
            assert str(error) == "the socket closed without a close frame"


@virtual_time
async def test_a_message_over_max_size_is_our_limit_with_no_close_reason() -> None:
    async with TestServer(require_auth=False) as server:
        config = EngineConfig(
            url=server.url, subprotocols=(), headers=None, query_params=None, ssl=None,
            max_size=100, compression=False, close_timeout=1.0, protocol_keepalive=None,
            before_attempt=None, proxy=None, logger=None,
        )  # fmt: skip
        engine = make_engine(config, "engine-test", conftest.CURRENT_TRANSPORT)
        listener = ReportLog()
        engine.open(listener)
        await server.wait_for_connections()
        await asyncio.sleep(0.1)
        await server.send_burst(1, size=500)
        await settle()
        [(_, _number, code, reason, error)] = listener.closes()
        assert (code, reason) == (None, "")
        assert isinstance(error, MessageTooLarge)


# -- frames: each transport hands them over itself, reassembled, bounded, checked ------------


async def _eager_server(frames: bytes) -> tuple[asyncio.Server, str]:
    """A server that writes its handshake response and ``frames`` in one write, then holds:
    the client reads frames before its socket has even reported itself open."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(_switching_protocols(await reader.readuntil(b"\r\n\r\n")) + frames)
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the client goes
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _switching_protocols(request: bytes) -> bytes:
    """The server's handshake response to ``request`` (RFC 6455 4.2.2)."""
    [key] = re.findall(rb"(?i)sec-websocket-key: *(\S+)", request)
    accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


@virtual_time
async def test_a_send_waits_while_the_peer_reads_nothing_and_ends_when_it_reads() -> None:
    reading = asyncio.Event()
    received = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        writer.write(_switching_protocols(await reader.readuntil(b"\r\n\r\n")))
        await reading.wait()  # the kernel's buffers fill, then the client's transport's
        while chunk := await reader.read(1 << 16):
            received += len(chunk)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    client = conftest.make_client(url, ack_required=False, ping_interval=None)
    await client.connect()
    before = client.stats.messages_sent  # the auth hook's message
    big, written = "x" * 65536, 0
    blocked: asyncio.Task[None] | None = None
    for _ in range(4000):  # up to 256 MB: far more than loopback buffers hold
        sending = asyncio.ensure_future(client.send(big))
        await asyncio.sleep(0.01)
        if not sending.done():
            blocked = sending
            break
        sending.result()
        written += 1
    assert blocked is not None, "no send ever waited for the peer"
    assert written > 0
    assert client.stats.messages_sent == before + written  # not the waiting one, yet
    reading.set()
    await asyncio.wait_for(blocked, 30)
    assert client.stats.messages_sent == before + written + 1
    await client.close()
    assert received > 65536 * written  # every message reached the peer
    server.close()
    await server.wait_closed()


def _text_frame(text: str, fin: bool = True, opcode: int = 0x1) -> bytes:
    payload = text.encode()
    assert len(payload) < 126
    return bytes([(0x80 if fin else 0) | opcode, len(payload)]) + payload


@virtual_time
async def test_a_ping_sent_with_the_handshake_response_is_answered_before_anything_else() -> None:
    ping = bytes([0x89, 2]) + b"hi"  # a Ping frame, before the socket has reported itself open
    server, url = await _eager_server(ping + _text_frame('{"type": "n", "seq": 0}'))
    client = conftest.make_client(url, decoder=json.loads, ack_required=False)
    seen: list[int] = []
    client.on(dict, lambda event: seen.append(event["seq"]))
    await client.connect()
    await asyncio.sleep(0.1)
    assert seen == [0]
    assert client.state.state is S.CONNECTED
    await client.close()
    server.close()
    await server.wait_closed()


@virtual_time
async def test_a_full_lossless_subscriber_stops_the_reading_so_the_server_waits() -> None:
    async with TestServer(require_auth=False) as server:
        client = conftest.make_client(
            server.url, ack_required=False, ping_interval=None, compression=False
        )  # (deflate would shrink the burst's padding into the socket buffers)
        events = client.events(AppEvent, maxsize=8)
        await client.connect()
        await server.wait_for_connections()
        burst = asyncio.ensure_future(server.send_burst(4000, size=4096))  # 16 MB
        await asyncio.sleep(5)
        # The client read what fills its subscriber and the socket buffers, then stopped:
        # the server's writes wait (an engine that read on would hold it all in memory).
        assert not burst.done()
        seqs = []
        async with asyncio.timeout(60):
            async for event in events:
                seqs.append(event.payload["seq"])
                if len(seqs) == 4000:
                    break
        assert seqs == list(range(4000))  # lossless, in order
        await burst
        await client.close()


@virtual_time
async def test_messages_sent_with_the_handshake_response_arrive_first_and_in_order() -> None:
    frames = b"".join(_text_frame(f'{{"type": "n", "seq": {n}}}') for n in range(5))
    frames += _text_frame('{"type": "n", ', fin=False) + _text_frame('"seq": 5}', opcode=0x0)
    server, url = await _eager_server(frames)
    client = conftest.make_client(url, decoder=json.loads, ack_required=False)
    seen: list[int] = []
    client.on(dict, lambda event: seen.append(event["seq"]))
    await client.connect()
    await asyncio.sleep(0.1)
    assert seen == [0, 1, 2, 3, 4, 5]
    assert client.stats.messages_received == 6
    await client.close()
    server.close()
    await server.wait_closed()


async def _connected(server: TestServer, **kwargs: Any) -> tuple[WebSocketClient, ServerConnection]:
    client = conftest.make_client(server.url, **kwargs)
    await client.connect()
    await server.wait_for_connections()
    [ws] = server.connections.values()
    return client, ws


@virtual_time
async def test_fragmented_messages_are_reassembled_and_fragments_prove_the_peer_alive() -> None:
    async with TestServer() as server:
        client, ws = await _connected(server, decoder=lambda data: data, ack_required=False)
        texts: list[str] = []
        blobs: list[bytes] = []
        client.on(str, texts.append)
        client.on(bytes, blobs.append)
        alive: list[bool] = []
        real = client.socket_alive

        def counting(handle: Any, pong: bool) -> None:
            alive.append(pong)
            real(handle, pong)

        client.socket_alive = counting  # type: ignore[method-assign]
        await ws.send(['{"type": "event", ', '"seq": 1, ', '"text": "é"}'])
        await ws.send([b"\x00\x01", b"\x02", b"\x03"])
        await ws.send("whole")
        await asyncio.sleep(0.1)
        texts = [text for text in texts if '"connection.ok"' not in text]  # the ack
        assert texts == ['{"type": "event", "seq": 1, "text": "é"}', "whole"]
        assert blobs == [b"\x00\x01\x02\x03"]
        # Each non-final fragment: websockets sends each chunk, then an empty final frame.
        assert alive == [False] * 6
        await client.close()


@virtual_time
async def test_a_fragmented_message_over_max_size_is_refused_like_a_single_frame() -> None:
    async with TestServer() as server:
        client, ws = await _connected(server, max_size=1000)
        await ws.send(["x" * 600, "x" * 600])
        await asyncio.sleep(1)
        source = client.state.source
        assert isinstance(source, ServerInitiated)
        assert source.close_code is None  # the server closed nothing: our limit did
        assert isinstance(source.error, MessageTooLarge)
        assert ws.close_code == 1009  # and the server was told why
        await client.close()


@virtual_time
async def test_text_that_is_not_utf8_closes_with_1007_as_a_protocol_violation() -> None:
    async with TestServer(require_auth=False) as server:
        engine = engine_for(server.url)
        listener = ReportLog()
        engine.open(listener)
        await server.wait_for_connections()
        await asyncio.sleep(0.1)
        [ws] = server.connections.values()
        ws.transport.write(b"\x81\x02\xff\xfe")  # a text frame that is not UTF-8
        await settle()
        [(_, _number, code, reason, error)] = listener.closes()
        assert code == 1007
        assert isinstance(error, ProtocolViolation)
        # What the server was told, in the same words on both transports:
        assert reason == "invalid UTF-8 in a text message: invalid start byte at position 0"
        assert str(error) == f"closed with 1007: {reason}"
        await asyncio.sleep(1)
        assert ws.close_code == 1007  # the server was told


@virtual_time
async def test_a_socket_cancelled_by_someone_else_while_opening_is_an_unexpected_loss() -> None:
    from tests.conftest import blackhole_server, server_url

    hole = await blackhole_server()
    engine = engine_for(server_url(hole))
    listener = ReportLog()
    handle = engine.open(listener)
    await asyncio.sleep(0.5)  # in the handshake, which never ends
    assert handle._task is not None
    handle._task.cancel()
    await settle()
    [(_, _number, code, reason, error)] = listener.reports
    assert (code, reason) == (None, "")
    assert isinstance(error, ConnectionLost)
    assert str(error) == "the socket task was cancelled while connecting"
    hole.close()
    await hole.wait_closed()


@virtual_time
async def test_an_aborted_socket_reports_its_close_without_an_error() -> None:
    async with TestServer(require_auth=False) as server:
        engine = engine_for(server.url)
        listener = ReportLog()
        handle = engine.open(listener)
        await server.wait_for_connections()
        await asyncio.sleep(0.1)
        handle.abort()
        await settle()
        [(_, _number, _code, _reason, error)] = listener.closes()
        assert error is None  # asked for: not a failure
        stopped = engine.open(listener)
        stopped.abort()  # before its first step
        await engine.aclose()  # nothing raised while waiting for them
        await settle()


@virtual_time
async def test_attempt_urls_keep_blank_query_values_and_take_pairs_too() -> None:
    async with TestServer() as server:
        client = WebSocketClient(
            server.url + "?a=&v=2",
            decode_message,
            on_connection_established=auth_hook("t"),
            query_params=[("token", "x"), ("empty", "")],
        )
        await client.connect()
        assert server.request_paths == ["/?a=&v=2&token=x&empty="]
        await client.close()


@pytest.mark.transports("websockets", reason="websockets' own log lines, through statesock's")
@virtual_time
async def test_websockets_log_lines_name_the_client_they_belong_to(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with TestServer() as server:
        client = conftest.make_client(server.url, label="orders-feed")
        with caplog.at_level(logging.DEBUG, logger="websockets.client"):
            await client.connect()
            await client.close()
    lines = [record for record in caplog.records if record.name == "websockets.client"]
    assert lines
    assert {getattr(record, "statesock_client", None) for record in lines} == {"orders-feed"}


# -- what the websockets transport asks of websockets' connect() -----------------------------


@pytest.mark.transports("websockets", reason="picows has no permessage-deflate")
@virtual_time
async def test_permessage_deflate_is_on_by_default_and_off_when_asked() -> None:
    for compression, offered in ((None, True), (False, False)):
        async with TestServer(require_auth=False) as server:
            client = conftest.make_client(server.url, compression=compression)
            await client.connect()
            await server.wait_for_connections()
            [ws] = server.connections.values()
            assert bool(ws.protocol.extensions) is offered
            await client.close()


@pytest.mark.transports("websockets", reason="the ping_interval websockets' connect() is given")
@virtual_time
async def test_protocol_keepalive_pings_at_its_interval() -> None:
    async with TestServer(require_auth=False) as server:
        client = conftest.make_client(
            server.url, ack_required=False, ping_interval=None, protocol_keepalive=1.0
        )
        pongs: list[bool] = []
        real = client.socket_alive

        def counting(handle: Any, pong: bool) -> None:
            pongs.append(pong)
            real(handle, pong)

        client.socket_alive = counting
        await client.connect()
        await asyncio.sleep(3.5)
        assert pongs.count(True) >= 3  # the transport's own Pings, answered
        await client.close()


@virtual_time
async def test_a_handshake_that_never_ends_is_bounded_by_connect_timeout_alone() -> None:
    from tests.conftest import blackhole_server, server_url

    hole = await blackhole_server()
    client = conftest.make_client(server_url(hole), connect_timeout=25.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectFailed) as info:
        await client.connect()
    assert 25.0 <= loop.time() - started < 25.5  # no transport timeout of its own first
    assert info.value.source == Timeout(S.CONNECTING)
    await client.close()
    hole.close()
    await hole.wait_closed()


# -- the websockets transport's socket task: numbering, sends, holding, closing ------------
#
# Each test states one rule of an engine (most of them of the websockets transport, whose
# socket task is statesock's own code) against a real peer on 127.0.0.1: a TestServer, or a
# _Peer that answers the handshake and then speaks raw frames, so that it can stay silent,
# hold its reading, or drop the connection exactly when the rule needs it.

_WEBSOCKETS_TASK = pytest.mark.transports(
    "websockets", reason="the websockets transport's own socket task, sends and closers"
)


def _frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One unmasked, final frame from the server (RFC 6455 5.2), of any length."""
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        return head + bytes([len(payload)]) + payload
    if len(payload) < 1 << 16:
        return head + bytes([126]) + struct.pack("!H", len(payload)) + payload
    return head + bytes([127]) + struct.pack("!Q", len(payload)) + payload


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A peer that reads everything and answers nothing (no Pong, no close frame)."""
    await reader.read()


class _Peer:
    """A server that answers the WebSocket handshake, then runs ``script`` on the raw
    connection; leaving the ``async with`` drops what is left of its connections (so that a
    failed test ends too) and waits until they have ended."""

    def __init__(self, script: Script = _silent, *, early: bytes = b"") -> None:
        self.script = script
        self.early = early  # sent in the same write as the handshake's response
        self.ended = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return conftest.server_url(self._server)

    async def __aenter__(self) -> _Peer:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._writers.add(writer)
            try:
                request = await reader.readuntil(b"\r\n\r\n")
                writer.write(_switching_protocols(request) + self.early)
                with contextlib.suppress(ConnectionError):
                    await self.script(reader, writer)
            finally:
                writer.close()
                self.ended.set()

        self._server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in self._writers:
            writer.transport.abort()
        await asyncio.wait_for(self.ended.wait(), 60)


def engine_with(url: str, **overrides: Any) -> Any:
    """engine_for's engine (the running test's transport) with ``overrides`` to its config."""
    config = dataclasses.replace(engine_for(url).config, **overrides)
    return make_engine(config, "engine-test", conftest.CURRENT_TRANSPORT)


class AppListener:
    """A SocketListener for an app that takes messages at its own pace: ``hold(data)`` is what
    ``socket_message`` returns (an awaitable asks the socket to wait before reading on)."""

    def __init__(self, hold: Callable[[str | bytes], Awaitable[None] | None] = lambda _: None):
        self.hold = hold
        self.messages: list[str | bytes] = []
        self.closes: list[tuple[int | None, str, ConnectionFailure | None]] = []
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        self._enough: tuple[int, asyncio.Event] | None = None

    def socket_opened(self, handle: SocketHandle) -> None:
        self.opened.set()

    def socket_alive(self, handle: SocketHandle, pong: bool) -> None:
        pass

    def socket_message(self, handle: SocketHandle, data: str | bytes) -> Awaitable[None] | None:
        self.messages.append(data)
        if self._enough is not None and len(self.messages) >= self._enough[0]:
            self._enough[1].set()
        return self.hold(data)

    async def received(self, count: int) -> None:
        """Wait until ``count`` messages have been delivered."""
        enough = asyncio.Event()
        self._enough = (count, enough)
        if len(self.messages) < count:
            await enough.wait()

    def socket_closed(
        self, handle: SocketHandle, code: int | None, reason: str, error: ConnectionFailure | None
    ) -> None:
        self.closes.append((code, reason, error))
        self.closed.set()


def _loop_errors() -> list[dict[str, Any]]:
    """What reaches the running loop's exception handler from now on."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
    return errors


def _closer_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("statesock-close-")]


# Rule: an engine numbers the sockets it is not given a number for.


@virtual_time
async def test_sockets_opened_without_a_number_are_numbered_1_2_3_in_order() -> None:
    """``open()`` without a number gives the sockets 1, 2, 3... in the order they are opened
    (their ids, in their reports and in their tasks' names); a number it is given is the
    socket's id as it is, and takes no place in that count."""
    async with TestServer(require_auth=False) as server:
        engine = engine_for(server.url)
        listener = ReportLog()
        first, second = engine.open(listener), engine.open(listener)
        given = engine.open(listener, 7)
        third = engine.open(listener)
        assert [first.id, second.id, given.id, third.id] == [1, 2, 7, 3]
        names = {t.get_name() for t in asyncio.all_tasks()}
        assert {f"statesock-socket-engine-test-{n}" for n in (1, 2, 3, 7)} <= names
        await server.wait_for_connections(4)
        await asyncio.sleep(0.1)
        opened = sorted(report[1] for report in listener.reports if report[0] == "opened")
        assert opened == [1, 2, 3, 7]
        await engine.aclose()


@virtual_time
async def test_a_socket_has_no_subprotocol_until_the_server_has_chosen_one() -> None:
    """A socket's ``subprotocol`` is None while it opens, then the one the server chose."""
    async with TestServer(require_auth=False, subprotocols=["chat"]) as server:
        engine = engine_with(server.url, subprotocols=("chat",))
        listener = ReportLog()
        handle = engine.open(listener)
        assert handle.subprotocol is None
        await server.wait_for_connections()
        await asyncio.sleep(0.1)
        assert handle.subprotocol == "chat"
        await engine.aclose()


# Rule: aclose() stops every socket, and returns only once nothing of the engine is running.


@virtual_time
async def test_aclose_returns_once_every_open_socket_has_ended_and_reported_its_close() -> None:
    """When ``await aclose()`` returns, each socket has reported its close (one we asked
    for: no error), with nothing more to wait for."""
    async with TestServer(require_auth=False) as server:
        engine = engine_for(server.url)
        listener = ReportLog()
        first, second = engine.open(listener), engine.open(listener)
        await server.wait_for_connections(2)
        await asyncio.sleep(0.1)
        await engine.aclose()
        assert sorted(listener.closes(), key=lambda close: close[1]) == [
            ("closed", first.id, 1006, "", None),
            ("closed", second.id, 1006, "", None),
        ]


@virtual_time
async def test_aclose_returns_once_sockets_stopped_before_their_first_step_reported_too() -> None:
    """Sockets that aclose() stops before their tasks took a step report their one close
    each (no error: we asked for it) before aclose() returns, and the engine counts none."""
    engine = engine_for("ws://127.0.0.1:9/")
    listener = ReportLog()
    handles = [engine.open(listener) for _ in range(4)]
    await engine.aclose()
    assert sorted(close[1] for close in listener.closes()) == [h.id for h in handles]
    assert all(close[4] is None for close in listener.closes())
    assert engine.sockets == 0


@_WEBSOCKETS_TASK
@virtual_time
async def test_aclose_waits_for_a_close_handshake_under_way_and_ends_it_at_once() -> None:
    """A close handshake still under way (a peer that never answers the close frame) ends
    with aclose(): when aclose() returns, its task is done, long before its close timeout."""
    async with _Peer() as peer:
        engine = engine_for(peer.url)
        handle = engine.open(AppListener())
        await asyncio.sleep(0.1)
        handle.close(1000, "bye", 30.0)
        await asyncio.sleep(0.1)
        [closer] = _closer_tasks()
        assert not closer.done()  # waiting for the peer's close frame
        started = asyncio.get_running_loop().time()
        await engine.aclose()
        assert closer.done()
        assert asyncio.get_running_loop().time() - started < 1.0


@_WEBSOCKETS_TASK
@virtual_time
async def test_aclose_waits_for_every_close_handshake_under_way_not_only_the_last() -> None:
    """Two sockets of one engine both closing, neither peer answering: when aclose()
    returns, both close handshakes are over."""
    async with _Peer() as peer:
        engine = engine_for(peer.url)
        handles = [engine.open(AppListener()) for _ in range(2)]
        await asyncio.sleep(0.1)
        for handle in handles:
            handle.close(1000, "bye", 30.0)
        await asyncio.sleep(0.1)
        closers = _closer_tasks()
        assert len(closers) == 2 and not any(closer.done() for closer in closers)
        await engine.aclose()
        assert all(closer.done() for closer in closers)


@_WEBSOCKETS_TASK
@virtual_time
async def test_aclose_from_a_sockets_own_task_stops_that_task_too() -> None:
    """aclose() called from inside a socket's task (an app that shuts down while taking a
    message) does not wait for that task, which cannot end while it waits: it returns, and
    the task is stopped at its next wait, so nothing after that runs."""
    async with TestServer(require_auth=False) as server:  # it sends an ack once open
        engine = engine_for(server.url)
        steps: list[str] = []

        async def shut_down() -> None:
            await engine.aclose()
            steps.append("aclose returned")
            await asyncio.sleep(0)
            steps.append("ran on after the stop")

        listener = AppListener(hold=lambda _: shut_down() if not steps else None)
        engine.open(listener)
        await asyncio.wait_for(listener.closed.wait(), 10)
        await settle()
        assert steps == ["aclose returned"]
        assert listener.closes == [(1006, "", None)]
        assert engine.sockets == 0


@_WEBSOCKETS_TASK
@virtual_time
async def test_aclose_raises_nothing_when_a_close_handshake_was_cancelled_meanwhile() -> None:
    """A close handshake that someone else cancels while aclose() waits for it is over,
    like any other: aclose() returns and nothing reaches the loop's exception handler."""
    errors = _loop_errors()
    async with _Peer() as peer:
        engine = engine_for(peer.url)
        handle = engine.open(AppListener())
        await asyncio.sleep(0.1)
        handle.close(1000, "bye", 30.0)
        await asyncio.sleep(0.1)
        [closer] = _closer_tasks()
        closing = asyncio.ensure_future(engine.aclose())
        await asyncio.sleep(0)  # aclose() has stopped the sockets and waits for them
        closer.cancel()
        await closing
        assert closer.cancelled()
    gc.collect()
    assert errors == [], errors


# Rule: a send is written at once while the socket is open and under its write limit; past
# the limit it waits for the peer to read; on a socket that is closing it fails.


def _held_reading(reading: asyncio.Event, then: str = "read") -> Script:
    """A peer that reads nothing until ``reading`` is set (the kernel's buffers fill, then
    the client's transport's), then reads everything, or, for ``then="reset"``, drops the
    connection with a reset."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reading.wait()
        if then == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        while await reader.read(1 << 20):
            pass

    return script


_OVER_THE_LIMIT = b"x" * (48 << 20)  # more than loopback's socket buffers hold


@_WEBSOCKETS_TASK
@virtual_time
async def test_a_send_under_the_write_limit_is_written_and_done_at_once() -> None:
    """``raw_send`` on an open socket under its write limit writes the frame and returns
    ALREADY_DONE: nothing to wait for."""
    async with TestServer(require_auth=False) as server:
        engine = engine_for(server.url)
        handle = engine.open(AppListener())
        await server.wait_for_connections()
        await asyncio.sleep(0.1)
        assert handle.raw_send("text") is ALREADY_DONE
        assert handle.raw_send(b'{"type": "bytes"}') is ALREADY_DONE
        await asyncio.sleep(0.1)
        assert server.received[-2:] == ["text", {"type": "bytes"}]
        await engine.aclose()


@_WEBSOCKETS_TASK
@virtual_time
async def test_a_send_that_fills_the_transport_is_done_only_when_the_peer_has_read_it() -> None:
    """A message that takes the transport over its write limit is written, and its send
    ends only once the peer has read enough for the transport to drain."""
    reading = asyncio.Event()
    async with _Peer(_held_reading(reading)) as peer:
        engine = engine_for(peer.url)
        handle = engine.open(AppListener())
        await asyncio.sleep(0.1)
        sending = handle.raw_send(_OVER_THE_LIMIT)
        assert sending is not ALREADY_DONE
        waiting = asyncio.ensure_future(sending)
        await asyncio.sleep(1)
        assert not waiting.done()  # the peer reads nothing
        reading.set()
        await asyncio.wait_for(waiting, 30)
        await engine.aclose()


@_WEBSOCKETS_TASK
@virtual_time
async def test_a_send_waiting_for_the_peer_fails_as_a_lost_connection_when_it_resets() -> None:
    """A send waiting for the peer to read fails with ConnectionLost, in those words, when the
    peer resets the connection instead."""
    reading = asyncio.Event()
    async with _Peer(_held_reading(reading, then="reset")) as peer:
        engine = engine_for(peer.url)
        handle = engine.open(AppListener())
        await asyncio.sleep(0.1)
        waiting = asyncio.ensure_future(handle.raw_send(_OVER_THE_LIMIT))
        await asyncio.sleep(1)
        reading.set()
        with pytest.raises(ConnectionLost) as lost:
            await asyncio.wait_for(waiting, 30)
        assert str(lost.value).startswith("the socket closed before the message was sent: ")
        assert isinstance(lost.value.__cause__, ConnectionError)
        await engine.aclose()


@_WEBSOCKETS_TASK
@virtual_time
async def test_a_send_on_a_closing_socket_fails_as_a_lost_connection() -> None:
    """Once the close handshake has begun, a send (``raw_send`` or ``send``) is not written:
    it fails with ConnectionLost when the socket has closed (here at the close timeout, the
    peer never answering the close frame)."""
    async with _Peer() as peer:
        engine = engine_for(peer.url)
        handle = engine.open(AppListener())
        await asyncio.sleep(0.1)
        raw_send = handle.raw_send
        assert raw_send is not None
        handle.close(1000, "bye", 5.0)
        await asyncio.sleep(0.1)
        late = "the socket closed before the message was sent: "
        with pytest.raises(ConnectionLost, match=late):
            await raw_send("late")
        await engine.aclose()
    async with _Peer() as peer:
        engine = engine_for(peer.url)
        handle = engine.open(AppListener())
        await asyncio.sleep(0.1)
        handle.close(1000, "bye", 5.0)
        await asyncio.sleep(0.1)
        with pytest.raises(ConnectionLost, match=late):
            await handle.send("late")
        await engine.aclose()


# Rule: while the app holds reading, what arrives queues; it is delivered in order once the
# app has room, and a close in the meantime neither loses it nor trips over it.


def _sends(*frames: bytes, then: Script = _silent) -> Script:
    """A peer that sends ``frames`` in one write, a moment after the handshake (once the
    socket has settled), then runs ``then``."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.1)
        writer.write(b"".join(frames))
        await then(reader, writer)

    return script


def _holding_on(first: str, room: asyncio.Future[None]) -> AppListener:
    """An app that has no room after the message ``first`` until ``room`` is resolved."""
    return AppListener(hold=lambda data: room if data == first else None)


@virtual_time
async def test_messages_that_arrive_while_the_app_holds_reading_follow_in_order() -> None:
    """A message whose delivery returns an awaitable holds the reading: the messages already
    read wait, and are delivered in order once the app has room."""
    room = asyncio.get_running_loop().create_future()
    frames = [_frame(text.encode()) for text in ("a", "b", "c")]
    async with _Peer(_sends(*frames)) as peer:
        engine = engine_for(peer.url)
        listener = _holding_on("a", room)
        engine.open(listener)
        await asyncio.sleep(0.5)
        assert listener.messages == ["a"]
        room.set_result(None)
        await asyncio.sleep(0.1)
        assert listener.messages == ["a", "b", "c"]
        await engine.aclose()


@_WEBSOCKETS_TASK
@virtual_time
async def test_a_message_read_with_the_handshake_response_can_hold_the_reading() -> None:
    """The first message may come in with the handshake's response and find the app without
    room: the socket opens all the same, holds its reading (the peer's next writes wait), and
    delivers what follows, in order, once the app has room."""
    room = asyncio.get_running_loop().create_future()
    written = asyncio.Event()

    async def burst(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"".join(_frame(f"{n:04096d}".encode()) for n in range(4096)))  # 16 MB
        await writer.drain()
        written.set()
        await reader.read()

    async with _Peer(burst, early=_frame(b"first")) as peer:
        engine = engine_for(peer.url)
        listener = _holding_on("first", room)
        engine.open(listener)
        await asyncio.sleep(1)
        assert listener.opened.is_set() and listener.closes == []
        assert listener.messages == ["first"]
        assert not written.is_set()  # the client stopped reading
        room.set_result(None)
        await asyncio.wait_for(written.wait(), 30)
        await asyncio.wait_for(listener.received(1 + 4096), 30)
        in_order = listener.messages[1:] == [f"{n:04096d}" for n in range(4096)]
        assert in_order
        await engine.aclose()


def _after_our_close(*frames: bytes, then: str = "stay") -> Script:
    """A peer that waits for the client's close frame, then sends ``frames`` (what was under
    way when it came) and, for ``then="drop"``, drops the connection without answering."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(2)  # the start of the client's close frame
        writer.write(b"".join(frames))
        await writer.drain()
        if then == "drop":
            writer.transport.abort()
            return
        await reader.read()

    return script


@_WEBSOCKETS_TASK
@virtual_time
async def test_messages_that_arrive_after_we_asked_for_the_close_are_still_delivered() -> None:
    """Messages the peer sent before it saw our close frame arrive during the close
    handshake: they are delivered, in order, even when the first one holds the reading."""
    room = asyncio.get_running_loop().create_future()
    frames = [_frame(text.encode()) for text in ("a", "b", "c")]
    async with _Peer(_after_our_close(*frames)) as peer:
        engine = engine_for(peer.url)
        listener = _holding_on("a", room)
        handle = engine.open(listener)
        await asyncio.sleep(0.1)
        handle.close(1000, "bye", 30.0)
        await asyncio.sleep(0.5)
        assert listener.messages == ["a"]
        room.set_result(None)
        await asyncio.sleep(0.1)
        assert listener.messages == ["a", "b", "c"]
        await engine.aclose()


@_WEBSOCKETS_TASK
@virtual_time
async def test_a_connection_lost_while_the_app_holds_reading_is_reported_after_its_messages() -> (
    None
):
    """The connection may go while the app holds reading (here the peer drops it when our
    close frame comes): the messages already read are still delivered once the app has
    room, then the close is reported, once, and nothing reaches the loop's exception
    handler meanwhile."""
    errors = _loop_errors()
    room = asyncio.get_running_loop().create_future()
    frames = [_frame(text.encode()) for text in ("a", "b", "c")]
    async with _Peer(_sends(*frames, then=_after_our_close(then="drop"))) as peer:
        engine = engine_for(peer.url)
        listener = _holding_on("a", room)
        handle = engine.open(listener)
        await asyncio.sleep(0.5)
        assert listener.messages == ["a"]
        handle.close(1000, "bye", 30.0)  # lets the peer's answer in: here, the drop
        await peer.ended.wait()
        await asyncio.sleep(0.1)
        assert listener.closes == []  # the app still holds reading
        room.set_result(None)
        await asyncio.wait_for(listener.closed.wait(), 1)
        assert listener.messages == ["a", "b", "c"]
        assert listener.closes == [(1006, "", None)]
        await engine.aclose()
    assert errors == [], errors


# Rule: a socket's task ends in exactly one close report, however it ends, and leaves
# nothing behind: no connection, no error for the loop's exception handler.


@_WEBSOCKETS_TASK
@virtual_time
async def test_a_socket_task_cancelled_by_someone_else_while_open_drops_its_connection() -> None:
    """Somebody else's cancel of an open socket's task is not swallowed (the task ends
    cancelled); the socket drops its connection, reports an unexpected loss once, and
    nothing reaches the loop's exception handler."""
    errors = _loop_errors()
    async with TestServer(require_auth=False) as server:
        engine = engine_for(server.url)
        listener = AppListener()
        handle = engine.open(listener)
        await server.wait_for_connections()
        await asyncio.sleep(0.1)
        task = handle._task
        assert task is not None
        task.cancel()
        await settle()
        assert task.cancelled()
        [(code, reason, error)] = listener.closes
        assert (code, reason) == (1006, "")
        assert isinstance(error, ConnectionLost)
        assert server.connections == {}  # the server saw the connection go
    assert errors == [], errors


@_WEBSOCKETS_TASK
@virtual_time
async def test_a_socket_we_aborted_ends_its_task_without_a_cancel() -> None:
    """A socket stopped by ``abort()`` ends its task normally (the cancel was its own)."""
    async with TestServer(require_auth=False) as server:
        engine = engine_for(server.url)
        listener = AppListener()
        handle = engine.open(listener)
        await server.wait_for_connections()
        await asyncio.sleep(0.1)
        task = handle._task
        assert task is not None
        handle.abort()
        await settle()
        assert task.done() and not task.cancelled() and task.exception() is None
        assert listener.closes == [(1006, "", None)]


@_WEBSOCKETS_TASK
@virtual_time
async def test_a_listener_failing_on_a_loop_that_is_shutting_down_does_not_fail_the_task() -> None:
    """A close report that raises RuntimeError (what a listener's loop calls raise once the
    loop is closing) does not make the socket's task fail: aclose() returns."""

    class ShuttingDown(AppListener):
        def socket_closed(
            self,
            handle: SocketHandle,
            code: int | None,
            reason: str,
            error: ConnectionFailure | None,
        ) -> None:
            super().socket_closed(handle, code, reason, error)
            raise RuntimeError("Event loop is closed")

    async with TestServer(require_auth=False) as server:
        engine = engine_for(server.url)
        listener = ShuttingDown()
        engine.open(listener)
        await server.wait_for_connections()
        await asyncio.sleep(0.1)
        await engine.aclose()
        assert listener.closes == [(1006, "", None)]


class _Handshake(asyncio.Protocol):
    """A server's side that answers the handshake and then ignores everything: no task."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.request = b""

    def data_received(self, data: bytes) -> None:
        if b"\r\n\r\n" not in self.request:
            self.request += data
            if b"\r\n\r\n" in self.request:
                self.transport.write(_switching_protocols(self.request))


@_WEBSOCKETS_TASK
def test_a_socket_whose_loop_was_closed_under_it_reports_nothing_and_raises_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A loop closed while a socket is open (the app's loop ends without closing the
    client): when its task is collected there is nobody left to report to and no loop to
    report on, so the socket reports nothing and raises nothing."""
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    listener = AppListener()
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _loop, _context: None)  # "Task was destroyed..."

    async def open_socket() -> asyncio.Server:
        server = await loop.create_server(_Handshake, "127.0.0.1", 0)
        engine_for(conftest.server_url(server)).open(listener)
        await listener.opened.wait()
        server.close()
        return server

    try:
        loop.run_until_complete(open_socket())
    finally:
        loop.close()  # the socket's task still waits
    gc.collect()
    assert listener.opened.is_set() and listener.closes == []
    assert unraisable == []


@_WEBSOCKETS_TASK
@virtual_time
async def test_a_socket_closed_while_opening_whose_handshake_ends_anyway_closes_at_once() -> None:
    """A close asked for while the socket opens cancels the opening; should the opening end
    all the same (here a headers provider ignores the cancel), the socket never reports
    itself open: it closes at once with a normal close (1000, no reason), reported once."""
    seen: list[tuple[int | None, str | None]] = []

    async def record(ws: ServerConnection) -> None:
        await ws.wait_closed()
        seen.append((ws.close_code, ws.close_reason))

    async def stubborn_headers() -> dict[str, str]:
        with contextlib.suppress(asyncio.CancelledError):  # ignores the cancel
            await asyncio.sleep(10)
        return {}

    async with serve(record, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        engine = engine_with(f"ws://127.0.0.1:{port}/", headers=stubborn_headers)
        listener = AppListener()
        handle = engine.open(listener)
        await asyncio.sleep(1)  # waiting for its headers
        handle.close(1000, "bye", 1.0)
        await settle()
        assert not listener.opened.is_set()
        assert listener.closes == [(1000, "", None)]
        assert seen == [(1000, "")]


# Rule: the transport's own keepalive (protocol_keepalive) drops a peer that stops
# answering: its Ping waits protocol_keepalive seconds for the Pong, then the close frame
# waits close_timeout seconds for the peer's.


@_WEBSOCKETS_TASK
@virtual_time
async def test_a_peer_that_stops_answering_is_dropped_by_the_keepalive_on_its_deadlines() -> None:
    """With protocol_keepalive=1 and close_timeout=2 against a peer that answers nothing:
    a Ping at 1 s, no Pong by 2 s, a close frame (1011, "keepalive ping timeout"), no answer
    by 4 s: the connection is dropped then, and reported so."""
    async with _Peer() as peer:
        engine = engine_with(peer.url, protocol_keepalive=1.0, close_timeout=2.0)
        listener = AppListener()
        loop = asyncio.get_running_loop()
        engine.open(listener)
        await listener.opened.wait()
        opened_at = loop.time()
        await asyncio.wait_for(listener.closed.wait(), 60)
        assert 3.9 < loop.time() - opened_at < 4.5
        [(code, reason, error)] = listener.closes
        assert (code, reason) == (1011, "keepalive ping timeout")
        assert error is not None
        await engine.aclose()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "10.1.2.3", "fe80::2"])
def test_a_numeric_host_has_the_address_getaddrinfo_would_give(host: str) -> None:
    """The picows engine connects to a numeric host without the resolver's thread."""
    expected = socket.getaddrinfo(host, 8765, type=socket.SOCK_STREAM)
    assert numeric_address(host, 8765) == [tuple(info) for info in expected]


@pytest.mark.parametrize("host", ["localhost", "example.com", "127.1", "0x7f.0.0.1", "fe80::1%lo"])
def test_a_host_that_needs_a_look_up_has_no_numeric_address(host: str) -> None:
    assert numeric_address(host, 80) is None


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_connect_socket_connects_and_fails_as_the_loops_sock_connect(loop_kind: str) -> None:
    """The picows engine's connect: what loop.sock_connect does, errors and all."""
    uvloop = pytest.importorskip("uvloop") if loop_kind == "uvloop" else None

    async def outcome(connect: Callable[..., Awaitable[None]], port: int) -> object:
        sock = socket.socket()
        sock.setblocking(False)
        try:
            await connect(sock, ("127.0.0.1", port))
            return sock.getpeername()
        except OSError as exc:
            return type(exc), exc.errno, str(exc)
        finally:
            sock.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        try:
            assert await outcome(connect_socket, port) == ("127.0.0.1", port)
        finally:
            listener.close()
        refused = await outcome(loop.sock_connect, port)
        assert refused[0] is ConnectionRefusedError  # type: ignore[index]
        assert await outcome(connect_socket, port) == refused

    (uvloop.run if uvloop is not None else asyncio.run)(main())


# -- the caches and shortcuts of the hot paths: each must change nothing but the cost -------


def test_a_valid_url_is_checked_once_then_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    """validate_url remembers a valid str URL: validated again, it is not parsed again."""
    monkeypatch.setattr(engine_module, "_valid_urls", set())
    assert validate_url("ws://remembered.test/") == "ws://remembered.test/"
    assert engine_module._valid_urls == {"ws://remembered.test/"}

    def no_parse(url: str) -> object:
        raise AssertionError(f"{url} parsed again")

    monkeypatch.setattr(engine_module, "urlsplit", no_parse)
    assert validate_url("ws://remembered.test/") == "ws://remembered.test/"


class _PosingURL(str):
    """A str subclass that compares (and hashes) equal to another URL than its own text."""

    def __init__(self, text: str, poses_as: str = "") -> None:
        self.poses_as = poses_as

    def __new__(cls, text: str, poses_as: str = "") -> _PosingURL:
        return super().__new__(cls, text)

    def __eq__(self, other: object) -> bool:
        return other == self.poses_as or str.__eq__(self, other)

    def __hash__(self) -> int:
        return hash(self.poses_as)


def test_a_str_subclass_is_validated_itself_and_never_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_module, "_valid_urls", set())
    validate_url("ws://valid.test/")
    posing = _PosingURL("http://not-a-websocket.test/", poses_as="ws://valid.test/")
    assert posing == "ws://valid.test/" and posing in engine_module._valid_urls
    with pytest.raises(InvalidURL, match="must use ws:// or wss://"):
        validate_url(posing)
    valid_subclass = _PosingURL("ws://subclass.test/", poses_as="ws://subclass.test/")
    assert validate_url(valid_subclass) is valid_subclass
    assert engine_module._valid_urls == {"ws://valid.test/"}


def test_the_valid_url_cache_is_cleared_when_it_holds_256(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "_valid_urls", set())
    urls = [f"ws://host{n}.test/" for n in range(257)]
    for url in urls[:256]:
        validate_url(url)
    assert len(engine_module._valid_urls) == 256
    validate_url(urls[256])
    assert engine_module._valid_urls == {urls[256]}


def test_make_engine_imports_a_transports_engine_class_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from statesock.websockets_engine import WebSocketEngine

    config = engine_for("ws://127.0.0.1:9/").config
    monkeypatch.setattr(engine_module, "_engines", {})
    engine = make_engine(config, "first", "websockets")
    assert type(engine) is WebSocketEngine and engine.label == "first"
    assert engine_module._engines == {"websockets": WebSocketEngine}

    def no_import(name: str) -> object:
        raise AssertionError(f"{name} imported again")

    monkeypatch.setattr(engine_module, "importlib", types.SimpleNamespace(import_module=no_import))
    again = make_engine(config, "second", "websockets")
    assert type(again) is WebSocketEngine and again.label == "second"


# -- connect_socket and connect_tcp: the picows engine's TCP connect -------------------------


def test_wake_settles_a_pending_future_once() -> None:
    async def main() -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        _wake(future)
        assert future.done() and future.result() is None
        _wake(future)  # a second wake of a done future is harmless

    asyncio.run(main())


def test_connect_socket_connects_through_the_writer_callback_in_bounded_time() -> None:
    """A connect that is in progress completes when the socket is writable (a callback
    that failed to settle the wait would leave it waiting forever)."""

    async def main() -> None:
        errors = _loop_errors()
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        sock = socket.socket()
        sock.setblocking(False)
        try:
            await asyncio.wait_for(connect_socket(sock, ("127.0.0.1", port)), 5)
            assert sock.getpeername() == ("127.0.0.1", port)
        finally:
            sock.close()
            listener.close()
        assert errors == []

    asyncio.run(main())


class _ConnectInProgress:
    """A socket whose connect is in progress; ``SO_ERROR`` cannot be read the first time it
    is asked (``BlockingIOError``: not done yet), then says the connection was refused."""

    def __init__(self, writable: socket.socket) -> None:
        self._writable = writable
        self.asked = 0

    def connect(self, address: tuple[Any, ...]) -> None:
        raise BlockingIOError

    def fileno(self) -> int:
        return self._writable.fileno()

    def getsockopt(self, level: int, name: int) -> int:
        self.asked += 1
        if self.asked == 1:
            raise BlockingIOError
        return errno.ECONNREFUSED


def test_connect_socket_waits_again_while_the_outcome_is_not_ready() -> None:
    async def main() -> None:
        left, right = socket.socketpair()
        try:
            sock = _ConnectInProgress(left)
            with pytest.raises(OSError) as failed:
                await asyncio.wait_for(connect_socket(cast(Any, sock), ("127.0.0.1", 9)), 5)
            assert failed.value.errno == errno.ECONNREFUSED
            assert sock.asked == 2
        finally:
            left.close()
            right.close()

    asyncio.run(main())


def _closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port


def _tcp(port: int) -> tuple[Any, ...]:
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_connect_tcp_connects_to_a_numeric_host_without_a_look_up(
    host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    async def main() -> None:
        async def no_look_up(*args: object, **kwargs: object) -> object:
            raise AssertionError(f"looked up {args}")

        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_look_up)
        listener = socket.create_server((host, 0), family=family)
        port = listener.getsockname()[1]
        owned: list[socket.socket] = []
        try:
            sock = await asyncio.wait_for(connect_tcp(host, port, owned.append), 5)
            try:
                assert owned == [sock]
                assert sock.getpeername()[:2] == (host, port)
                assert (sock.family, sock.type, sock.proto) == (
                    family, socket.SOCK_STREAM, socket.IPPROTO_TCP,
                )  # fmt: skip
                assert sock.gettimeout() == 0.0  # non-blocking, as the engine's loop needs
            finally:
                sock.close()
        finally:
            listener.close()

    asyncio.run(main())


def test_connect_tcp_tries_each_address_of_a_name_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        port, refused = listener.getsockname()[1], _closed_port()
        looked_up: list[tuple[Any, ...]] = []

        async def getaddrinfo(*args: object, **kwargs: object) -> list[tuple[Any, ...]]:
            looked_up.append((args, kwargs))
            return [_tcp(refused), _tcp(port)]

        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
        owned: list[socket.socket] = []
        try:
            sock = await asyncio.wait_for(connect_tcp("two.test", port, owned.append), 5)
            try:
                assert looked_up == [(("two.test", port), {"type": socket.SOCK_STREAM})]
                assert len(owned) == 2 and owned[1] is sock
                assert owned[0].fileno() == -1  # the failed one is closed
                assert sock.getpeername() == ("127.0.0.1", port)
            finally:
                sock.close()
        finally:
            listener.close()

    asyncio.run(main())


def test_connect_tcp_raises_the_first_failure_when_no_address_connects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def main() -> None:
        first, second = _closed_port(), _closed_port()

        async def getaddrinfo(*args: object, **kwargs: object) -> list[tuple[Any, ...]]:
            return [_tcp(first), _tcp(second)]

        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
        owned: list[socket.socket] = []
        with pytest.raises(ConnectionRefusedError, match=re.escape(f"('127.0.0.1', {first})")):
            await asyncio.wait_for(connect_tcp("none.test", first, owned.append), 5)
        assert len(owned) == 2 and all(sock.fileno() == -1 for sock in owned)

    asyncio.run(main())


def test_connect_tcp_to_a_name_with_no_address_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        async def getaddrinfo(*args: object, **kwargs: object) -> list[tuple[Any, ...]]:
            return []

        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
        with pytest.raises(OSError, match=r"^no address for nowhere\.test$"):
            await connect_tcp("nowhere.test", 80, lambda sock: None)

    asyncio.run(main())


_WEBSOCKETS_SHORTCUTS = pytest.mark.transports(
    "websockets", reason="the websockets transport's shortcuts past websockets' own code"
)


async def _open_socket(url: str, **overrides: Any) -> tuple[Any, Any, AliveLog]:
    """An engine of ``overrides`` and its socket once open: (engine, handle, listener)."""
    engine = engine_with(url, **overrides)
    listener = AliveLog()
    handle = engine.open(listener)
    for _ in range(100):
        if handle._ws is not None or listener.closes():
            break
        await asyncio.sleep(0.1)
    assert handle._ws is not None, listener.reports
    return engine, handle, listener


@_WEBSOCKETS_SHORTCUTS
@pytest.mark.parametrize("compression", [False, True])
@virtual_time
async def test_write_now_writes_a_short_plain_frame_itself_and_leaves_the_rest_to_websockets(
    compression: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with TestServer(require_auth=False) as server:
        engine, handle, listener = await _open_socket(server.url, compression=compression)
        protocol = handle._ws.protocol
        through: list[str] = []
        for name in ("send_text", "send_binary", "send_ping"):
            original = getattr(protocol, name)

            def spy(*args: Any, _name: str = name, _original: Any = original) -> Any:
                through.append(_name)
                return _original(*args)

            monkeypatch.setattr(protocol, name, spy)
        assert handle.write_now("short") is True
        assert handle.write_now(b"short") is True
        assert handle.write_now(None) is True
        # permessage-deflate transforms every data frame: websockets writes them.
        assert through == (["send_text", "send_binary"] if compression else [])
        through.clear()
        assert handle.write_now("y" * 126) is True  # a longer length field: websockets'
        assert through == ["send_text"]
        await asyncio.sleep(0.1)
        assert server.received == ["short", b"short", "y" * 126]
        assert listener.alive == [True]
        await engine.aclose()


@_WEBSOCKETS_SHORTCUTS
@virtual_time
async def test_write_now_refuses_while_closing_and_inside_a_fragmented_message() -> None:
    async with _Peer() as peer:  # it never answers the close frame: the socket stays closing
        engine, handle, _ = await _open_socket(peer.url)
        protocol = handle._ws.protocol
        protocol.send_text(b"first part", fin=False)  # a fragmented message under way
        assert handle.write_now("x") is False
        protocol.send_continuation(b"", fin=True)
        assert handle.write_now("x") is True
        handle.close(1000, "", 10.0)
        for _ in range(10):
            await asyncio.sleep(0)
        assert protocol.state is State.CLOSING
        assert handle.write_now("x") is False  # (a Ping may still go: websockets allows it)
        await engine.aclose()


@_WEBSOCKETS_SHORTCUTS
@virtual_time
async def test_a_health_checks_pong_skips_websockets_and_a_keepalive_pings_pong_settles_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with TestServer(require_auth=False) as server:
        engine, handle, listener = await _open_socket(server.url)
        ws = handle._ws
        acknowledged: list[bytes] = []
        original = ws.acknowledge_pings

        def spy(data: bytes) -> None:
            acknowledged.append(data)
            original(data)

        monkeypatch.setattr(ws, "acknowledge_pings", spy)
        assert handle.write_now(None) is True
        await asyncio.sleep(0.1)
        # No Ping of its own waits: the Pong goes straight to the listener. (websockets before
        # it kept its Pings in pending_pings takes its own path, as it always did.)
        shortcut = hasattr(ws, "pending_pings")
        assert listener.alive == [True] and len(acknowledged) == (0 if shortcut else 1)
        acknowledged.clear()
        pong = await ws.ping(b"keepalive")  # one of websockets' own Pings: it must settle
        await asyncio.wait_for(pong, 10)
        assert acknowledged == [b"keepalive"] and listener.alive == [True, True]
        await engine.aclose()


@_WEBSOCKETS_SHORTCUTS
@virtual_time
async def test_a_pong_sent_with_the_handshake_response_is_taken_quietly() -> None:
    errors = _loop_errors()
    async with _Peer(early=_frame(b"", opcode=0xA) + _frame(b"hello")) as peer:
        engine = engine_with(peer.url)
        listener = AppListener()
        engine.open(listener)
        await asyncio.wait_for(listener.received(1), 10)
        await asyncio.sleep(0.1)
        assert listener.messages == ["hello"] and listener.closes == []
        await engine.aclose()
    assert errors == []


@_WEBSOCKETS_SHORTCUTS
@virtual_time
async def test_a_dropped_connection_is_reported_at_once_without_a_loop_error() -> None:
    errors = _loop_errors()

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(1)
        writer.transport.abort()

    async with _Peer(drop) as peer:
        engine = engine_with(peer.url)
        listener = AppListener()
        engine.open(listener)
        await asyncio.wait_for(listener.closed.wait(), 10)
        [(code, _, error)] = listener.closes
        assert code == 1006 and isinstance(error, ConnectionLost)
        await engine.aclose()
    assert errors == []


@_WEBSOCKETS_SHORTCUTS
@virtual_time
async def test_a_reset_connection_keeps_the_reset_as_the_cause_of_its_close() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(1)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async with _Peer(reset) as peer:
        engine, handle, _ = await _open_socket(peer.url)
        ws = handle._ws
        await asyncio.wait_for(asyncio.shield(ws.connection_lost_waiter), 10)
        close_exc = getattr(ws, "close_exc", None)  # websockets 15.0 keeps it as recv_exc
        cause = close_exc.__cause__ if close_exc is not None else ws.recv_exc
        assert isinstance(cause, ConnectionResetError)
        await engine.aclose()


@_WEBSOCKETS_SHORTCUTS
@virtual_time
async def test_static_settings_open_without_evaluating_a_query_or_headers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from statesock import websockets_engine

    async def not_evaluated(*args: object) -> object:
        raise AssertionError("evaluated")

    monkeypatch.setattr(websockets_engine, "attempt_url", not_evaluated)
    monkeypatch.setattr(websockets_engine, "_evaluate", not_evaluated)
    async with TestServer(require_auth=False) as server:
        engine, handle, listener = await _open_socket(server.url)
        assert listener.reports[0] == ("opened", handle.id)
        await engine.aclose()


@virtual_time
async def test_a_socket_offers_its_subprotocols() -> None:
    async with TestServer(require_auth=False, subprotocols=["chat"]) as server:
        engine = engine_with(server.url, subprotocols=("chat",))
        listener = AppListener()
        handle = engine.open(listener)
        opened = asyncio.ensure_future(listener.opened.wait())
        closed = asyncio.ensure_future(listener.closed.wait())
        await asyncio.wait([opened, closed], timeout=10, return_when=asyncio.FIRST_COMPLETED)
        opened.cancel()
        closed.cancel()
        assert listener.closes == [] and handle.subprotocol == "chat"
        await engine.aclose()


@virtual_time
async def test_messages_parsed_while_the_app_holds_reading_are_delivered_in_order_after() -> None:
    room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    early = b"".join(_frame(f"m{n}".encode()) for n in range(4))
    async with _Peer(early=early) as peer:
        engine = engine_with(peer.url)
        listener = AppListener(lambda data: room if data == "m0" else None)
        engine.open(listener)
        await asyncio.wait_for(listener.received(1), 10)
        await asyncio.sleep(0.1)
        assert listener.messages == ["m0"]  # the rest wait while the app holds reading
        room.set_result(None)
        await asyncio.wait_for(listener.received(4), 10)
        assert listener.messages == ["m0", "m1", "m2", "m3"] and listener.closes == []
        await engine.aclose()
