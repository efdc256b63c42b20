"""The picows transport's own tests: what the shared behaviour suites (every test of the
modules in tests/conftest.py's ``TRANSPORT_SUITES`` runs on both transports) cannot see.

The settings it refuses at construction, its exception mapping, a subprotocol nobody
offered, Pings and Pongs both ways, credentials in the URL, its redacted log lines, and a
socket cancelled in the middle of its handshake (fragments and bad UTF-8 are tested in
test_engine.py, on both transports). The whole file is skipped (loudly, or failed under
``CI=true``) when picows is not installed.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import logging
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

if importlib.util.find_spec("picows") is None:  # pragma: no cover - CI installs it
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("picows is not installed: CI installs the statesock[fast] extra")
    pytest.skip(
        "SKIPPED LOUDLY: picows is not installed: pip install -e '.[fast]'",
        allow_module_level=True,
    )

from picows import (
    WSHandshakeError,
    WSInvalidStatusError,
    WSInvalidURL,
    WSProtocolError,
    WSUpgradeResponse,
)
from python_socks import ProxyError
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from statesock import settings as settings_module
from statesock.client import WebSocketClient
from statesock.engine import TRANSPORTS, EngineConfig, make_engine
from statesock.exceptions import (
    ConfigurationError,
    ConnectFailed,
    ConnectionRefused,
    HandshakeRejected,
    InvalidURL,
    MessageTooLarge,
    ProtocolViolation,
)
from statesock.machine import ConnectionState, StateChange
from statesock.picows_engine import PicowsEngine, map_picows_exception
from statesock.recovery import ConnectionRecoveryHandler
from statesock.retry import DelayList
from statesock.settings import ClientSettings
from statesock.sources import NoPongReceived, ServerInitiated
from statesock.testing import AppEvent, FaultProxy, TestServer, decode_message
from tests import conftest
from tests.bench.common import ServerProcess
from tests.conftest import blackhole_server, make_client, run_virtual, server_url, virtual_time

S = ConnectionState
URL = "ws://127.0.0.1:1/"


def picows_client(url: str, **kwargs: Any) -> WebSocketClient:
    kwargs.setdefault("transport", "picows")
    client: WebSocketClient = make_client(url, **kwargs)
    return client


# -- settings: what picows cannot do is refused at construction -----------------------------


def test_the_default_transport_is_websockets_and_compression_is_the_transports_own() -> None:
    settings = ClientSettings.check(URL, decode_message, None, None, None)
    assert (settings.transport, settings.compression) == ("websockets", None)
    config = settings.engine_config(URL, None, None)
    assert config.compression is None  # the engine resolves it: websockets' default, on
    picows = ClientSettings.check(URL, decode_message, None, None, None, transport="picows")
    assert picows.compression is None  # off: picows has none
    off = ClientSettings.check(
        URL, decode_message, None, None, None, transport="picows", compression=False
    )
    assert off.compression is False


def test_an_unknown_transport_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="'aiohttp'") as info:
        WebSocketClient(URL, decode_message, transport="aiohttp")
    assert "'websockets', 'picows'" in str(info.value)
    with pytest.raises(TypeError, match="transport must be a str"):
        WebSocketClient(URL, decode_message, transport=None)  # type: ignore[arg-type]


def test_compression_asked_for_with_picows_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match=r"compression=True.*picows has no permessage-deflate"):
        WebSocketClient(URL, decode_message, transport="picows", compression=True)
    with pytest.raises(ConfigurationError, match="permessage-deflate"):  # the engine too
        PicowsEngine(_config(compression=True), "x")


def test_a_socks4a_proxy_is_refused_with_picows_and_the_others_are_taken() -> None:
    with pytest.raises(ValueError, match="socks4a"):
        WebSocketClient(URL, decode_message, transport="picows", proxy="socks4a://h:1080")
    for proxy in ("http://h:3128", "https://h:3128", "socks4://h:1", "socks5h://h:1"):
        WebSocketClient(URL, decode_message, transport="picows", proxy=proxy)
    engine = PicowsEngine(_config(proxy="socks5h://u:p@h:1080"), "x")
    assert engine._proxy(URL) == "socks5://u:p@h:1080"  # python-socks' SOCKS5 is remote DNS


def test_picows_missing_is_an_import_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec

    def without_picows(name: str, *args: Any) -> Any:
        return None if name == "picows" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_picows)
    with pytest.raises(ImportError, match=r"pip install 'statesock\[fast\]'") as info:
        WebSocketClient(URL, decode_message, transport="picows")
    assert info.value.name == "picows"


def test_the_settings_and_the_engine_know_the_same_transports() -> None:
    assert set(TRANSPORTS) == set(settings_module._TRANSPORTS)
    with pytest.raises(ConfigurationError, match="unknown transport 'nope'"):
        make_engine(_config(), "x", "nope")
    assert isinstance(make_engine(_config(), "x", "picows"), PicowsEngine)


@pytest.mark.parametrize("transport", ["picows"], indirect=True)
def test_a_client_a_suite_test_builds_itself_runs_on_the_suites_transport(transport: str) -> None:
    # What the transport fixture does for the behaviour suites (tests/conftest.py).
    assert isinstance(WebSocketClient(URL, decode_message)._engine, PicowsEngine)
    assert isinstance(make_client(URL)._engine, PicowsEngine)
    default = make_client(URL, transport="websockets")._engine
    assert type(default).__name__ == "WebSocketEngine"


def _config(**changes: Any) -> EngineConfig:
    values: dict[str, Any] = {
        "url": URL, "subprotocols": (), "headers": None, "query_params": None, "ssl": None,
        "max_size": 2**20, "compression": None, "close_timeout": 1.0,
        "protocol_keepalive": None, "before_attempt": None, "proxy": None, "logger": None,
    }  # fmt: skip
    values.update(changes)
    return EngineConfig(**values)


# -- exceptions are mapped to the websockets engine's ---------------------------------------


def _upgrade_response(status: int, headers: dict[str, str]) -> WSUpgradeResponse:
    response: WSUpgradeResponse = WSUpgradeResponse.create_error_response(
        status, b"go away", extra_headers=headers
    )
    return response


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (WSInvalidURL("x", "bad"), InvalidURL),
        (WSHandshakeError("cannot upgrade"), ProtocolViolation),
        (WSProtocolError(1002, "bad frame"), ProtocolViolation),
        (ProxyError("HTTP proxy rejected connection with status 407"), ProtocolViolation),
        (ConnectionRefusedError(111, "refused"), ConnectionRefused),
        (MessageTooLarge("already ours"), MessageTooLarge),
    ],
)
def test_picows_exceptions_are_mapped_with_their_cause(
    exc: BaseException, kind: type[Exception]
) -> None:
    mapped = map_picows_exception(exc)
    assert isinstance(mapped, kind)
    assert mapped.__cause__ is exc or mapped is exc


def test_a_rejected_handshake_keeps_its_status_retry_after_and_body() -> None:
    response = _upgrade_response(503, {"Retry-After": "7"})
    exc = WSInvalidStatusError("expected 101", b"HTTP/1.1 503", b"go away", response)
    mapped = map_picows_exception(exc)
    assert isinstance(mapped, HandshakeRejected)
    assert (mapped.status, mapped.retry_after, mapped.body) == (503, 7.0, "go away")


@virtual_time
async def test_a_handshake_rejection_through_the_client_is_the_same_verdict() -> None:
    async with TestServer() as server:
        server.reject_status = 429
        server.reject_headers = {"Retry-After": "30"}
        client = picows_client(server.url)
        with pytest.raises(ConnectFailed) as info:
            await client.connect()
        error = _error(info.value)
        assert isinstance(error, HandshakeRejected)
        assert (error.status, error.retry_after) == (429, 30.0)
        await client.close()


def _error(failed: ConnectFailed) -> object:
    source = failed.source
    assert isinstance(source, ServerInitiated)
    return source.error


# -- frames: reassembled, bounded, checked --------------------------------------------------


async def _connected(server: TestServer, **kwargs: Any) -> tuple[WebSocketClient, ServerConnection]:
    client = picows_client(server.url, **kwargs)
    await client.connect()
    await server.wait_for_connections()
    [ws] = server.connections.values()
    return client, ws


@virtual_time
async def test_a_subprotocol_nobody_offered_is_a_protocol_violation() -> None:
    def rogue(connection: ServerConnection, request: Request, response: Response) -> Response:
        response.headers["Sec-WebSocket-Protocol"] = "rogue"
        return response

    async def hold(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with serve(hold, "127.0.0.1", 0, process_response=rogue) as server:
        client = picows_client(server_url(server), subprotocols=["mine"])  # type: ignore[arg-type]
        with pytest.raises(ConnectFailed) as info:
            await client.connect()
        assert isinstance(_error(info.value), ProtocolViolation)
        assert "rogue" in str(_error(info.value))
        await client.close()


@virtual_time
async def test_close_codes_and_reasons_go_both_ways() -> None:
    async with TestServer() as server:
        client, ws = await _connected(server)
        await client.disconnect()
        assert (ws.close_code, ws.close_reason) == (1000, "user disconnect")
        await client.connect()
        await server.wait_for_connections()
        await server.close_all(4429, "slow down é")
        await asyncio.sleep(0.1)
        assert client.state.source == ServerInitiated(4429, "slow down é")
        await client.close()


@virtual_time
async def test_server_pings_are_answered_and_protocol_pings_get_their_pong() -> None:
    async with TestServer() as server:
        client, ws = await _connected(
            server, ping_request_builder=None, ping_interval=1.0, pong_timeout=0.5
        )
        pong = await ws.ping(b"are you there")
        async with asyncio.timeout(5):
            await pong  # the client answered the server's Ping
        await asyncio.sleep(3.5)
        assert client.health.pongs >= 3  # and the server's Pongs answered the client's Pings
        assert client.state.state is S.CONNECTED
        await client.close()


# -- credentials, logs, cancellation ---------------------------------------------------------


@virtual_time
async def test_credentials_in_the_url_are_sent_as_basic_auth_not_in_the_host() -> None:
    async with TestServer() as server:
        url = server.url.replace("ws://", "ws://ann:hun%20ter2@")
        client = picows_client(url)
        await client.connect()
        [headers] = server.request_headers
        assert isinstance(headers, Headers)
        expected = base64.b64encode(b"ann:hun ter2").decode()
        assert headers["Authorization"] == f"Basic {expected}"
        assert headers["Host"] == f"127.0.0.1:{server.port}"
        await client.close()


@pytest.fixture
def everything_logged() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=1)
    picows = logging.getLogger("picows")
    level = picows.level
    picows.addHandler(handler)
    picows.setLevel(1)  # picows's own trace level (9) included: the upgrade request
    try:
        yield records
    finally:
        picows.removeHandler(handler)
        picows.setLevel(level)


def test_picows_log_lines_are_redacted_and_at_debug(everything_logged: list[Any]) -> None:
    secret = "HBEARER4444"

    async def session() -> None:
        async with TestServer() as server:
            client = picows_client(
                server.url + f"?token={secret}", headers={"Authorization": f"Bearer {secret}"}
            )
            await client.connect()
            await client.close()

    run_virtual(session())
    lines = [record.getMessage() for record in everything_logged]
    [request] = [line for line in lines if line.startswith("Send upgrade request")]
    assert "[REDACTED]" in request and "token=[REDACTED]" in request
    assert not [line for line in lines if secret in line]
    assert all(record.levelno < logging.INFO for record in everything_logged)


@virtual_time
async def test_a_socket_cancelled_in_its_handshake_is_shut_down_not_leaked() -> None:
    server = await blackhole_server()  # accepts and never answers the upgrade
    closed = asyncio.Event()
    accepted: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        while await reader.read(65536):
            pass
        closed.set()  # the client's end is gone
        writer.close()

    server.close()
    await server.wait_closed()
    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    client = picows_client(server_url(server), connect_timeout=2)
    with pytest.raises(ConnectFailed):
        await client.connect()
    async with asyncio.timeout(5):
        await closed.wait()
    assert len(accepted) == 1
    await client.close()
    server.close()
    await server.wait_closed()


@virtual_time
async def test_a_lossless_subscriber_holds_reading_and_loses_nothing_queued() -> None:
    async with TestServer() as server:
        client = picows_client(server.url, event_queue_size=4)
        events = client.events(AppEvent)
        await client.connect()
        await server.send_burst(300)  # many frames per read, far more than the queue
        await asyncio.sleep(1)
        seqs = []
        async with asyncio.timeout(30):
            async for event in events:
                seqs.append(event.payload["seq"])
                if len(seqs) == 300:
                    break
        assert seqs == list(range(300))
        assert client.stats.events_dropped == 0
        await client.close()


# -- both transports, side by side: keepalive and the close handshake's bound ---------------


async def _until_disconnected(client: WebSocketClient, bound: float) -> float:
    down = asyncio.Event()

    def listen(record: object) -> None:
        if isinstance(record, StateChange) and record.current is S.DISCONNECTED:
            down.set()

    client.add_listener(listen)
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(bound):
        await down.wait()
    return loop.time() - start


@pytest.mark.parametrize("transport", conftest.TRANSPORTS, indirect=True)
@virtual_time
async def test_protocol_keepalive_keeps_a_live_link_and_drops_a_dead_one(transport: str) -> None:
    async with TestServer() as server, FaultProxy(server.port) as proxy:
        client = make_client(proxy.url, ping_interval=None, protocol_keepalive=1.0)
        await client.connect()
        await asyncio.sleep(5)
        assert client.state.state is S.CONNECTED  # the server's Pongs answered
        proxy.set_mode("blackhole")
        await _until_disconnected(client, 10)
        source = client.state.source
        assert isinstance(source, ServerInitiated)
        assert source.close_code == 1011 and "keepalive ping timeout" in source.close_reason
        await client.close()


@pytest.mark.parametrize("transport", conftest.TRANSPORTS, indirect=True)
@virtual_time
async def test_a_close_the_peer_never_answers_ends_within_close_timeout(transport: str) -> None:
    async with TestServer() as server, FaultProxy(server.port) as proxy:
        client = make_client(proxy.url, close_timeout=2.0)
        await client.connect()
        proxy.set_mode("blackhole")
        disconnecting = asyncio.ensure_future(client.disconnect())
        assert await _until_disconnected(client, 10) <= 2.0 + 0.1
        await disconnecting
        await client.close()


@pytest.mark.parametrize("transport", conftest.TRANSPORTS, indirect=True)
def test_a_frozen_server_process_is_a_dead_peer_and_recovery_brings_it_back(
    transport: str,
) -> None:
    # Real time (the peer is another process): SIGSTOP freezes it with its sockets open, so
    # only the health checks can tell; SIGCONT lets the reconnect through.
    server = ServerProcess().start()
    assert server.process is not None
    pid = server.process.pid

    async def main() -> None:
        client = make_client(
            server.url(), on_connection_established=None, ack_required=False,
            ping_request_builder=None, ping_interval=0.2, pong_timeout=0.1,
            connect_timeout=1.0, close_timeout=0.2, proxy=False,
        )  # fmt: skip
        recovery = ConnectionRecoveryHandler(client, strategy=DelayList([0.2] * 50))
        await client.connect()
        os.kill(pid, signal.SIGSTOP)
        try:
            await _until_disconnected(client, 2)
            assert isinstance(client.state.source, NoPongReceived)
        finally:
            os.kill(pid, signal.SIGCONT)
        async with asyncio.timeout(10):
            await client.wait_for(S.CONNECTED)
        recovery.close()
        await client.close()

    try:
        asyncio.run(main())
    finally:
        os.kill(pid, signal.SIGCONT)
        server.kill()
