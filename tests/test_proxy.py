"""Proxies: ``proxy=`` keeps websockets' meaning (True: the environment's proxy, the default; a
URL; None or False: off), through a real HTTP CONNECT proxy on loopback.

websockets picks the environment's proxy in ``websockets.proxy.get_proxy``: first
``urllib.request.proxy_bypass(host:port)`` (which on Linux reads ``no_proxy``/``NO_PROXY`` and
does not exempt localhost by itself), then ``urllib.request.getproxies()`` in the order
``ws``/``wss``, ``socks``, ``https``, ``http`` (``http`` only for ``ws://``). Each test starts
from an environment with every ``*_proxy`` variable removed.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect

from statesock import ConnectFailed, ConnectionState, WebSocketClient
from statesock.testing import FaultProxy, HTTPConnectProxy, TestServer, auth_hook, decode_message
from tests.conftest import virtual_time


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    yield


def _client(server: TestServer, **kwargs: object) -> WebSocketClient:
    return WebSocketClient(
        server.url,
        decode_message,
        on_connection_established=auth_hook("t"),
        **kwargs,  # type: ignore[arg-type]
    )


async def _connect_and_close(client: WebSocketClient) -> ConnectionState:
    try:
        await asyncio.wait_for(client.connect(), 10)
        return client.state.state
    finally:
        await client.close()


@virtual_time
async def test_the_proxy_tunnels_a_plain_websockets_connection() -> None:
    async with TestServer() as server, HTTPConnectProxy() as proxy:
        async with connect(server.url, proxy=proxy.url) as ws:
            await ws.send('{"type": "auth", "token": "t"}')
            assert "connection.ok" in str(await ws.recv())
        assert proxy.targets == [f"127.0.0.1:{server.port}"]
        assert proxy.authorizations == [None]


@virtual_time
async def test_the_proxy_refuses_targets_off_loopback() -> None:
    async with HTTPConnectProxy() as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        status = await reader.readline()
        writer.close()
        assert status.startswith(b"HTTP/1.1 403")
        assert proxy.targets == ["example.com:443"]


@virtual_time
async def test_an_explicit_proxy_url_is_used() -> None:
    async with TestServer(token="t") as server, HTTPConnectProxy() as proxy:
        state = await _connect_and_close(_client(server, proxy=proxy.url))
        assert state is ConnectionState.CONNECTED
        assert proxy.targets == [f"127.0.0.1:{server.port}"]
        assert server.handshakes == 1


@virtual_time
async def test_proxy_credentials_in_the_url_are_sent_as_proxy_authorization() -> None:
    async with TestServer() as server, HTTPConnectProxy() as proxy:
        expected = "Basic " + base64.b64encode(b"ann:hunter2").decode()
        proxy.require_auth = expected
        url = proxy.url.replace("http://", "http://ann:hunter2@")
        state = await _connect_and_close(_client(server, proxy=url))
        assert state is ConnectionState.CONNECTED
        assert proxy.authorizations == [expected]


@virtual_time
async def test_a_proxy_refusal_is_a_failed_connect_not_a_crash() -> None:
    async with TestServer() as server, HTTPConnectProxy() as proxy:
        proxy.require_auth = "Basic nope"
        client = _client(server, proxy=proxy.url)
        with pytest.raises(ConnectFailed):
            await _connect_and_close(client)
        assert proxy.targets == [f"127.0.0.1:{server.port}"]
        assert server.handshakes == 0


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "ws_proxy"])
def test_the_environment_proxy_is_the_default(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    @virtual_time
    async def scenario() -> None:
        async with TestServer() as server, HTTPConnectProxy() as proxy:
            monkeypatch.setenv(variable, proxy.url)
            state = await _connect_and_close(_client(server))
            assert state is ConnectionState.CONNECTED
            assert proxy.targets == [f"127.0.0.1:{server.port}"]

    scenario()


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.1", "*"])
def test_no_proxy_bypasses_the_environment_proxy(
    monkeypatch: pytest.MonkeyPatch, no_proxy: str
) -> None:
    @virtual_time
    async def scenario() -> None:
        async with TestServer() as server, HTTPConnectProxy() as proxy:
            monkeypatch.setenv("HTTPS_PROXY", proxy.url)
            monkeypatch.setenv("NO_PROXY", no_proxy)
            state = await _connect_and_close(_client(server))
            assert state is ConnectionState.CONNECTED
            assert proxy.targets == []

    scenario()


@pytest.mark.parametrize("off", [None, False])
def test_proxy_off_ignores_the_environment(
    monkeypatch: pytest.MonkeyPatch, off: bool | None
) -> None:
    @virtual_time
    async def scenario() -> None:
        async with TestServer() as server, HTTPConnectProxy() as proxy:
            monkeypatch.setenv("HTTPS_PROXY", proxy.url)
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            state = await _connect_and_close(_client(server, proxy=off))
            assert state is ConnectionState.CONNECTED
            assert proxy.targets == []
            assert server.handshakes == 1

    scenario()


@virtual_time
async def test_stop_ends_a_connection_still_waiting_for_its_upstream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connecting = asyncio.Event()

    async def upstream_never_answers(*args: object, **kwargs: object) -> None:
        connecting.set()
        await asyncio.Event().wait()

    open_connection = asyncio.open_connection  # the client's own, a real one
    proxy = await FaultProxy(9).start()
    baseline = asyncio.all_tasks()
    # The proxy's upstream connect (asyncio.open_connection, looked up at each call) now
    # never answers.
    monkeypatch.setattr(asyncio, "open_connection", upstream_never_answers)
    _reader, writer = await open_connection("127.0.0.1", proxy.port)
    await asyncio.wait_for(connecting.wait(), 5)
    await proxy.stop()
    await asyncio.sleep(0)
    assert asyncio.all_tasks() <= baseline
    writer.close()
