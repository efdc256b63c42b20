"""The transports suite: issue 17's figures for five clients on two event loops, same run.

Every figure is measured for statesock on its websockets transport and on picows, raw
websockets, raw picows and aiohttp (``tests.bench.clients``: how each is driven and why that
is fair), on asyncio's default event loop and on uvloop:

1. receive a 100 B JSON event: per message; statesock through ``client.events()`` and,
   separately, through a synchronous ``client.on(None, callback)`` (the raw clients' runs
   are shared by both rows: they have one way to read);
2. receive a 1 KB JSON event (statesock through ``events()``);
3. send 100 B: per message, until the server has counted them all;
4. one health check across K idle clients, each checking every ``interval``: client CPU
   over a window / checks the server answered in it, with statesock checking by protocol
   Ping and, separately, by its default JSON health check (a "JSON ping", which the server
   answers on ``/health``); both rows share the anchors' runs: websockets' keepalive Ping,
   picows's auto-ping, aiohttp's heartbeat;
5. open a connection: K clients opened in concurrent batches of 100, each with a keep-alive
   armed every 25 s (statesock: constructing the client and ``connect()``, no auth step;
   raw websockets and aiohttp: ``connect()`` plus their reading task); closing is not
   measured;
6. memory per idle client: RSS growth over K idle clients / K, each kind and loop in a
   fresh process (``tests.bench.memory_client``), statesock with a recovery handler.

A figure is client CPU per unit of work (``time.process_time()``), except memory (KiB).
Each row is the median [min-max] of interleaved rounds: after one warm-up run of each side
(for the idle figures, opening 100 clients of each kind, before the open and health runs),
each round runs every side once, in the listed order on even rounds and in reverse on odd
ones, with a full ``gc.collect()`` before each run so that one side's garbage is never
collected in another's measurement. The three ratios of issue 17's targets
(``common.RATIOS``) are medians over medians of the same run and loop. The benchmark server
(``tests/bench/server.py``) is one process for the whole suite; its CPU is sampled around
every run and a row where it used more than ``common.SERVER_CPU_LIMIT`` of a core is flagged.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from tests.bench import memory
from tests.bench.clients import LOOPS, Fleet, Keepalive, Span, Statesock, Stopwatch, client, run_on
from tests.bench.common import (
    CLIENTS,
    Comparison,
    ServerProcess,
    cpu_share,
    median,
    raise_fd_limit,
)

# Issue 17's targets, one per ratio of common.RATIOS (statesock-websockets / raw websockets,
# statesock-picows / raw websockets, statesock-picows / raw picows); None: shown, no target.
TARGETS: dict[str, tuple[float | None, float | None, float | None]] = {
    "receive-100-events": (1.05, 0.70, 1.8),
    "receive-100-on": (1.00, 0.55, 1.4),
    "receive-1k": (None, None, None),
    "send-100": (1.05, 0.50, 3.0),
    "health-ping": (1.0, 0.8, None),
    "health-json": (1.3, 1.0, None),
    "open": (1.3, 1.0, None),
    "memory": (1.2, 1.2, None),
}
# A keep-alive as idle apps have it, armed on every client of the open figure.
IDLE_KEEPALIVE = Keepalive(25.0)


@dataclass(frozen=True)
class Sizes:
    """How much work each figure does; ``quick`` is the default ``make bench``."""

    rounds: int  # rounds of the message figures
    receive_100: int  # messages per run
    receive_1k: int
    send: int
    health_clients: int
    health_interval: float  # seconds between a client's checks
    health_window: float  # seconds of measurement
    health_rounds: int
    opens: int
    open_rounds: int
    memory_clients: int
    memory_rounds: int


# The health window is a whole number of check periods, so that each client's checks fall
# evenly into it whatever its phase.
QUICK = Sizes(5, 30_000, 20_000, 30_000, 1_000, 1.0, 2.0, 3, 1_000, 5, 1_000, 2)
FULL = Sizes(9, 120_000, 80_000, 120_000, 1_000, 2.0, 10.0, 5, 1_000, 9, 1_000, 3)
# Tiny counts that prove the harness end to end in a minute or two; the figures mean nothing.
SMOKE = Sizes(2, 2_000, 1_000, 2_000, 100, 0.5, 1.0, 2, 100, 2, 100, 2)


@dataclass(frozen=True)
class Sample:
    """One run of one side: the figure per unit, units per wall-clock second, the server's
    CPU share during the run (None: to be sampled around the run), connections lost."""

    value: float
    rate: float
    server: float | None = None
    lost: int = 0


Side = Callable[[], Coroutine[Any, Any, Sample]]


def interleave(
    server: ServerProcess, loop: str, sides: dict[str, Side], rounds: int, warm_up: bool = True
) -> dict[str, list[Sample]]:
    """``rounds`` runs of each side on ``loop``, alternating the order (see the docstring)."""
    if warm_up:
        for side in sides.values():
            run_on(loop, side())
    samples: dict[str, list[Sample]] = {name: [] for name in sides}
    names = list(sides)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            gc.collect()
            before = server.cpu()
            sample = run_on(loop, sides[name]())
            if sample.server is None:
                sample = Sample(sample.value, sample.rate, cpu_share(before, server.cpu()))
            samples[name].append(sample)
    return samples


def comparison(
    key: str,
    name: str,
    loop: str,
    unit: str,
    samples: dict[str, list[Sample]],
    *,
    columns: dict[str, str] | None = None,
) -> Comparison:
    """A row from the samples; ``columns`` maps a client to the side that stands for it
    (default: the side of the client's own name)."""
    chosen = {kind: (columns or {}).get(kind, kind) for kind in CLIENTS}
    runs = {kind: samples[side] for kind, side in chosen.items()}
    row = Comparison(
        name,
        loop,
        unit,
        {kind: [s.value for s in runs[kind]] for kind in CLIENTS},
        TARGETS[key],
        server_cpu=[s.server for kind in CLIENTS for s in runs[kind] if s.server is not None],
        figure=key,
    )
    if unit != "KiB":
        row.notes.append(
            "units per wall-clock second (noisier than CPU): "
            + ", ".join(f"{kind} {_rate(median([s.rate for s in runs[kind]]))}" for kind in CLIENTS)
        )
    lost = {kind: sum(s.lost for s in runs[kind]) for kind in CLIENTS}
    if any(lost.values()):
        row.notes.append(
            "connections lost during the measurement (they did less work): "
            + ", ".join(f"{kind} {n}" for kind, n in lost.items() if n)
        )
    return row


def _rate(value: float) -> str:
    return f"{value / 1000:.1f}k/s" if value >= 1000 else f"{value:.0f}/s"


# -- 1-3: messages ------------------------------------------------------------------------


def receive_side(
    kind: str, server: ServerProcess, count: int, size: int, callback: bool = False
) -> Side:
    async def side() -> Sample:
        url = server.url(f"recv?n={count}&size={size}")
        span = await client(kind).receive(url, count, callback)
        return _per_unit(span, count)

    return side


def send_side(kind: str, server: ServerProcess, count: int, size: int) -> Side:
    message = "x" * size

    async def side() -> Sample:
        span = await client(kind).send(server.url(f"sink?n={count}&size={size}"), count, message)
        return _per_unit(span, count)

    return side


def _per_unit(span: Span, units: int) -> Sample:
    return Sample(span.cpu / units * 1e6, units / span.wall if span.wall > 0 else 0.0)


def messages(server: ServerProcess, sizes: Sizes) -> list[Comparison]:
    rows: list[Comparison] = []
    rounds = sizes.rounds
    for loop in LOOPS:
        count = sizes.receive_100
        sides = {kind: receive_side(kind, server, count, 100) for kind in CLIENTS}
        for kind in CLIENTS:
            if isinstance(client(kind), Statesock):
                sides[f"{kind} on()"] = receive_side(kind, server, count, 100, callback=True)
        samples = interleave(server, loop, sides, rounds)
        on = {kind: f"{kind} on()" for kind in CLIENTS if f"{kind} on()" in sides}
        for key, name, columns in (
            ("receive-100-events", "receive 100 B JSON, events()", None),
            ("receive-100-on", "receive 100 B JSON, on()", on),
        ):
            row = comparison(key, name, loop, "µs CPU", samples, columns=columns)
            row.notes.append(
                f"{count:,} messages per run, {rounds} rounds; the raw clients' runs are "
                "shared by the events() and on() rows"
            )
            rows.append(row)

        count = sizes.receive_1k
        sides = {kind: receive_side(kind, server, count, 1024) for kind in CLIENTS}
        row = comparison(
            "receive-1k",
            "receive 1 KB JSON, events()",
            loop,
            "µs CPU",
            interleave(server, loop, sides, rounds),
        )
        row.notes.append(f"{count:,} messages per run, {rounds} rounds; no target in issue 17")
        rows.append(row)

        count = sizes.send
        sides = {kind: send_side(kind, server, count, 100) for kind in CLIENTS}
        row = comparison(
            "send-100", "send 100 B", loop, "µs CPU", interleave(server, loop, sides, rounds)
        )
        row.notes.append(
            f"{count:,} messages per run, {rounds} rounds, until the server counted the last"
        )
        rows.append(row)
    return rows


# -- 4-5: idle clients --------------------------------------------------------------------


def health_side(
    kind: str, server: ServerProcess, count: int, keepalive: Keepalive, window: float
) -> Side:
    """Client CPU per answered check over ``window`` s, once every client is past its first."""
    path = "health" if keepalive.json else "hold"

    async def side() -> Sample:
        fleet = client(kind).fleet(server.url(path), keepalive)
        await fleet.setup()
        try:
            await fleet.open(count)
            # Every client past its first check: the measurement sees the steady state.
            await asyncio.sleep(keepalive.interval + 0.1)
            server.command("pings")
            before = server.cpu()
            cpu0 = time.process_time()
            await asyncio.sleep(window)
            cpu = time.process_time() - cpu0
            checks = int(server.command("pings"))
            share = cpu_share(before, server.cpu())
            lost = count - fleet.connected()
        finally:
            await fleet.close()
        if checks == 0:
            raise RuntimeError(f"{kind}: no health check reached the server")
        return Sample(cpu / checks * 1e6, checks / window, share, lost)

    return side


def open_side(kind: str, server: ServerProcess, count: int) -> Side:
    async def side() -> Sample:
        fleet: Fleet = client(kind).fleet(server.url(), IDLE_KEEPALIVE)
        await fleet.setup()  # an aiohttp session: shared by every connection, not per client
        try:
            before = server.cpu()
            watch = Stopwatch()
            await fleet.open(count)
            span = watch.stop()
            share = cpu_share(before, server.cpu())
            lost = count - fleet.connected()
        finally:
            await fleet.close()
        return Sample(span.cpu / count * 1e6, count / span.wall, share, lost)

    return side


def idle(server: ServerProcess, sizes: Sizes) -> list[Comparison]:
    rows: list[Comparison] = []
    count, interval, window = sizes.opens, sizes.health_interval, sizes.health_window
    for loop in LOOPS:
        # Opening first: it also warms up every client kind before the health runs.
        sides = {kind: open_side(kind, server, min(count, 100)) for kind in CLIENTS}
        for side in sides.values():
            run_on(loop, side())
        sides = {kind: open_side(kind, server, count) for kind in CLIENTS}
        row = comparison(
            "open",
            f"open a connection, no auth step ({count:,} clients)",
            loop,
            "µs CPU",
            interleave(server, loop, sides, sizes.open_rounds, warm_up=False),
        )
        row.notes.append(
            f"batches of 100 concurrent opens, {sizes.open_rounds} rounds; statesock includes "
            "constructing the client, raw websockets and aiohttp their reading task; every "
            "client has a keep-alive armed at 25 s"
        )
        rows.append(row)

        clients = sizes.health_clients
        ping, check = Keepalive(interval), Keepalive(interval, json=True)
        sides = {kind: health_side(kind, server, clients, ping, window) for kind in CLIENTS}
        for kind in CLIENTS:
            if isinstance(client(kind), Statesock):
                sides[f"{kind} JSON"] = health_side(kind, server, clients, check, window)
        samples = interleave(server, loop, sides, sizes.health_rounds, warm_up=False)
        json_columns = {kind: f"{kind} JSON" for kind in CLIENTS if f"{kind} JSON" in sides}
        for key, how, columns in (
            ("health-ping", "protocol Ping", None),
            ("health-json", "JSON ping", json_columns),
        ):
            row = comparison(
                key,
                f"one health check, {how} ({clients:,} clients, every {interval:g} s)",
                loop,
                "µs CPU",
                samples,
                columns=columns,
            )
            row.notes.append(
                f"client CPU over {window:g} s / checks the server answered, "
                f"{sizes.health_rounds} rounds; anchors: raw websockets its keepalive Ping "
                "(ping_interval), raw picows its auto-ping (PING_PERIODICALLY, idle and reply "
                "timeouts at half the interval: a Ping every interval), aiohttp its "
                f"heartbeat; each gives up {interval / 2:g} s after an unanswered check; the "
                "rows share the anchors' runs"
            )
            rows.append(row)
    return rows


# -- 6: memory ----------------------------------------------------------------------------


def memory_rows(server: ServerProcess, sizes: Sizes) -> list[Comparison]:
    count = sizes.memory_clients
    kib: dict[str, dict[str, list[float]]] = {loop: {k: [] for k in CLIENTS} for loop in LOOPS}
    objects: dict[str, dict[str, list[float]]] = {loop: {k: [] for k in CLIENTS} for loop in LOOPS}
    for round_ in range(sizes.memory_rounds):
        for loop in LOOPS:
            for kind in CLIENTS if round_ % 2 == 0 else reversed(CLIENTS):
                data = memory.client_process(kind, server.url(), count, loop)
                kib[loop][kind].append(memory.per_client_kib(data))
                objects[loop][kind].append(data["tracked_objects"] / count)
    rows = []
    for loop in LOOPS:
        row = Comparison(
            f"memory per idle client, recovery attached ({count:,} clients)",
            loop,
            "KiB",
            kib[loop],
            TARGETS["memory"],
            figure="memory",
        )
        row.notes.append(
            "RSS growth / K, each kind in a fresh process, keep-alive armed at 25 s; statesock "
            "with a ConnectionRecoveryHandler, raw websockets and aiohttp with a reading task; "
            "raw picows with picows's default 16 KiB read buffer (statesock asks for 2 KiB); "
            "objects the collector tracks per client: "
            + ", ".join(f"{kind} {median(objects[loop][kind]):.0f}" for kind in CLIENTS)
        )
        rows.append(row)
    return rows


def run(full: bool = False, smoke: bool = False) -> list[Comparison]:
    sizes = SMOKE if smoke else FULL if full else QUICK
    raise_fd_limit()
    server = ServerProcess().start()
    try:
        rows = messages(server, sizes) + idle(server, sizes) + memory_rows(server, sizes)
    finally:
        server.kill()
    # Figure by figure, each loop beside the other (they were measured loop by loop).
    order = list(TARGETS)
    return sorted(rows, key=lambda row: (order.index(row.figure), LOOPS.index(row.loop)))
