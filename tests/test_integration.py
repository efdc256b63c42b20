"""Each edge rule of DESIGN.md through the real client against real loopback servers.

Time is virtual (looptime); exact state sequences and sources are asserted.
"""

from __future__ import annotations

import asyncio

import pytest

from statesock.exceptions import ConnectFailed, ConnectionRefused, HandshakeRejected
from statesock.machine import ConnectionState
from statesock.sources import ServerInitiated, Timeout, UserInitiated
from statesock.testing import TestServer
from tests.conftest import (
    blackhole_server,
    coming_up,
    make_client,
    run_virtual,
    server_url,
    transitions_of,
    virtual_time,
    wait_for_state,
)

S = ConnectionState
HAPPY = coming_up("initialized")


@virtual_time
async def test_connect_authenticate_then_user_disconnect() -> None:
    async with TestServer(token="t") as server:
        client = make_client(server.url)
        seen = transitions_of(client)
        snapshot = await client.connect()
        assert snapshot.state is S.CONNECTED
        assert snapshot.health.connection_id == "c-1"
        assert server.received[0] == {"type": "auth", "token": "t"}
        await client.disconnect()
        assert seen == [
            *HAPPY,
            ("connected", "disconnecting", "user"),
            ("disconnecting", "disconnected", "user"),
        ]
        await client.close()


@virtual_time
async def test_disconnect_sends_close_1000_with_the_reason() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        await client.connect()
        ws = next(iter(server.connections.values()))
        await client.disconnect()
        await ws.wait_closed()
        assert ws.close_code == 1000
        assert ws.close_reason == "user disconnect"
        await client.close()


@virtual_time
async def test_connect_while_active_opens_exactly_one_socket() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        seen = transitions_of(client)
        results = await asyncio.gather(client.connect(), client.connect(), client.connect())
        assert all(r.state is S.CONNECTED for r in results)
        assert await client.connect() == client.state
        assert server.handshakes == 1
        assert seen == HAPPY
        await client.close()


@virtual_time
async def test_connect_while_disconnecting_completes_the_close_then_connects() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        seen = transitions_of(client)
        await client.connect()
        disconnecting = asyncio.ensure_future(client.disconnect())
        await asyncio.sleep(0)
        assert client.state.state is S.DISCONNECTING
        snapshot = await client.connect()
        await disconnecting
        assert snapshot.state is S.CONNECTED
        assert seen == [
            *HAPPY,
            ("connected", "disconnecting", "user"),
            ("disconnecting", "disconnected", "user"),
            ("disconnected", "connecting", ""),
            ("connecting", "authenticating", ""),
            ("authenticating", "connected", ""),
        ]
        assert server.handshakes == 2
        await client.close()


@virtual_time
async def test_user_disconnect_while_disconnecting_replaces_the_source() -> None:
    async with TestServer() as server:
        server.silent = True
        client = make_client(server.url, ping_interval=25, pong_timeout=3)
        records: list[object] = []
        client.add_listener(records.append)
        await client.connect()
        await asyncio.sleep(28.5)  # the pong deadline (25 + 3) passes: disconnecting(no_pong)
        assert client.state.state in (S.DISCONNECTING, S.DISCONNECTED)
        await client.disconnect()
        assert client.state.source == UserInitiated()
        internal = [r for r in records if type(r).__name__ == "InternalTransition"]
        assert len(internal) == 1
        await client.close()


@virtual_time
async def test_user_disconnect_while_disconnected_replaces_the_source() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        await client.connect()
        await server.close_all(1011, "overloaded")
        await asyncio.sleep(1)
        assert client.state.state is S.DISCONNECTED
        assert client.state.source == ServerInitiated(1011, "overloaded")
        after = await client.disconnect()
        assert after.state is S.DISCONNECTED
        assert after.source == UserInitiated()
        await client.close()


