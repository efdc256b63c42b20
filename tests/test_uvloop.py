"""The client on uvloop and on the default loop, in real time, side by side.

Virtual time (looptime) patches the default loop only, so these scenarios run in real time
with short intervals (ping 0.3 s, pong 0.15 s), each on both loops. uvloop's clock ticks in
milliseconds and is read once per loop iteration; these tests keep the client honest about
that (an unmapped answer on loopback comes back within the millisecond of its ping).
uvloop is a dev dependency: missing, these tests skip loudly locally and fail under CI=true.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from statesock import WebSocketClient
from statesock.events import ConnectionAckEvent
from statesock.machine import ConnectionState
from statesock.recovery import ConnectionRecoveryHandler
from statesock.retry import DelayList
from statesock.settings import ClientOptions
from statesock.sources import NoPongReceived
from statesock.testing import AppEvent, TestServer, auth_hook, decode_message

try:
    import uvloop
except ImportError:  # pragma: no cover - the dev extra has it
    uvloop = None  # type: ignore[assignment]

S = ConnectionState
FAST: ClientOptions = {"ping_interval": 0.3, "pong_timeout": 0.15}

Runner = Callable[[Coroutine[Any, Any, None]], None]


def _runners() -> list[Any]:
    runners: list[Any] = [pytest.param(asyncio.run, id="asyncio")]
    if uvloop is not None:
        runners.append(pytest.param(uvloop.run, id="uvloop"))
    elif os.environ.get("CI") == "true":
        runners.append(pytest.param(None, id="uvloop-missing"))
    else:
        runners.append(
            pytest.param(None, id="uvloop", marks=pytest.mark.skip("uvloop is not installed"))
        )
    return runners


@pytest.fixture(params=_runners())
def run(request: pytest.FixtureRequest) -> Runner:
    if request.param is None:
        pytest.fail("uvloop is not installed (it is in the dev extra)")
    runner: Runner = request.param
    return runner


def unmapped_decoder(data: str | bytes) -> Any:
    """Maps the ack only: health-check answers stay plain dicts (liveness from any frame)."""
    message = json.loads(data)
    if message.get("type") == "connection.ok":
        return ConnectionAckEvent(message.get("connection_id"))
    return message


def test_unmapped_answers_keep_the_link_alive(run: Runner) -> None:
    async def scenario() -> None:
        async with TestServer() as server:
            client = WebSocketClient(
                server.url, unmapped_decoder, on_connection_established=auth_hook("t"), **FAST
            )
            await client.connect()
            await asyncio.sleep(2.0)
            assert client.state.state is S.CONNECTED, client.final_source
            assert server.health_checks >= 5
            await client.close()

    run(scenario())


def test_mapped_pongs_and_protocol_pings_count(run: Runner) -> None:
    async def scenario() -> None:
        async with TestServer() as server:
            mapped = WebSocketClient(
                server.url, decode_message, on_connection_established=auth_hook("t"), **FAST
            )
            protocol = WebSocketClient(
                server.url,
                decode_message,
                ping_request_builder=lambda _health: None,  # protocol Ping frames
                on_connection_established=auth_hook("t"),
                **FAST,
            )
            await mapped.connect()
            await protocol.connect()
            await asyncio.sleep(1.5)
            assert mapped.state.health.pongs >= 3
            assert protocol.state.health.pongs >= 3
            assert protocol.state.health.round_trip is not None
            await mapped.close()
            await protocol.close()

    run(scenario())


def test_a_silent_peer_is_noticed(run: Runner) -> None:
    async def scenario() -> None:
        async with TestServer() as server:
            client = WebSocketClient(
                server.url, decode_message, on_connection_established=auth_hook("t"), **FAST
            )
            await client.connect()
            server.silent = True
            await asyncio.wait_for(client.wait_for(S.DISCONNECTED), 3)
            assert isinstance(client.state.source, NoPongReceived)
            await client.close()

    run(scenario())


def test_events_flow_in_order_with_backpressure(run: Runner) -> None:
    async def scenario() -> None:
        async with TestServer() as server:
            client = WebSocketClient(
                server.url,
                decode_message,
                on_connection_established=auth_hook("t"),
                event_queue_size=8,
                ping_interval=0.3,
                pong_timeout=0.15,
            )
            events = client.events(AppEvent)
            await client.connect()
            await server.send_burst(500)
            got = []
            async for event in events:
                got.append(event.payload["seq"])
                if len(got) % 100 == 0:
                    await asyncio.sleep(0.05)  # a slow reader: the client stops reading
                if len(got) == 500:
                    break
            assert got == list(range(500))
            assert client.state.state is S.CONNECTED
            await client.close()

    run(scenario())


def test_a_killed_and_restarted_server_is_reconnected(run: Runner) -> None:
    async def scenario() -> None:
        async with TestServer() as server:
            client = WebSocketClient(
                server.url, decode_message, on_connection_established=auth_hook("t"), **FAST
            )
            recovery = ConnectionRecoveryHandler(client, strategy=DelayList([0.1]))
            await client.connect()
            await server.kill()
            await asyncio.wait_for(client.wait_for(S.DISCONNECTED), 3)
            await server.restart()
            await asyncio.wait_for(client.wait_for(S.CONNECTED), 5)
            assert recovery.reconnects >= 1
            assert client.stats.reconnects == recovery.reconnects
            recovery.close()
            await client.close()
            assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("statesock-")]

    run(scenario())
