"""The engine: URL validation, exception mapping at the boundary, per-attempt headers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import hashlib
import json
import logging
import re
import socket
import ssl
import time
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import InvalidMessage, InvalidStatus, InvalidURI, ProtocolError
from websockets.http11 import Response

from statesock.client import WebSocketClient
from statesock.engine import (
    EngineConfig,
    SocketHandle,
    make_engine,
    map_exception,
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
        assert "ended unexpectedly" in str(error)


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