@virtual_time
async def test_server_close_code_and_reason_become_the_source() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        seen = transitions_of(client)
        await client.connect()
        await server.close_all(4008, "policy")
        await asyncio.sleep(1)
        assert seen[-1] == ("connected", "disconnected", "server")
        assert client.state.source == ServerInitiated(4008, "policy")
        await client.close()


@virtual_time
async def test_killed_server_is_a_server_source_with_1006() -> None:
    server = await TestServer().start()
    client = make_client(server.url)
    await client.connect()
    await server.kill()
    await asyncio.sleep(1)
    source = client.state.source
    assert isinstance(source, ServerInitiated)
    assert source.close_code == 1006
    assert client.state.state is S.DISCONNECTED
    await client.close()


@virtual_time
async def test_connect_timeout_when_the_handshake_never_completes() -> None:
    hole = await blackhole_server()
    client = make_client(server_url(hole), connect_timeout=10)
    seen = transitions_of(client)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectFailed) as info:
        await client.connect()
    assert loop.time() - started == pytest.approx(10, abs=0.01)
    assert info.value.source == Timeout(S.CONNECTING)
    assert seen == [
        ("initialized", "connecting", ""),
        ("connecting", "disconnecting", "timeout"),
        ("disconnecting", "disconnected", "timeout"),
    ]
    await client.close()
    hole.close()
    await hole.wait_closed()


@virtual_time
async def test_auth_timeout_when_the_server_never_acks() -> None:
    async with TestServer() as server:
        server.ack = False
        client = make_client(server.url, auth_timeout=7)
        seen = transitions_of(client)
        with pytest.raises(ConnectFailed) as info:
            await client.connect()
        assert info.value.source == Timeout(S.AUTHENTICATING)
        assert asyncio.get_running_loop().time() == pytest.approx(7, abs=0.01)
        assert seen[-2:] == [
            ("authenticating", "disconnecting", "timeout"),
            ("disconnecting", "disconnected", "timeout"),
        ]
        await client.close()


@virtual_time
async def test_refused_connection_is_a_server_source_with_the_error() -> None:
    hole = await blackhole_server()
    url = server_url(hole)
    hole.close()
    await hole.wait_closed()
    client = make_client(url)
    with pytest.raises(ConnectFailed) as info:
        await client.connect()
    source = info.value.source
    assert isinstance(source, ServerInitiated)
    assert isinstance(source.error, ConnectionRefused)
    await client.close()


@virtual_time
async def test_handshake_rejection_carries_status_and_retry_after() -> None:
    async with TestServer() as server:
        server.reject_status = 503
        server.reject_headers = {"Retry-After": "7"}
        client = make_client(server.url)
        with pytest.raises(ConnectFailed) as info:
            await client.connect()
        source = info.value.source
        assert isinstance(source, ServerInitiated)
        error = source.error
        assert isinstance(error, HandshakeRejected)
        assert (error.status, error.retry_after) == (503, 7.0)
        await client.close()


@pytest.mark.parametrize("state", [S.CONNECTING, S.AUTHENTICATING, S.CONNECTED])
def test_user_disconnect_in_each_active_state(state: ConnectionState) -> None:
    async def scenario() -> None:
        async with TestServer() as server:
            hole = await blackhole_server()
            if state is S.AUTHENTICATING:
                server.ack = False
            url = server_url(hole) if state is S.CONNECTING else server.url
            client = make_client(url)
            seen = transitions_of(client)
            attempt = asyncio.ensure_future(client.connect())
            await wait_for_state(client, state)
            await client.disconnect()
            if state is S.CONNECTED:
                assert (await attempt).state is S.CONNECTED
            else:
                with pytest.raises(ConnectFailed):
                    await attempt
            assert seen[-2:] == [
                (state.value, "disconnecting", "user"),
                ("disconnecting", "disconnected", "user"),
            ]
            assert client.state.source == UserInitiated()
            await client.close()
            hole.close()
            await hole.wait_closed()

    run_virtual(scenario())
