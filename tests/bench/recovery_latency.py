"""4. Recovery latency: the server process is killed and restarted on the same port.

Measured: time from the new server listening to the client being connected again, per
restart; statesock (ConnectionRecoveryHandler, default strategy) against websockets' own
``async for ws in connect(...)`` reconnect loop, in alternating rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from websockets.asyncio.client import connect

from statesock.machine import ConnectionState, StateChange
from statesock.recovery import ConnectionRecoveryHandler
from tests.bench.common import Result, ServerProcess, make_client

DOWN = 0.5  # seconds the server stays dead
# Each restart follows a stable period, as in life; without it restarts every two seconds
# are flapping, and statesock's flapping guard (rightly) keeps backing off.
STABLE = 1.0


async def _restarts_statesock(server: ServerProcess, restarts: int) -> list[float]:
    client = make_client(server.url())
    handler = ConnectionRecoveryHandler(client, stable_after=STABLE)
    connected = asyncio.Event()

    def listen(record: object) -> None:
        if isinstance(record, StateChange) and record.current is ConnectionState.CONNECTED:
            connected.set()

    client.add_listener(listen)
    await client.connect()
    latencies = await _measure(server, restarts, connected)
    handler.close()
    await client.close()
    return latencies


async def _restarts_websockets(server: ServerProcess, restarts: int) -> list[float]:
    connected = asyncio.Event()

    async def reconnect_loop() -> None:
        async for ws in connect(server.url(), compression=None, proxy=None):
            connected.set()
            with contextlib.suppress(Exception):
                await ws.wait_closed()

    task = asyncio.ensure_future(reconnect_loop())
    await asyncio.wait_for(connected.wait(), 30)
    latencies = await _measure(server, restarts, connected)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return latencies


async def _measure(server: ServerProcess, restarts: int, connected: asyncio.Event) -> list[float]:
    """Restart the server ``restarts`` times; seconds from listening to ``connected``."""
    latencies = []
    for _ in range(restarts):
        await asyncio.sleep(STABLE + 0.1)
        connected.clear()
        await _restart(server)
        await asyncio.wait_for(connected.wait(), 120)
        latencies.append(time.monotonic() - server.ready_at)
    return latencies


async def _restart(server: ServerProcess) -> None:
    server.kill()
    await asyncio.sleep(DOWN)
    await asyncio.to_thread(server.start)


def run(full: bool = False) -> Result:
    rounds, per_round = (4, 5) if full else (2, 5)
    server = ServerProcess().start()
    ours: list[float] = []
    theirs: list[float] = []
    try:
        for round_ in range(rounds):
            order = ["ours", "theirs"] if round_ % 2 == 0 else ["theirs", "ours"]
            for side in order:
                if side == "ours":
                    ours += asyncio.run(_restarts_statesock(server, per_round))
                else:
                    theirs += asyncio.run(_restarts_websockets(server, per_round))
    finally:
        server.kill()
    result = Result(
        f"recovery after restart ({len(ours)} restarts)",
        "s",
        ours,
        theirs,
        "websockets async-for reconnect",
    )
    result.notes.append(
        f"server down {DOWN}s per restart after {STABLE}s connected (stable_after={STABLE}); "
        "time from listening to connected"
    )
    return result
