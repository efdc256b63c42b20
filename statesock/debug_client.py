"""``statesock connect URL``: a debugging client for any WebSocket server.

It prints every transition and every received message, reconnects per the default policy,
and disconnects cleanly (user source, close 1000) on Ctrl-C. Health checks are WebSocket
Ping frames by default, which every server answers; ``--ping json`` sends statesock's JSON
health check instead and treats messages whose ``type`` is ``--pong-type`` as pongs (and
the first one as the auth ack, unless ``--no-ack``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

from .client import WebSocketClient
from .console import Style, configure
from .events import HealthCheckPongEvent
from .exceptions import ConnectFailed, InvalidURL
from .ping import default_ping_request
from .recovery import ConnectionRecoveryHandler
from .redaction import redact_text

__all__ = ["parse_header", "run_connect"]


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"a header must look like 'Name: value', not {text!r}")
    return name.strip(), value.strip()


def _decoder(*health_types: str) -> Any:
    def decode(data: str | bytes) -> Any:
        try:
            message = json.loads(data)
        except ValueError:
            return data
        if isinstance(message, dict) and message.get("type") in health_types:
            connection_id = message.get("connection_id")
            return HealthCheckPongEvent(str(connection_id) if connection_id else None, message)
        return message

    return decode


async def _session(args: argparse.Namespace, headers: list[tuple[str, str]]) -> int:
    style = Style(sys.stdout)
    auth = args.auth_message

    async def authenticate(client: WebSocketClient) -> None:
        if auth is not None:
            await client.send(auth)

    client = WebSocketClient(
        args.url,
        _decoder(args.pong_type, args.ack_type or args.pong_type),
        ping_request_builder=default_ping_request if args.ping == "json" else (lambda _h: None),
        on_connection_established=authenticate,
        ack_required=not args.no_ack,
        subprotocols=args.subprotocol,
        headers=headers or None,
        ping_interval=args.ping_interval,
        pong_timeout=args.pong_timeout,
        label="connect",
    )
    recovery = ConnectionRecoveryHandler(client)

    def show(event: Any) -> None:
        if isinstance(event, HealthCheckPongEvent):
            return
        text = event if isinstance(event, str | bytes) else json.dumps(event)
        print(f"    ← {redact_text(text, limit=500)}", flush=True)

    client.on(None, show)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        with contextlib.suppress(ConnectFailed):
            await client.connect()
        while not stop.is_set() and not recovery.gave_up:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
    finally:
        gave_up = recovery.gave_up
        recovery.close()
        await client.close()
    if gave_up and not stop.is_set():
        source = client.state.source
        reason = source.close_reason if source else "unknown"
        print(style(f"stopped: the reconnect policy gives up after: {reason}", "bold"))
        return 1
    return 0


def run_connect(args: argparse.Namespace) -> int:
    try:
        headers = [parse_header(h) for h in args.header]
    except ValueError as exc:
        print(f"statesock connect: {exc}", file=sys.stderr)
        return 2
    log = open(args.log_file, "w", encoding="utf-8") if args.log_file else None  # noqa: SIM115
    try:
        configure(log)
        return asyncio.run(_session(args, headers))
    except InvalidURL as exc:
        print(f"statesock connect: {exc}", file=sys.stderr)
        return 2
    finally:
        if log is not None:
            log.close()
