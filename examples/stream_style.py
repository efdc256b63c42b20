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
    try:
        async with client:
            print("connected as", client.state.health.connection_id)
            async for event in client.events(ChatEvent):
                received.append(event)
                if limit is not None and len(received) >= limit:
                    break
    finally:
        recovery.close()
    return received


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
