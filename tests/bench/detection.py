"""3. Dead-peer detection: a blackhole through the fault proxy, short real intervals.

Latency is measured from the moment the proxy starts swallowing bytes to the client's
``disconnecting(no_pong)``; the bound is ping_interval + pong_timeout. The blackhole starts
at a random phase of the ping cycle, so latencies spread below the bound.
"""

from __future__ import annotations

import asyncio
import random
import time

from statesock.client import WebSocketClient
from statesock.machine import StateChange
from statesock.sources import NoPongReceived
from statesock.testing import FaultProxy, TestServer, auth_hook, decode_message
from tests.bench.common import Result

PING, PONG = 0.2, 0.1


async def _once(rng: random.Random) -> float:
    async with TestServer() as server, FaultProxy(server.port) as proxy:
        client = WebSocketClient(
            proxy.url,
            decode_message,
            on_connection_established=auth_hook("t"),
            ping_interval=PING,
            pong_timeout=PONG,
            close_timeout=0.1,
        )
        detected = asyncio.Event()
        at: list[float] = []

        def listen(record: object) -> None:
            if isinstance(record, StateChange) and isinstance(record.source, NoPongReceived):
                at.append(time.perf_counter())
                detected.set()

        client.add_listener(listen)
        await client.connect()
        await asyncio.sleep(PING * 2 + rng.uniform(0, PING))
        started = time.perf_counter()
        proxy.set_mode("blackhole")
        await asyncio.wait_for(detected.wait(), 5)
        await client.close()
        return at[0] - started


def run(full: bool = False) -> Result:
    repeats = 40 if full else 15
    rng = random.Random(7)
    latencies = [asyncio.run(_once(rng)) for _ in range(repeats)]
    bound = PING + PONG
    result = Result(
        "dead-peer detection",
        "s",
        latencies,
        [bound] * len(latencies),
        "bound ping_interval + pong_timeout",
        target="max <= bound + 0.050 s",
    )
    result.met = max(latencies) <= bound + 0.050
    result.notes.append(f"ping {PING}s, pong timeout {PONG}s; max {max(latencies):.3f}s")
    return result
