"""Issue 10's closing-note figures: delivery and lifecycle faults, measured in real time.

``python -m tests.bench.delivery_faults [--quick] [--only NAME ...] [--out FILE]``

Everything runs on the real clock: the point is what a real TCP backlog does to delivery
and to the pong deadline (in virtual time the clock stands still while the loop is busy, so
a flood could never meet a deadline). The figures:

* ``burst``: a consumer that pauses once for 1.5 s (after its 100th event) during a
  10,000-message burst, default settings: events delivered out of 10,000 (5 runs). Server:
  the benchmark server in its own process (``/recv``), pre-encoded 100-byte events.
* ``slow``: a slow, steady ``events()`` consumer (about 200 events/s) against a server that
  pushes 1,000 events/s, default settings (ping 25 s, pong 3 s, queue 1024, JSON health
  checks, ack), for 2 minutes (``--quick``: 20 s): disconnections, and what was delivered,
  dropped and skipped. Server: :class:`statesock.testing.TestServer` in this process.
* ``flood``: 1,000,000 events (``--quick``: 200,000) as fast as TCP takes them, ping 5 s,
  pong 3 s (protocol Ping frames: the benchmark server answers them, behind the flood):
  ``NoPongReceived`` count; once more with ping 0.5 s, pong 0.25 s, far below how long a
  pong waits behind the flood. Server: the benchmark server in its own process.
* ``first``: 100 runs against a server that sends its ack and a welcome back to back:
  welcomes lost when subscribed before ``connect()`` (the README pattern), and, subscribed
  inside ``async with``, how many were delivered, counted as unclaimed, or lost.
* ``sendbuf``: the send buffer's promises: a write stuck past its TTL (outcomes, copies the
  server got), order through authenticating, and the time from give-up to ``SendAbandoned``.

The table goes to stdout; ``--out`` also writes the figures as JSON. ``run(full)`` returns
the same figures as :class:`~tests.bench.common.Result` rows for ``tests.bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from statesock.client import WebSocketClient
from statesock.exceptions import SendAbandoned, SendExpired
from statesock.machine import ConnectionState, StateChange
from statesock.recovery import ConnectionRecoveryHandler
from statesock.retry import DelayList
from statesock.sources import NoPongReceived
from statesock.testing import AppEvent, TestServer, auth_hook, decode_message
from tests.bench.common import Result, ServerProcess

S = ConnectionState
Figures = dict[str, Any]


def _disconnections(client: WebSocketClient) -> list[str]:
    """Fill with the source kind of every move out of connected."""
    kinds: list[str] = []

    def listen(record: object) -> None:
        if (
            isinstance(record, StateChange)
            and record.previous is S.CONNECTED
            and record.source is not None
        ):
            kinds.append(record.source.kind)

    client.add_listener(listen)
    return kinds


# -- burst with one pause ----------------------------------------------------------------------


async def _burst_once(port: int, count: int, pause: float) -> Figures:
    # Defaults, except what this server cannot do: it has no ack step and no proxy is wanted.
    client = WebSocketClient(
        f"ws://127.0.0.1:{port}/recv?n={count}&size=100",
        json.loads,
        ack_required=False,
        proxy=False,
    )
    events = client.events()
    delivered = 0
    await client.connect()
    await client.send("go")  # the server starts its burst on the first frame
    async with asyncio.timeout(120):
        async for _ in events:  # ends when the server closes after the burst
            delivered += 1
            if delivered == 100:
                await asyncio.sleep(pause)
    figures = {
        "delivered": delivered,
        "dropped": events.dropped + client.stats.events_dropped,
        "final_source": repr(client.final_source),
    }
    await client.close()
    return figures


def burst(quick: bool) -> Figures:
    server = ServerProcess().start()
    try:
        runs = [asyncio.run(_burst_once(server.port, 10_000, 1.5)) for _ in range(5)]
    finally:
        server.kill()
    return {"count": 10_000, "pause_s": 1.5, "runs": runs}


# -- slow steady consumer ---------------------------------------------------------------------


async def _slow(duration: float) -> Figures:
    async with TestServer() as server:
        client = WebSocketClient(
            server.url, decode_message, on_connection_established=auth_hook("t")
        )
        lost = _disconnections(client)
        events = client.events(AppEvent)
        await client.connect()
        sent = 0
        got: list[int] = []
        stop = time.monotonic() + duration

        async def produce() -> None:
            nonlocal sent
            while time.monotonic() < stop:
                await server.send_burst(10, start=sent)
                sent += 10
                await asyncio.sleep(0.01)

        async def consume() -> None:
            async for event in events:
                got.append(event.payload["seq"])
                await asyncio.sleep(0.005)

        consuming = asyncio.create_task(consume())
        await produce()
        state = client.state.state
        consuming.cancel()
        in_order = got == list(range(len(got)))
        figures = {
            "duration_s": duration,
            "disconnections": len(lost),
            "sources": list(lost),
            "state_at_end": state.value,
            "sent": sent,
            "delivered": len(got),
            "in_order_without_gaps": in_order,
            "dropped": events.dropped + client.stats.events_dropped,
            "health_checks_sent": server.health_checks,
            "pongs_processed": client.health.pongs,
        }
        await client.close()
        return figures


def slow(quick: bool) -> Figures:
    return asyncio.run(_slow(20.0 if quick else 120.0))


# -- flood ------------------------------------------------------------------------------------


async def _flood_once(server: ServerProcess, count: int, ping: float, pong: float) -> Figures:
    client = WebSocketClient(
        server.url(f"recv?n={count}&size=100"),
        json.loads,
        ack_required=False,
        proxy=False,
        ping_request_builder=None,
        ping_interval=ping,
        pong_timeout=pong,
    )
    lost = _disconnections(client)
    no_pong: list[float] = []

    def listen(record: object) -> None:
        if isinstance(record, StateChange) and isinstance(record.source, NoPongReceived):
            no_pong.append(record.at)

    client.add_listener(listen)
    events = client.events()
    delivered = 0
    server.command("pings")  # reset the server's count
    await client.connect()
    started = time.perf_counter()
    await client.send("go")
    async with asyncio.timeout(600):
        async for _ in events:
            delivered += 1
    elapsed = time.perf_counter() - started
    figures = {
        "count": count,
        "delivered": delivered,
        "seconds": round(elapsed, 2),
        "no_pong_received": len(no_pong) // 2,  # disconnecting and disconnected records
        "disconnections": lost,
        "pings_answered_by_server": server.command("pings"),
    }
    await client.close()
    return figures


def flood(quick: bool) -> Figures:
    count = 200_000 if quick else 1_000_000
    server = ServerProcess().start()
    try:
        runs = [asyncio.run(_flood_once(server, count, 5, 3)) for _ in range(1 if quick else 3)]
        # A pong timeout far below how long a pong waits behind the flood (about 1 s here).
        strict = [asyncio.run(_flood_once(server, count, 0.5, 0.25)) for _ in range(1)]
    finally:
        server.kill()
    return {
        "ping_interval_s": 5,
        "pong_timeout_s": 3,
        "runs": runs,
        "strict": {"ping_interval_s": 0.5, "pong_timeout_s": 0.25, "runs": strict},
    }


# -- first message ----------------------------------------------------------------------------


async def _first(runs: int) -> Figures:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({"type": "connection.ok", "connection_id": "w"}))
        await ws.send(json.dumps({"type": "welcome"}))
        await asyncio.sleep(0.05)
        await ws.send(json.dumps({"type": "marker"}))
        await ws.wait_closed()

    async def until_marker(events: Any) -> list[str]:
        kinds: list[str] = []
        async with asyncio.timeout(10):
            async for event in events:
                kinds.append(event.type)
                if event.type == "marker":
                    return kinds
        return kinds

    before_lost = 0
    after = {"delivered": 0, "counted_unclaimed": 0, "lost": 0}
    async with serve(handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        for _ in range(runs):
            client = WebSocketClient(url, decode_message, on_connection_established=auth_hook("t"))
            events = client.events(AppEvent)
            async with client:
                if "welcome" not in await until_marker(events):
                    before_lost += 1
            client = WebSocketClient(url, decode_message, on_connection_established=auth_hook("t"))
            async with client:
                unclaimed = client._fanout.unclaimed  # the ack, and the welcome if it came
                events = client.events(AppEvent)
                delivered = "welcome" in await until_marker(events)
                if delivered:
                    after["delivered"] += 1
                elif unclaimed == 2:
                    after["counted_unclaimed"] += 1
                else:
                    after["lost"] += 1
    return {"runs": runs, "subscribed_before_connect_lost": before_lost, "subscribed_after": after}


def first(quick: bool) -> Figures:
    return asyncio.run(_first(100))


# -- send buffer ------------------------------------------------------------------------------

BIG = 32 * 2**20


async def _stuck_write(ttl: float, stall: float) -> Figures:
    reading = asyncio.Event()
    received: list[int] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({"type": "connection.ok", "connection_id": "s"}))
        await reading.wait()
        async for message in ws:
            received.append(len(message))

    async def auth_and_filler(client: WebSocketClient) -> None:
        await client.send({"type": "auth"})
        await client.send("filler")  # fills the server's one-message queue: it stops reading

    async with serve(handler, "127.0.0.1", 0, max_queue=1, max_size=None, compression=None) as srv:
        url = f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}/"
        client = WebSocketClient(
            url, decode_message, on_connection_established=auth_and_filler, compression=False
        )
        recovery = ConnectionRecoveryHandler(client, send_buffer_size=4, send_ttl=ttl)
        sending = asyncio.create_task(client.send(b"x" * BIG))
        await asyncio.sleep(0)
        await client.connect()
        await asyncio.sleep(stall)
        stuck_past_ttl = not sending.done()
        reading.set()
        try:
            await sending
            outcome = "written"
        except SendExpired:
            outcome = "SendExpired"
        await asyncio.sleep(0.5)
        figures = {
            "stuck_past_ttl": stuck_past_ttl,
            "outcome": outcome,
            "copies_received": received.count(BIG),
            "sends_expired": client.stats.sends_expired,
        }
        recovery.close()
        await client.close()
        return figures


async def _order() -> list[Any]:
    async with TestServer() as server:

        async def slow_auth(client: WebSocketClient) -> None:
            await asyncio.sleep(0.2)
            await client.send({"type": "auth", "token": "t"})

        client = WebSocketClient(server.url, decode_message, on_connection_established=slow_auth)
        recovery = ConnectionRecoveryHandler(client, strategy=DelayList([0.2]), send_buffer_size=10)
        await client.connect()
        await server.close_all(1011)
        await client.wait_for(S.DISCONNECTED)
        server.received.clear()
        early = [asyncio.create_task(client.send({"type": "n", "i": i})) for i in range(3)]
        await client.wait_for(S.AUTHENTICATING)
        await client.send({"type": "n", "i": 3})
        await asyncio.gather(*early)
        await asyncio.sleep(0.1)
        order = [m["i"] if m.get("type") == "n" else m.get("type") for m in server.received]
        recovery.close()
        await client.close()
        return order


async def _give_up(ttl: float) -> float:
    async with TestServer() as server:
        client = WebSocketClient(
            server.url, decode_message, on_connection_established=auth_hook("t")
        )
        recovery = ConnectionRecoveryHandler(
            client, strategy=DelayList([0.2]), send_buffer_size=10, send_ttl=ttl
        )
        await client.connect()
        server.close_on_open = (1008, "policy violation")
        await server.close_all(1011)
        await client.wait_for(S.DISCONNECTED)
        started = time.perf_counter()
        try:
            await client.send("waiting")
            raise AssertionError("the send went through")
        except SendAbandoned:
            waited = time.perf_counter() - started
        recovery.close()
        await client.close()
        return waited


def sendbuf(quick: bool) -> Figures:
    stuck = [asyncio.run(_stuck_write(0.5, 2.0)) for _ in range(3 if quick else 10)]
    orders = [asyncio.run(_order()) for _ in range(5 if quick else 20)]
    waits = [asyncio.run(_give_up(30.0)) for _ in range(3 if quick else 10)]
    expected = ["auth", 0, 1, 2, 3]
    return {
        "stuck_write": {
            "runs": len(stuck),
            "stuck_past_ttl": sum(r["stuck_past_ttl"] for r in stuck),
            "written_once": sum(
                r["outcome"] == "written" and r["copies_received"] == 1 for r in stuck
            ),
            "expired_and_delivered": sum(
                r["outcome"] == "SendExpired" and r["copies_received"] > 0 for r in stuck
            ),
            "detail": stuck,
        },
        "order_in_authenticating": {
            "runs": len(orders),
            "in_order": sum(o == expected for o in orders),
            "other_orders": [o for o in orders if o != expected],
        },
        "give_up_to_send_abandoned_s": {
            "send_ttl_s": 30.0,
            "max": round(max(waits), 3),
            "median": round(sorted(waits)[len(waits) // 2], 3),
        },
    }


# -- running ----------------------------------------------------------------------------------

SCENARIOS: dict[str, Callable[[bool], Figures]] = {
    "first": first,
    "sendbuf": sendbuf,
    "burst": burst,
    "flood": flood,
    "slow": slow,
}


def measure(names: list[str], quick: bool) -> Figures:
    load_before = os.getloadavg()
    figures: Figures = {}
    for name in names:
        started = time.perf_counter()
        figures[name] = SCENARIOS[name](quick)
        figures[name]["wall_s"] = round(time.perf_counter() - started, 1)
        print(f"{name}: {json.dumps(figures[name])}", flush=True)
    figures["load_average"] = {"before": load_before, "after": os.getloadavg()}
    figures["cpus"] = os.cpu_count()
    figures["clock"] = "real time"
    return figures


def run(full: bool = False) -> list[Result]:
    """The headline figures as rows for ``python -m tests.bench``."""
    f = measure(list(SCENARIOS), quick=not full)
    burst_runs = [float(r["delivered"]) for r in f["burst"]["runs"]]
    flood_runs = [float(r["no_pong_received"]) for r in f["flood"]["runs"]]
    return [
        Result("burst of 10,000 with one 1.5 s pause, defaults: delivered", "events", burst_runs),
        Result(
            f"slow consumer at defaults for {f['slow']['duration_s']:g} s: disconnections",
            "count",
            [float(f["slow"]["disconnections"])],
        ),
        Result(
            f"flood of {f['flood']['runs'][0]['count']:,} (pong 3 s): NoPongReceived",
            "count",
            flood_runs,
        ),
        Result(
            "first message lost, 100 runs, subscribed before connect",
            "count",
            [float(f["first"]["subscribed_before_connect_lost"])],
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.delivery_faults")
    parser.add_argument("--quick", action="store_true", help="shorter slow run, smaller flood")
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--out", help="also write the figures as JSON to this file")
    options = parser.parse_args(argv)
    figures = measure(options.only, options.quick)
    print(json.dumps({k: figures[k] for k in ("load_average", "cpus", "clock")}))
    if options.out:
        with open(options.out, "w", encoding="utf-8") as out:
            json.dump(figures, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
