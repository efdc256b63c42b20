"""Health checks and opening connections: client CPU per unit, statesock against raw websockets.

Health check: K idle connections, each pinging every P seconds with a protocol Ping frame
(statesock: ``ping_request_builder=None``; raw websockets: its own keepalive,
``ping_interval=P``); each raw connection also has the reading task every app runs. Client
CPU over a window of W seconds is divided by the Pings the server answered in that window
(it counts them), so both sides pay for the same work.

Open a connection: K connections opened in concurrent batches of 100 (statesock: construct
the client and ``connect()``; raw: ``connect()`` plus its reading task), each side with its
default keep-alive; client CPU per connection. Closing is not measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from statesock import WebSocketClient
from tests.bench.common import Result, ServerProcess, cpu_share, make_client, raise_fd_limit

BATCH = 100


async def _read(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


async def _open_raw(url: str, count: int, **options: Any) -> list[Any]:
    opened: list[Any] = []
    for start in range(0, count, BATCH):
        size = min(BATCH, count - start)
        sockets = await asyncio.gather(
            *(connect(url, compression=None, proxy=None, **options) for _ in range(size))
        )
        opened.extend((ws, asyncio.ensure_future(_read(ws))) for ws in sockets)
    return opened


async def _close_raw(opened: list[Any]) -> None:
    for ws, _task in opened:
        ws.close_timeout = 0.5
    await asyncio.gather(*(ws.close() for ws, _ in opened), return_exceptions=True)
    for _ws, task in opened:
        task.cancel()


async def _open_statesock(url: str, count: int, **options: Any) -> list[WebSocketClient]:
    opened: list[WebSocketClient] = []
    for start in range(0, count, BATCH):
        clients = [make_client(url, **options) for _ in range(min(BATCH, count - start))]
        await asyncio.gather(*(client.connect() for client in clients))
        opened.extend(clients)
    return opened


async def _close_statesock(opened: list[WebSocketClient]) -> None:
    await asyncio.gather(*(client.close() for client in opened), return_exceptions=True)


async def health_raw(
    server: ServerProcess, count: int, interval: float, window: float
) -> tuple[float, float]:
    opened = await _open_raw(server.url(), count, ping_interval=interval, ping_timeout=interval / 2)
    try:
        return await _measure_pings(server, interval, window)
    finally:
        await _close_raw(opened)


async def health_statesock(
    server: ServerProcess, count: int, interval: float, window: float
) -> tuple[float, float]:
    opened = await _open_statesock(
        server.url(), count, ping_interval=interval, pong_timeout=interval / 2
    )
    try:
        return await _measure_pings(server, interval, window)
    finally:
        await _close_statesock(opened)


async def _measure_pings(
    server: ServerProcess, interval: float, window: float
) -> tuple[float, float]:
    """(client CPU µs per answered Ping, server CPU share) over ``window`` seconds."""
    await asyncio.sleep(interval)  # every client past its first ping
    server.command("pings")
    before = server.cpu()
    cpu0 = time.process_time()
    await asyncio.sleep(window)
    cpu = time.process_time() - cpu0
    pings = int(server.command("pings"))
    share = cpu_share(before, server.cpu())
    if pings == 0:
        raise RuntimeError("no Ping reached the server")
    return cpu / pings * 1e6, share


async def connect_raw(server: ServerProcess, count: int) -> tuple[float, float]:
    return await _measure_open(server, count, _open_raw, _close_raw)


async def connect_statesock(server: ServerProcess, count: int) -> tuple[float, float]:
    return await _measure_open(server, count, _open_statesock, _close_statesock)


async def _measure_open(
    server: ServerProcess,
    count: int,
    open_: Callable[[str, int], Awaitable[list[Any]]],
    close: Callable[[list[Any]], Awaitable[None]],
) -> tuple[float, float]:
    """(client CPU µs per opened connection, server CPU share while opening)."""
    before = server.cpu()
    cpu0 = time.process_time()
    opened = await open_(server.url(), count)
    cpu = time.process_time() - cpu0
    share = cpu_share(before, server.cpu())
    await close(opened)
    return cpu / count * 1e6, share


def _alternate(
    rounds: int, sides: dict[str, Callable[[], Coroutine[Any, Any, tuple[float, float]]]]
) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    names = list(sides)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            out[name].append(asyncio.run(sides[name]()))
    return out


def _result(name: str, samples: dict[str, list[tuple[float, float]]], anchor: str) -> Result:
    ours, raw = samples["statesock"], samples["raw"]
    return Result(
        name,
        "µs CPU",
        [cpu for cpu, _ in ours],
        [cpu for cpu, _ in raw],
        anchor,
        server_cpu=[share for _, share in ours + raw],
    )


def run(full: bool = False) -> list[Result]:
    raise_fd_limit()
    clients, interval, window, rounds = (2_000, 2.5, 10.0, 3) if full else (1_000, 1.0, 4.0, 3)
    opens, open_rounds = (10_000, 3) if full else (1_000, 5)
    server = ServerProcess().start()
    try:
        health = _alternate(
            rounds,
            {
                "statesock": lambda: health_statesock(server, clients, interval, window),
                "raw": lambda: health_raw(server, clients, interval, window),
            },
        )
        asyncio.run(connect_raw(server, 100))  # warm-up: imports, caches
        asyncio.run(connect_statesock(server, 100))
        opening = _alternate(
            open_rounds,
            {
                "statesock": lambda: connect_statesock(server, opens),
                "raw": lambda: connect_raw(server, opens),
            },
        )
    finally:
        server.kill()
    ping = _result(
        f"one health check ({clients:,} clients at {interval:g} s)",
        health,
        "websockets keepalive ping",
    )
    ping.check(1.0)
    ping.notes.append(f"client CPU over {window:g} s / Pings the server answered")
    opened = _result(f"open a connection ({opens:,})", opening, "raw websockets connect")
    opened.check(1.25)
    opened.notes.append(
        f"batches of {BATCH} concurrent opens; raw includes its reading task; "
        "statesock includes constructing the client"
    )
    return [ping, opened]
