"""The README's two protocol examples run against loopback servers speaking each protocol."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from examples import graphql_ws, stream_style
from statesock.exceptions import ConnectFailed
from statesock.machine import ConnectionState
from statesock.recovery import ConnectionRecoveryHandler
from statesock.testing import TestServer
from tests.conftest import virtual_time, wait_for_state


@virtual_time
async def test_stream_style_example_receives_events() -> None:
    async with TestServer(token="tok") as server:
        task = asyncio.ensure_future(stream_style.main(server.url, "tok", limit=3))
        await server.wait_for_connections(1)
        await asyncio.sleep(0.1)
        await server.send_burst(3)
        events = await task
        assert [e.payload["seq"] for e in events] == [0, 1, 2]
        assert server.received[0] == {"type": "auth", "token": "tok"}


@virtual_time
async def test_stream_style_example_with_a_bad_token_fails_clearly() -> None:
    async with TestServer(token="tok") as server:
        with pytest.raises(ConnectFailed, match="4401"):
            await stream_style.main(server.url, "wrong")


class GraphQLServer:
    """Just enough graphql-transport-ws: init/ack, ping/pong both ways, subscribe/next."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.received: list[dict[str, Any]] = []
        self.port = 0

    async def handler(self, ws: ServerConnection) -> None:
        init = json.loads(await ws.recv())
        self.received.append(init)
        if init.get("type") != "connection_init" or init["payload"].get("token") != self.token:
            await ws.close(4403, "Forbidden")
            return
        await ws.send(json.dumps({"type": "connection_ack"}))
        await ws.send(json.dumps({"type": "ping"}))
        async for data in ws:
            message = json.loads(data)
            self.received.append(message)
            if message["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif message["type"] == "subscribe":
                for price in (101, 102, 103):
                    payload = {"data": {"priceChanged": {"symbol": "ABC", "price": price}}}
                    await ws.send(
                        json.dumps({"id": message["id"], "type": "next", "payload": payload})
                    )
                await ws.send(json.dumps({"id": message["id"], "type": "complete"}))


@contextlib.asynccontextmanager
async def graphql_backend(token: str) -> AsyncIterator[tuple[GraphQLServer, str]]:
    backend = GraphQLServer(token)
    async with serve(
        backend.handler, "127.0.0.1", 0, subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as server:
        yield backend, f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


@virtual_time
async def test_graphql_transport_ws_example() -> None:
    async with graphql_backend("tok") as (backend, url):
        items = await graphql_ws.main(url, "tok", limit=3)
        prices = [i.payload["data"]["priceChanged"]["price"] for i in items]
        assert prices == [101, 102, 103]
        kinds = [m["type"] for m in backend.received]
        assert kinds[0] == "connection_init"
        assert sorted(kinds[1:3]) == ["pong", "subscribe"]  # the server's ping was answered


@virtual_time
async def test_graphql_health_checks_and_4403_is_fatal() -> None:
    async with graphql_backend("tok") as (backend, url):
        client = graphql_ws.make_client(url, "tok")
        await client.connect()
        await asyncio.sleep(60)
        assert [m["type"] for m in backend.received].count("ping") == 2  # 25 s, 50 s
        assert client.state.health.pongs == 2
        await client.close()

        forbidden = graphql_ws.make_client(url, "wrong")
        recovery = ConnectionRecoveryHandler(forbidden)
        with pytest.raises(ConnectFailed, match="4403"):
            await forbidden.connect()
        await asyncio.sleep(30)
        assert recovery.gave_up
        assert forbidden.state.state is ConnectionState.DISCONNECTED
        recovery.close()
        await forbidden.close()
        await wait_for_state(forbidden, ConnectionState.DISCONNECTED)
