"""Receive and send: client CPU per message, statesock against raw websockets, same run.

Receive: the server (another process, ``/recv``) writes N copies of one pre-encoded text
frame carrying a JSON event of 100 B or 1 KB; both clients decode with ``json.loads``
(statesock through its decoder and ``client.events()``, raw websockets in an ``async for``
loop). Send: both clients send N text messages of 100 B; the server (``/sink``) counts the
frames without unmasking them and answers ``done`` after the N-th. Client CPU is
``time.process_time()`` from the first message to the last; the server's own CPU is sampled
around every run and reported beside it. Rounds alternate which side goes first.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import connect

from tests.bench.common import Result, ServerProcess, cpu_share, make_client, median


@dataclass(frozen=True)
class Sample:
    cpu_us: float  # client CPU per message, µs
    rate: float  # messages per wall-clock second
    server_cpu: float  # the server's share of one core during the run


Runner = Callable[[ServerProcess, int, int], Coroutine[Any, Any, Sample]]


def _sample(server: ServerProcess, count: int, window: tuple[float, float, float, float]) -> Sample:
    """``window`` = (wall start, cpu start, wall end, cpu end) of the client's measurement."""
    wall0, cpu0, wall1, cpu1 = window
    return Sample((cpu1 - cpu0) / count * 1e6, count / (wall1 - wall0), 0.0)


async def raw_receive(server: ServerProcess, count: int, size: int) -> Sample:
    url = server.url(f"recv?n={count}&size={size}")
    async with connect(url, ping_interval=None, compression=None, proxy=None) as ws:
        await ws.send("go")
        wall0, cpu0 = time.perf_counter(), time.process_time()
        received = 0
        async for message in ws:
            json.loads(message)
            received += 1
            if received == count:
                break
        window = (wall0, cpu0, time.perf_counter(), time.process_time())
    if received != count:
        raise RuntimeError(f"raw websockets received {received} of {count}")
    return _sample(server, count, window)


async def statesock_receive(server: ServerProcess, count: int, size: int) -> Sample:
    client = make_client(server.url(f"recv?n={count}&size={size}"))
    events = client.events()
    await client.connect()
    await client.send("go")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    received = 0
    async for _event in events:
        received += 1
        if received == count:
            break
    window = (wall0, cpu0, time.perf_counter(), time.process_time())
    await client.close()
    if received != count:
        raise RuntimeError(f"statesock received {received} of {count}")
    return _sample(server, count, window)


MESSAGE = "x" * 100


async def raw_send(server: ServerProcess, count: int, size: int) -> Sample:
    message = "x" * size
    async with connect(
        server.url(f"sink?n={count}"), ping_interval=None, compression=None, proxy=None
    ) as ws:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for _ in range(count):
            await ws.send(message)
        done = json.loads(await ws.recv())
        window = (wall0, cpu0, time.perf_counter(), time.process_time())
    if done != "done":
        raise RuntimeError(f"the sink answered {done!r}")
    return _sample(server, count, window)


async def statesock_send(server: ServerProcess, count: int, size: int) -> Sample:
    message = "x" * size
    client = make_client(server.url(f"sink?n={count}"))
    events = client.events()
    await client.connect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(count):
        await client.send(message)
    done = None
    async for done in events:  # noqa: B007 - the first message is the answer
        break
    window = (wall0, cpu0, time.perf_counter(), time.process_time())
    await client.close()
    if done != "done":
        raise RuntimeError(f"the sink answered {done!r}")
    return _sample(server, count, window)


def interleaved(
    server: ServerProcess, sides: dict[str, Callable[[], Coroutine[Any, Any, Sample]]], rounds: int
) -> dict[str, list[Sample]]:
    """``rounds`` runs of each side, alternating which goes first, after one warm-up each."""
    for side in sides.values():
        asyncio.run(side())
    samples: dict[str, list[Sample]] = {name: [] for name in sides}
    names = list(sides)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            before = server.cpu()
            sample = asyncio.run(sides[name]())
            share = cpu_share(before, server.cpu())
            samples[name].append(Sample(sample.cpu_us, sample.rate, share))
    return samples


def to_result(name: str, samples: dict[str, list[Sample]], limit: float) -> Result:
    ours, raw = samples["statesock"], samples["raw"]
    result = Result(
        name,
        "µs CPU",
        [s.cpu_us for s in ours],
        [s.cpu_us for s in raw],
        "raw websockets",
        server_cpu=[s.server_cpu for s in ours + raw],
    )
    result.check(limit)
    result.notes.append(
        f"rate {median([s.rate for s in ours]) / 1000:.1f}k/s statesock, "
        f"{median([s.rate for s in raw]) / 1000:.1f}k/s raw (wall clock, noisier than CPU)"
    )
    return result


def run(full: bool = False) -> list[Result]:
    rounds = 11 if full else 7
    cases = [
        ("receive a 100 B JSON event", statesock_receive, raw_receive, 100, 50_000, 1.05),
        ("receive a 1 KB JSON event", statesock_receive, raw_receive, 1024, 30_000, 1.05),
        ("send 100 B", statesock_send, raw_send, 100, 50_000, 1.05),
    ]
    server = ServerProcess().start()
    results = []
    try:
        for name, ours, raw, size, base_count, limit in cases:
            count = base_count * (4 if full else 1)

            def side(
                function: Runner, count: int = count, size: int = size
            ) -> Callable[[], Coroutine[Any, Any, Sample]]:
                return lambda: function(server, count, size)

            samples = interleaved(server, {"statesock": side(ours), "raw": side(raw)}, rounds)
            result = to_result(name, samples, limit)
            result.notes.append(f"{count} messages per run, {rounds} rounds per side")
            results.append(result)
    finally:
        server.kill()
    return results
