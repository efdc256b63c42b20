"""A day of simulated time with random faults against the real loopback server.

One client with a recovery handler talks to a TestServer through a FaultProxy. A seeded
random schedule injects a fault every few minutes (server close with a retryable code,
crash and restart, blackhole, network outage, silent server) and clears it. Invariants:
every change follows the table, the task count returns to its baseline, and every
disconnection the policy allows ends connected again.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from statesock.client import WebSocketClient
from statesock.machine import ConnectionState, Record, StateChange
from statesock.network import ManualNetworkMonitor
from statesock.recovery import ConnectionRecoveryHandler
from statesock.retry import PacedBackoff
from statesock.sources import default_reconnect_policy
from statesock.testing import FaultProxy, TestServer, auth_hook, decode_message
from tests.conftest import run_virtual, wait_for_state
from tests.support import DOWN, LEGAL_CHANGES

S = ConnectionState
DAY = 86_400.0


async def soak(seed: int) -> tuple[int, list[Record]]:
    rng = random.Random(seed)
    baseline = len(asyncio.all_tasks())
    server = await TestServer().start()
    proxy = await FaultProxy(server.port).start()
    monitor = ManualNetworkMonitor()
    client = WebSocketClient(
        proxy.url, decode_message, on_connection_established=auth_hook("t"), label="soak"
    )
    # The default strategy, with its randomness seeded too, so that a failure replays.
    handler = ConnectionRecoveryHandler(client, monitor, strategy=PacedBackoff(rng=rng))
    records: list[Record] = []
    client.add_listener(records.append)
    loop = asyncio.get_running_loop()
    await client.connect()
    faults = 0
    while loop.time() < DAY:
        await asyncio.sleep(rng.uniform(60, 900))
        fault = rng.choice(["close", "crash", "blackhole", "network", "silent"])
        outage = rng.uniform(1, 120)
        faults += 1
        if fault == "close":
            await server.close_all(rng.choice([1001, 1011, 1012, 1013, 4000]), "soak")
        elif fault == "crash":
            await server.kill()
            await asyncio.sleep(outage)
            await server.start()
        elif fault == "blackhole":
            proxy.set_mode("blackhole")
            await asyncio.sleep(outage)
            proxy.set_mode("pass")
        elif fault == "network":
            monitor.set_available(False)
            await asyncio.sleep(outage)
            monitor.set_available(True)
        else:
            server.silent = True
            await asyncio.sleep(outage)
            server.silent = False
        # Recovery is bounded by the 25 s backoff cap plus one connect timeout.
        await asyncio.wait_for(wait_for_state(client, S.CONNECTED), timeout=120)
        assert not handler.gave_up
    handler.close()
    await client.close()
    await proxy.stop()
    await server.stop()
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == baseline
    return faults, records


@pytest.mark.timeout(180)
def test_a_day_of_random_faults() -> None:
    faults, records = run_virtual(soak(seed=2026), end=DAY * 2)
    changes = [r for r in records if isinstance(r, StateChange)]
    assert faults > 100
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    for change in changes:
        assert (change.previous, change.current, change.trigger.value) in LEGAL_CHANGES
        assert (change.source is not None) == (change.current in DOWN)
    # Every disconnection the policy allows is followed, later, by connected.
    for index, change in enumerate(changes[:-2]):
        source = change.source
        if change.current is S.DISCONNECTED and source and default_reconnect_policy(source):
            assert any(c.current is S.CONNECTED for c in changes[index:])
    kinds = {c.source.kind for c in changes if c.source is not None}
    assert {"server", "no_pong", "system"} <= kinds
    assert changes[-1].current is S.DISCONNECTED  # the final user close
