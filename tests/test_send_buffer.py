"""The send buffer keeps its promises (issue 10): exactly one outcome per message, order
kept through authentication, and no waiting for nothing once recovery is over.

Real loopback servers in virtual time. Each test fails on the behaviour the issue reported
(noted per test as "Before:").
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from statesock.client import WebSocketClient
from statesock.exceptions import SendAbandoned, SendExpired
from statesock.machine import ConnectionState
from statesock.recovery import ConnectionRecoveryHandler
from statesock.retry import DelayList
from statesock.testing import TestServer
from tests.conftest import make_client, virtual_time

S = ConnectionState
BOUND = 600.0


@dataclass
class StallingServer:
    """A server that acks auth, then stops reading until :attr:`reading` is set.

    With ``max_queue=1`` websockets stops reading the socket once one message waits, so a
    large message from the client then sits in TCP buffers and its write cannot finish.
    """

    url: str = ""
    reading: asyncio.Event = field(default_factory=asyncio.Event)
    received: list[str | bytes] = field(default_factory=list)
    sockets: list[ServerConnection] = field(default_factory=list)

    async def handler(self, ws: ServerConnection) -> None:
        self.sockets.append(ws)
        await ws.recv()  # auth
        await ws.send(json.dumps({"type": "connection.ok", "connection_id": "s"}))
        await self.reading.wait()
        async for message in ws:
            self.received.append(message)


@asynccontextmanager
async def stalling_server() -> AsyncIterator[StallingServer]:
    state = StallingServer()
    async with serve(
        state.handler, "127.0.0.1", 0, max_queue=1, max_size=None, compression=None
    ) as server:
        state.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        yield state


BIG = 32 * 2**20  # far more than loopback's socket buffers hold


@virtual_time
async def test_a_message_being_written_cannot_expire() -> None:
    # Before: a message whose TTL ran out while it was being written was reported
    # SendExpired and also delivered, so a caller retrying on SendExpired sent it twice.
    async with stalling_server() as server:

        async def auth_and_filler(client: WebSocketClient) -> None:
            await client.send({"type": "auth"})
            await client.send("filler")  # fills the server's one-message queue

        client = make_client(
            server.url, on_connection_established=auth_and_filler, compression=False
        )
        recovery = ConnectionRecoveryHandler(client, send_buffer_size=4, send_ttl=5)
        sending = asyncio.create_task(client.send(b"x" * BIG))  # buffered before connect
        await asyncio.sleep(0)
        await client.connect()
        await asyncio.sleep(20)  # four TTLs while the write is stuck in TCP
        assert not sending.done()
        assert client.stats.sends_expired == 0
        server.reading.set()
        async with asyncio.timeout(BOUND):
            await sending  # written: no SendExpired
        await asyncio.sleep(1)
        assert [len(m) for m in server.received] == [len("filler"), BIG]
        assert client.stats.sends_expired == client.stats.sends_abandoned == 0
        recovery.close()
        await client.close()


@virtual_time
async def test_a_write_cut_by_the_socket_after_its_ttl_has_one_outcome() -> None:
    # The stuck write fails because the socket goes, after the TTL passed: the message was
    # never fully written, so it is reported once, as expired, and never sent later.
    async with stalling_server() as server:

        async def auth_and_filler(client: WebSocketClient) -> None:
            await client.send({"type": "auth"})
            await client.send("filler")

        client = make_client(
            server.url, on_connection_established=auth_and_filler, compression=False
        )
        recovery = ConnectionRecoveryHandler(
            client, strategy=DelayList([1.0]), send_buffer_size=4, send_ttl=5
        )
        sending = asyncio.create_task(client.send(b"x" * BIG))
        await asyncio.sleep(0)
        await client.connect()
        await asyncio.sleep(10)
        assert not sending.done()
        server.sockets[0].transport.abort()  # the link breaks mid-write
        with pytest.raises(SendExpired):
            async with asyncio.timeout(BOUND):
                await sending
        server.reading.set()
        await client.wait_for(S.CONNECTED)  # recovery reconnects
        await asyncio.sleep(5)
        assert all(len(m) != BIG for m in server.received)  # not resent on the new socket
        assert (client.stats.sends_expired, client.stats.sends_abandoned) == (1, 0)
        recovery.close()
        await client.close()


def sent_order(server: TestServer) -> list[Any]:
    order: list[Any] = []
    for message in server.received:
        if isinstance(message, dict) and message.get("type") == "auth":
            order.append("auth")
        elif isinstance(message, dict) and message.get("type") == "n":
            order.append(message["i"])
        elif isinstance(message, dict):
            order.append(message.get("type"))
    return order


@virtual_time
async def test_a_send_in_authenticating_waits_behind_buffered_messages() -> None:
    # Before: the server saw ['auth', 3, 0, 1, 2]; the README promises in-order flushing.
    async with TestServer() as server:

        async def slow_auth(client: WebSocketClient) -> None:
            await asyncio.sleep(1)  # authenticating lasts a second
            await client.send({"type": "auth", "token": "t"})

        client = make_client(server.url, on_connection_established=slow_auth)
        recovery = ConnectionRecoveryHandler(client, strategy=DelayList([5.0]), send_buffer_size=10)
        await client.connect()
        await server.close_all(1011)
        await client.wait_for(S.DISCONNECTED)
        server.received.clear()
        early = [asyncio.create_task(client.send({"type": "n", "i": i})) for i in range(3)]
        await client.wait_for(S.AUTHENTICATING)
        assert not any(task.done() for task in early)
        async with asyncio.timeout(BOUND):
            await client.send({"type": "n", "i": 3})  # not part of the handshake
            await asyncio.gather(*early)
        await asyncio.sleep(1)
        assert sent_order(server) == ["auth", 0, 1, 2, 3]
        recovery.close()
        await client.close()


@virtual_time
async def test_handshake_sends_go_straight_out_while_others_wait() -> None:
    async with TestServer() as server:
        gate = asyncio.Event()

        async def auth_in_two_steps(client: WebSocketClient) -> None:
            await gate.wait()
            await client.send({"type": "auth", "token": "t"})

        client = make_client(server.url, on_connection_established=auth_in_two_steps)
        recovery = ConnectionRecoveryHandler(client, send_buffer_size=10)
        buffered = asyncio.create_task(client.send({"type": "n", "i": 0}))
        connecting = asyncio.create_task(client.connect())
        await client.wait_for(S.AUTHENTICATING)
        await client.send({"type": "hello"}, handshake=True)  # from outside the hook
        await asyncio.sleep(1)
        assert sent_order(server) == ["hello"]
        assert not buffered.done()
        gate.set()
        async with asyncio.timeout(BOUND):
            await connecting
            await buffered
        await asyncio.sleep(1)
        assert sent_order(server) == ["hello", "auth", 0]
        recovery.close()
        await client.close()


@virtual_time
async def test_giving_up_abandons_waiting_senders_at_once() -> None:
    # Before: after recovery gave up, a buffered send() waited the whole send_ttl and then
    # raised SendExpired.
    async with TestServer() as server:
        client = make_client(server.url)
        recovery = ConnectionRecoveryHandler(
            client, strategy=DelayList([2.0]), send_buffer_size=10, send_ttl=300
        )
        await client.connect()
        server.close_on_open = (1008, "policy violation")  # the reconnect meets a fatal close
        await server.close_all(1011)
        await client.wait_for(S.DISCONNECTED)
        loop = asyncio.get_running_loop()
        asked_at = loop.time()
        waiting = [asyncio.create_task(client.send({"type": "n", "i": i})) for i in range(3)]
        for task in waiting:
            with pytest.raises(SendAbandoned, match="recovery stopped"):
                await task
        assert loop.time() - asked_at < 10  # the reconnect's delay and handshake, not 300 s
        assert recovery.gave_up
        before = loop.time()
        with pytest.raises(SendAbandoned):
            await client.send("after the end")
        assert loop.time() == before  # at once
        # Counted: the three that were buffered; the refused one never entered the buffer.
        assert (client.stats.sends_abandoned, client.stats.sends_expired) == (3, 0)
        recovery.close()
        await client.close()


@virtual_time
async def test_a_user_disconnect_abandons_waiting_senders_at_once() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        recovery = ConnectionRecoveryHandler(
            client, strategy=DelayList([100.0]), send_buffer_size=10, send_ttl=300
        )
        await client.connect()
        await server.close_all(1011)
        await client.wait_for(S.DISCONNECTED)
        waiting = [asyncio.create_task(client.send(str(i))) for i in range(3)]
        await asyncio.sleep(1)
        loop = asyncio.get_running_loop()
        before = loop.time()
        await client.disconnect()
        for task in waiting:
            with pytest.raises(SendAbandoned, match="user disconnected"):
                await task
        assert loop.time() == before
        recovery.close()
        await client.close()
