"""5. Reconnect storm: many clients, one server restart; how bunched are the attempts?

Real part: N statesock clients (1,000 quick, 5,000 full) with recovery handlers on one
server process, which is killed and restarted after one second. Every ``connecting``
is an attempt; attempts are counted per 100 ms window. Reported: the peak window's share of
clients and the time from the server listening again to all clients connected, for the
default strategy and for a zero-delay-first-retry strategy (the reference design's).

Simulated part: the strategy alone for 100,000 clients (pure arithmetic on the delays the
strategy returns, so time is virtual): same outage, same windows.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter

import structlog

from statesock.client import WebSocketClient
from statesock.machine import ConnectionState, StateChange
from statesock.recovery import ConnectionRecoveryHandler
from statesock.retry import ExponentialBackoff, RetryStrategy
from statesock.sources import DisconnectionSource, ServerInitiated
from tests.bench.common import Result, ServerProcess, raise_fd_limit

WINDOW = 0.1
OUTAGE = 1.0


class ZeroFirst:
    """Retry at once, then back off: what the reference design does."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.backoff = ExponentialBackoff(rng=rng or random.Random())

    def next_delay(self, attempt: int, source: DisconnectionSource) -> float | None:
        return 0.0 if attempt == 1 else self.backoff.next_delay(attempt - 1, source)


def _strategy(name: str, rng: random.Random | None = None) -> RetryStrategy:
    return (
        ZeroFirst(rng) if name == "zero-first" else ExponentialBackoff(rng=rng or random.Random())
    )


async def _storm(count: int, strategy: str) -> tuple[float, float]:
    raise_fd_limit()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    server = ServerProcess("raw").start()
    attempts: list[float] = []
    connected: set[int] = set()
    everyone = asyncio.Event()
    try:
        clients = []
        for index in range(count):
            client = WebSocketClient(server.url, json.loads, ack_required=False)

            def listen(record: object, index: int = index) -> None:
                if not isinstance(record, StateChange):
                    return
                if record.current is ConnectionState.CONNECTING:
                    attempts.append(time.monotonic())
                elif record.current is ConnectionState.CONNECTED:
                    connected.add(index)
                    if len(connected) == count:
                        everyone.set()
                elif record.current is ConnectionState.DISCONNECTED:
                    connected.discard(index)

            client.add_listener(listen)
            clients.append(
                (client, ConnectionRecoveryHandler(client, strategy=_strategy(strategy)))
            )
        for start in range(0, count, 200):
            await asyncio.gather(*(c.connect() for c, _ in clients[start : start + 200]))
        attempts.clear()
        everyone.clear()
        server.kill()
        killed = time.monotonic()
        await asyncio.sleep(OUTAGE)
        await asyncio.to_thread(server.start)
        await asyncio.wait_for(everyone.wait(), 120)
        all_back = time.monotonic() - server.ready_at
        windows = Counter(int((t - killed) / WINDOW) for t in attempts)
        peak_share = max(windows.values()) / count
        for _client, handler in clients:
            handler.close()
        await asyncio.gather(*(c.close() for c, _ in clients))
        return peak_share, all_back
    finally:
        server.kill()


def simulate(count: int, strategy: str, seed: int = 1) -> tuple[float, float]:
    """Peak share per window and time until all are back, for the strategy alone."""
    rng = random.Random(seed)
    source = ServerInitiated(1006)
    windows: Counter[int] = Counter()
    last_back = 0.0
    for _ in range(count):
        chooser = _strategy(strategy, rng)
        t, attempt = 0.0, 0
        while True:
            attempt += 1
            delay = chooser.next_delay(attempt, source)
            assert delay is not None
            t += delay
            windows[int(t / WINDOW)] += 1
            if t >= OUTAGE:  # the server is back: this attempt succeeds
                last_back = max(last_back, t - OUTAGE)
                break
    return max(windows.values()) / count, last_back


def run(full: bool = False) -> list[Result]:
    count = 5_000 if full else 1_000
    results = []
    for name in ("default", "zero-first"):
        runs = [asyncio.run(_storm(count, name)) for _ in range(3 if full else 2)]
        result = Result(
            f"storm {name}: peak 100 ms share (N={count})",
            "share",
            [peak for peak, _ in runs],
        )
        result.notes.append(
            "time until all connected: " + ", ".join(f"{back:.2f}s" for _, back in runs)
        )
        results.append(result)
    for name in ("default", "zero-first"):
        peak, back = simulate(100_000, name)
        result = Result(f"storm {name}: simulated 100,000 clients", "share", [peak])
        result.notes.append(f"all back {back:.2f}s after the server (virtual time)")
        results.append(result)
    return results
