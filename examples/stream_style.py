"""A Stream-style protocol: auth message, ack with a connection id, JSON health checks.

    client → {"type": "auth", "token": T}
    server → {"type": "connection.ok", "connection_id": "c-1"}      (the ack)
    client → {"type": "health.check", "connection_id": "c-1"}       (every 25 s)
    server → {"type": "health.check", "connection_id": "c-1"}       (the pong)
    server → {"type": "message.new", ...} / {"type": "error", ...}  (app events, errors)

Run: python -m examples.stream_style wss://example.test/connect TOKEN
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from typing import Any

from statesock import HealthCheckPongEvent, ServerErrorEvent, WebSocketClient
from statesock.exceptions import ConnectFailed, ConnectionEnded
from statesock.recovery import ConnectionRecoveryHandler


@dataclass(frozen=True)
class ChatEvent:
    type: str
    payload: dict[str, Any]


def decode(data: str | bytes) -> object:
    message = json.loads(data)
    kind = message.get("type")
    if kind in ("connection.ok", "health.check"):
        return HealthCheckPongEvent(message.get("connection_id"), message)
    if kind == "error":
        # Stream marks errors it will keep returning (bad credentials) as not retryable.
        return ServerErrorEvent(
            message.get("message", ""), message.get("code"), message.get("retryable", True)
        )
    return ChatEvent(kind, message)


def make_client(url: str, token: str, **options: Any) -> WebSocketClient:
    async def authenticate(client: WebSocketClient) -> None:
        await client.send({"type": "auth", "token": token})

    return WebSocketClient(url, decode, on_connection_established=authenticate, **options)


async def main(url: str, token: str, limit: int | None = None) -> list[ChatEvent]:
    client = make_client(url, token)
    recovery = ConnectionRecoveryHandler(client)
    received: list[ChatEvent] = []
    events = client.events(ChatEvent)  # subscribed before connecting: nothing is missed
    try:
        async with client, events:
            print("connected as", client.state.health.connection_id)
            async for event in events:
                received.append(event)
                print(event.type, json.dumps(event.payload, sort_keys=True))
                if limit is not None and len(received) >= limit:
                    break
    finally:
        recovery.close()
    return received


def cli(argv: list[str]) -> int:
    """``python -m examples.stream_style URL TOKEN``: 0 when the stream ends, 1 (with why,
    not a traceback) when the server refuses or ends the connection for good."""
    if len(argv) != 2:
        print("usage: python -m examples.stream_style URL TOKEN", file=sys.stderr)
        return 2
    try:
        asyncio.run(main(argv[0], argv[1]))
    except (ConnectFailed, ConnectionEnded) as exc:
        print(f"stream_style: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
