"""Health checks (the ping cadence, the pong deadline) against a real server, in virtual time."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from statesock import core_io as core
from statesock.client import WebSocketClient
from statesock.events import HealthCheckInfo
from statesock.machine import ConnectionState
from statesock.ping import default_ping_request
from statesock.sources import NoPongReceived
from statesock.testing import TestServer
from tests.conftest import make_client, transitions_of, virtual_time

S = ConnectionState


def test_default_ping_request_shape() -> None:
    assert json.loads(default_ping_request(HealthCheckInfo("c-7"))) == {
        "type": "health.check",
        "connection_id": "c-7",
    }
    assert json.loads(default_ping_request(HealthCheckInfo())) == {
        "type": "health.check",
        "connection_id": None,
    }


def pinging(client: WebSocketClient) -> bool:
    """The health-check timer is armed (the client checks the link)."""
    return core.TimerKind.HEALTH_CHECK in client._timers


@virtual_time
async def test_the_cadence_is_fixed_whatever_the_round_trips() -> None:
    sent_at: list[float] = []

    def builder(health: HealthCheckInfo) -> str:
        sent_at.append(asyncio.get_running_loop().time())
        return default_ping_request(health)

    async with TestServer() as server:
        server.pong_delay = 2.9
        client = make_client(server.url, ping_request_builder=builder)
        await client.connect()
        start = asyncio.get_running_loop().time()
        await asyncio.sleep(101)
        assert [round(t - start, 6) for t in sent_at] == [25.0, 50.0, 75.0, 100.0]
        await client.close()


@virtual_time
async def test_pings_every_interval_and_measures_round_trip() -> None:
    async with TestServer() as server:
        server.pong_delay = 0.25
        client = make_client(server.url)
        await client.connect()
        await asyncio.sleep(101)
        assert server.health_checks == 4  # at 25, 50, 75, 100 s
        health = client.state.health
        assert health.round_trip == pytest.approx(0.25)
        assert health.pongs == 4
        assert health.last_pong_at == pytest.approx(100.25)
        assert health.connection_id == "c-1"
        checks = [m for m in server.received if m.get("type") == "health.check"]
        assert checks[0] == {"type": "health.check", "connection_id": "c-1"}
        assert client.state.state is S.CONNECTED
        await client.close()


@virtual_time
async def test_no_pong_within_timeout_disconnects_with_no_pong_received() -> None:
    async with TestServer() as server:
        client = make_client(server.url, ping_interval=25, pong_timeout=3)
        seen = transitions_of(client)
        await client.connect()
        server.silent = True
        loop = asyncio.get_running_loop()
        await asyncio.sleep(27.9)
        assert client.state.state is S.CONNECTED
        states = client.states()
        async for change in states:
            if change.current is S.DISCONNECTED:
                break
        assert loop.time() == pytest.approx(28.0, abs=0.01)
        assert client.state.source == NoPongReceived()
        assert seen[-2:] == [
            ("connected", "disconnecting", "no_pong"),
            ("disconnecting", "disconnected", "no_pong"),
        ]
        assert not pinging(client)
        await client.close()


@virtual_time
async def test_a_pong_just_inside_the_deadline_keeps_the_connection() -> None:
    async with TestServer() as server:
        server.pong_delay = 2.9
        client = make_client(server.url, ping_interval=25, pong_timeout=3)
        await client.connect()
        await asyncio.sleep(80)
        assert client.state.state is S.CONNECTED
        assert client.state.health.round_trip == pytest.approx(2.9)
        await client.close()


@virtual_time
async def test_a_late_pong_is_ignored() -> None:
    async with TestServer() as server:
        server.pong_delay = 3.5
        client = make_client(server.url, ping_interval=25, pong_timeout=3)
        records: list[object] = []
        client.add_listener(records.append)
        await client.connect()
        await asyncio.sleep(40)
        assert client.state.state is S.DISCONNECTED
        assert client.state.source == NoPongReceived()
        # The pong that arrived at 28.5 s changed nothing: no record after the close.
        assert [type(r).__name__ for r in records][-1] == "StateChange"
        assert client.state.health.pongs == 0
        await client.close()


@virtual_time
async def test_custom_ping_request_builder_gets_the_health_info() -> None:
    seen: list[HealthCheckInfo] = []

    def builder(health: HealthCheckInfo) -> dict[str, Any]:
        seen.append(health)
        return {"type": "health.check", "custom": True, "id": health.connection_id}

    async with TestServer() as server:
        client = make_client(server.url, ping_request_builder=builder)
        await client.connect()
        await asyncio.sleep(51)
        assert [h.connection_id for h in seen] == ["c-1", "c-1"]
        assert seen[1].pongs == 1
        assert {"type": "health.check", "custom": True, "id": "c-1"} in server.received
        assert client.state.state is S.CONNECTED
        await client.close()


@virtual_time
async def test_builder_returning_none_uses_protocol_ping_frames() -> None:
    async with TestServer() as server:
        client = make_client(server.url, ping_request_builder=lambda health: None)
        await client.connect()
        await asyncio.sleep(76)
        assert server.health_checks == 0  # no JSON health checks were sent
        assert client.state.health.pongs == 3
        assert client.state.health.round_trip is not None
        assert client.state.state is S.CONNECTED
        await client.close()


@virtual_time
async def test_health_checks_run_only_while_connected() -> None:
    async with TestServer() as server:
        server.ack = False
        client = make_client(server.url, auth_timeout=5)
        attempt = asyncio.ensure_future(client.connect())
        await asyncio.sleep(1)
        assert client.state.state is S.AUTHENTICATING
        assert not pinging(client)
        server.ack = True
        with pytest.raises(Exception, match="timed out in authenticating"):
            await attempt
        assert not pinging(client)
        await client.connect()
        assert pinging(client)
        await client.disconnect()
        assert not pinging(client)
        await client.close()


@virtual_time
async def test_a_broken_ping_request_builder_falls_back_to_ping_frames() -> None:
    def broken(health: HealthCheckInfo) -> Any:
        raise RuntimeError("builder bug")

    async with TestServer() as server:
        client = make_client(server.url, ping_request_builder=broken)
        await client.connect()
        await asyncio.sleep(76)
        assert client.state.state is S.CONNECTED
        assert client.state.health.pongs == 3  # Ping frames answered by the server
        assert client.stats.callback_errors == 3
        assert pinging(client)
        await client.close()


@virtual_time
async def test_an_unencodable_ping_message_is_reported_and_pinging_goes_on() -> None:
    async with TestServer() as server:
        client = make_client(server.url, ping_request_builder=lambda health: {"bad": object()})
        await client.connect()
        await asyncio.sleep(51)
        assert client.state.state is S.CONNECTED
        assert client.stats.callback_errors == 2
        assert pinging(client)
        await client.close()
