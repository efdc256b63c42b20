"""1. Throughput: N small JSON events through ``client.events()`` vs a raw websockets loop.

The server runs in another process so the client side is measured alone; both clients
decode with ``json.loads``; runs alternate (statesock first on even rounds, raw on odd).
"""

from __future__ import annotations

import asyncio
import json
import time

from websockets.asyncio.client import connect

from statesock.client import WebSocketClient
from tests.bench.common import Result, ServerProcess

Sample = tuple[float, float]  # (events per wall-clock second, client CPU µs per event)


async def _raw(url: str, count: int) -> Sample:
    async with connect(url, ping_interval=None, compression=None, proxy=None) as ws:
        await ws.send("go")
        started, cpu = time.perf_counter(), time.process_time()
        received = 0
        async for message in ws:
            json.loads(message)
            received += 1
            if received == count:
                break
        wall = time.perf_counter() - started
        return count / wall, (time.process_time() - cpu) / count * 1e6


async def _statesock(url: str, count: int) -> Sample:
    client = WebSocketClient(url, json.loads, ack_required=False, compression=False)
    events = client.events()
    await client.connect()
    await client.send("go")
    started, cpu = time.perf_counter(), time.process_time()
    received = 0
    async for _event in events:
        received += 1
        if received == count:
            break
    rate = count / (time.perf_counter() - started)
    cpu_per_event = (time.process_time() - cpu) / count * 1e6
    dropped = client.stats.events_dropped
    await client.close()
    if dropped:
        raise RuntimeError(f"statesock dropped {dropped} events")
    return rate, cpu_per_event


def run(full: bool = False) -> list[Result]:
    count, repeats = (200_000, 11) if full else (50_000, 9)
    server = ServerProcess("stream", count=count).start()
    ours: list[Sample] = []
    raw: list[Sample] = []
    try:
        for round_ in range(repeats):
            pair = [("ours", _statesock), ("raw", _raw)]
            for name, function in pair if round_ % 2 == 0 else reversed(pair):
                sample = asyncio.run(function(server.url, count))
                (ours if name == "ours" else raw).append(sample)
    finally:
        server.kill()
    rate = Result(
        "throughput",
        "events/s",
        [r for r, _ in ours],
        [r for r, _ in raw],
        "raw websockets recv loop",
        target="ratio >= 0.90",
        higher_is_better=True,
    )
    rate.met = (rate.ratio or 0) >= 0.90
    rate.notes.append(f"{count} events per run, json.loads in both, server in another process")
    cpu = Result(
        "client CPU per event",
        "µs",
        [c for _, c in ours],
        [c for _, c in raw],
        "raw websockets recv loop",
    )
    cpu.notes.append("process CPU time of the client while receiving; less noisy than wall time")
    return [rate, cpu]
