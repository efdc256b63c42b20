"""graphql-transport-ws (the protocol of graphql-ws) over statesock.

    subprotocol "graphql-transport-ws"
    client → {"type": "connection_init", "payload": {"token": T}}   (the auth message)
    server → {"type": "connection_ack"}                            (the ack)
    client → {"type": "ping"}  server → {"type": "pong"}           (health checks)
    server → {"type": "ping"}  client → {"type": "pong"}           (answered by the client)
    client → {"type": "subscribe", "id": "1", "payload": {"query": ...}}
    server → {"type": "next", "id": "1", "payload": {...}} ... {"type": "complete", "id": "1"}
    close 4403 Forbidden (and the other 44xx codes) is fatal: the default policy stops.

Run: python -m examples.graphql_ws wss://example.test/graphql TOKEN
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from typing import Any

from statesock import HealthCheckPongEvent, WebSocketClient
from statesock.exceptions import ConnectFailed, ConnectionEnded
from statesock.recovery import ConnectionRecoveryHandler

SUBSCRIPTION = 'subscription { priceChanged(symbol: "ABC") { symbol price } }'


@dataclass(frozen=True)
class Next:
    id: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class ServerPing:
    payload: Any = None


@dataclass(frozen=True)
class Complete:
    id: str


def decode(data: str | bytes) -> object:
    message = json.loads(data)
    kind = message.get("type")
    if kind in ("connection_ack", "pong"):
        return HealthCheckPongEvent(None, message)
    if kind == "ping":
        return ServerPing(message.get("payload"))
    if kind == "next":
        return Next(message["id"], message.get("payload", {}))
    if kind == "complete":
        return Complete(message["id"])
    return message  # "error" and anything newer: passed through to subscribers


def make_client(url: str, token: str, **options: Any) -> WebSocketClient:
    async def connection_init(client: WebSocketClient) -> None:
        await client.send({"type": "connection_init", "payload": {"token": token}})

    async def subscribe(client: WebSocketClient) -> None:
        # Runs after every (re)connection: a new socket has no subscriptions.
        await client.send({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})

    client = WebSocketClient(
        url,
        decode,
        ping_request_builder=lambda health: {"type": "ping"},
        on_connection_established=connection_init,
        on_connected=subscribe,
        subprotocols=["graphql-transport-ws"],
        **options,
    )

    async def answer_ping(ping: ServerPing) -> None:
        await client.send({"type": "pong"})

    client.on(ServerPing, answer_ping)
    return client


async def main(url: str, token: str, limit: int | None = None) -> list[Next]:
    client = make_client(url, token)
    recovery = ConnectionRecoveryHandler(client)
    received: list[Next] = []
    items = client.events(Next)  # subscribed before connecting: nothing is missed
    try:
        async with client, items:
            async for item in items:
                received.append(item)
                print(item.payload)
                if limit is not None and len(received) >= limit:
                    break
    finally:
        recovery.close()
    return received


def cli(argv: list[str]) -> int:
    """``python -m examples.graphql_ws URL TOKEN``: 0 when the stream ends, 1 (with why,
    not a traceback) when the server refuses the token (4403) or ends the connection."""
    if len(argv) != 2:
        print("usage: python -m examples.graphql_ws URL TOKEN", file=sys.stderr)
        return 2
    try:
        asyncio.run(main(argv[0], argv[1]))
    except (ConnectFailed, ConnectionEnded) as exc:
        print(f"graphql_ws: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
