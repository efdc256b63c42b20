"""The README's two protocol examples run against loopback servers speaking each protocol."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
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

ROOT = Path(__file__).resolve().parent.parent


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


# -- run as programs: events printed, a refusal said in one line (no traceback) ----------------


@contextlib.contextmanager
def in_a_thread(start: Any) -> Iterator[str]:
    """Run ``start()`` (an async context manager giving a URL) on a loop of its own thread."""
    loop = asyncio.new_event_loop()
    ready: concurrent.futures.Future[str] = concurrent.futures.Future()
    stop = asyncio.Event()

    async def serve_until_stopped() -> None:
        async with start() as url:
            ready.set_result(url)
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve_until_stopped(),))
    thread.start()
    try:
        yield ready.result(timeout=10)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def run_example(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"examples.{module}", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def stream_server() -> AsyncIterator[str]:
    async with TestServer(token="tok") as server:

        async def burst_after_auth() -> None:
            await server.wait_for_connections(1)
            await asyncio.sleep(0.5)  # real time: the client's auth and ack
            await server.send_burst(2)
            await server.close_all(1000, "done")

        task = asyncio.ensure_future(burst_after_auth())
        try:
            yield server.url
        finally:
            task.cancel()


@pytest.mark.transports(
    "websockets",
    reason="runs the example program in a subprocess, which takes the default transport",
)
def test_the_stream_style_program_prints_each_event() -> None:
    with in_a_thread(stream_server) as url:
        result = run_example("stream_style", url, "tok")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    printed = [line for line in result.stdout.splitlines() if line.startswith("event ")]
    assert len(printed) == 2 and '"seq": 0' in printed[0] and '"seq": 1' in printed[1]


@pytest.mark.transports(
    "websockets",
    reason="runs the example program in a subprocess, which takes the default transport",
)
@pytest.mark.parametrize("module", ["stream_style", "graphql_ws"])
def test_a_program_refused_by_the_server_says_why_in_one_line(module: str) -> None:
    start = stream_server if module == "stream_style" else graphql_url
    with in_a_thread(start) as url:
        result = run_example(module, url, "wrong")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"{module}: ") and ("4401" in line or "4403" in line)


@contextlib.asynccontextmanager
async def graphql_url() -> AsyncIterator[str]:
    async with graphql_backend("tok") as (_, url):
        yield url
