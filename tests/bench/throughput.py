"""Throughput: N small JSON events through client.events() vs a raw websockets loop.

The server runs in a separate process so that the client side is measured alone. Both
clients decode with ``json.loads``; runs are interleaved (raw, statesock, raw, ...).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import statistics
import time
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from statesock.client import WebSocketClient

EVENT = json.dumps({"type": "event", "seq": 0, "data": {"symbol": "ABC", "price": 101.25}})


def _serve(port_queue: Any, count: int) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()  # "go": the client is ready to read
        for _ in range(count):
            await ws.send(EVENT)
        await ws.close()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, ping_interval=None, compression=None) as srv:
            port_queue.put(srv.sockets[0].getsockname()[1])
            await asyncio.Future()

    asyncio.run(main())


async def _raw(url: str, count: int) -> float:
    async with connect(url, ping_interval=None, compression=None, proxy=None) as ws:
        await ws.send("go")
        started = time.perf_counter()
        received = 0
        async for message in ws:
            json.loads(message)
            received += 1
            if received == count:
                break
        return count / (time.perf_counter() - started)


async def _statesock(url: str, count: int) -> float:
    client = WebSocketClient(url, json.loads, ack_required=False, compression=False)
    events = client.events()
    await client.connect()
    await client.send("go")
    started = time.perf_counter()
    received = 0
    async for _event in events:
        received += 1
        if received == count:
            break
    rate = count / (time.perf_counter() - started)
    if client.stats.events_dropped:
        raise RuntimeError(f"statesock dropped {client.stats.events_dropped} events")
    await client.close()
    return rate


def run(count: int = 50_000, repeats: int = 5) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    server = ctx.Process(target=_serve, args=(ports, count), daemon=True)
    server.start()
    try:
        url = f"ws://127.0.0.1:{ports.get(timeout=30)}/"
        raw: list[float] = []
        ours: list[float] = []
        for _ in range(repeats):
            raw.append(asyncio.run(_raw(url, count)))
            ours.append(asyncio.run(_statesock(url, count)))
    finally:
        server.terminate()
        server.join()
    return {
        "name": "throughput (events/s)",
        "statesock": ours,
        "anchor": raw,
        "anchor_name": "raw websockets loop",
        "ratio": statistics.median(ours) / statistics.median(raw),
        "target": ">= 0.90",
    }


if __name__ == "__main__":
    result = run()
    print(json.dumps(result, indent=2))
