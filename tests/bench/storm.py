"""Reconnect storm: N clients, the server process killed and restarted; what does it see?

Real part: N statesock clients (1,000 quick, 5,000 full) in this process, each with a
``ConnectionRecoveryHandler`` (default strategy unless named), connected to a server process.
A replacement server is started beforehand with ``--defer``; the server is killed, and after
``down`` seconds (0.5 s and 5 s) the replacement binds the same port. It records the arrival
time of every handshake, so the figures are the server's: the largest share of the N
handshakes in any 100 ms window (sliding), and the percentiles of arrival after it listened.

Simulated part: :func:`tests.bench.storm_model.simulate` for 100,000 clients, the same
strategy and the outage the real run measured (kill to listening). It must agree with the
real run; a 1,000-client simulation is shown too, to separate sampling noise from model error.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import structlog

from statesock.machine import ConnectionState, StateChange
from statesock.recovery import ConnectionRecoveryHandler
from statesock.retry import ExponentialBackoff, PacedBackoff, RetryStrategy
from tests.bench.common import Result, ServerProcess, make_client, raise_fd_limit
from tests.bench.storm_model import StormFigures, figures, peak_window_share, simulate

# A loop stall above this while the clients come back makes the real figures scheduler noise.
STALL_LIMIT = 0.05

StrategyFactory = Callable[[random.Random | None], RetryStrategy | None]

STRATEGIES: dict[str, StrategyFactory] = {
    # None: whatever ConnectionRecoveryHandler uses by default (as_strategy(None)).
    "default": lambda rng: None if rng is None else PacedBackoff(rng=rng),
    "old default (equal-jitter exponential)": lambda rng: ExponentialBackoff(
        rng=rng or random.Random()
    ),
}


@dataclass(frozen=True)
class StormRun:
    server: StormFigures  # what the restarted server saw
    outage: float  # kill to listening, as it happened
    client_peak: float  # peak 100 ms share of the attempts the clients started after listen
    client_cpu: float  # the client process's share of a core from listen to all back
    stall: float  # the event loop's longest lateness from listening to all back, seconds


async def _watch_loop(lateness: list[tuple[float, float]], tick: float = 0.005) -> None:
    """Record (when, how late) a short sleep wakes: the loop was busy or descheduled."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + tick
        await asyncio.sleep(tick)
        now = loop.time()
        lateness.append((now, now - due))


async def _storm(count: int, strategy: str, down: float, transport: str) -> StormRun:
    """One restart: server-side figures, the real outage, and how busy the clients were."""
    raise_fd_limit()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    server = ServerProcess().start()
    replacement: ServerProcess | None = None
    connected: set[int] = set()
    attempts: list[float] = []
    everyone = asyncio.Event()
    clients = []
    handlers = []
    try:
        for index in range(count):
            client = make_client(server.url(), ping_interval=25.0, transport=transport)

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
            clients.append(client)
            handlers.append(ConnectionRecoveryHandler(client, strategy=STRATEGIES[strategy](None)))
        for start in range(0, count, 200):
            await asyncio.gather(*(c.connect() for c in clients[start : start + 200]))
        await asyncio.wait_for(everyone.wait(), 60)
        # The advice for apps with thousands of clients (README): their long-lived objects
        # leave the collector, whose full passes would otherwise stall the loop ~0.1 s each.
        gc.collect()
        gc.freeze()
        replacement = ServerProcess(server.port).start(defer=True)
        everyone.clear()
        lateness: list[tuple[float, float]] = []
        watcher = asyncio.ensure_future(_watch_loop(lateness))
        server.crash()
        killed = time.monotonic()
        await asyncio.sleep(down)
        await asyncio.to_thread(replacement.listen)
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.wait_for(everyone.wait(), 120)
        cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        watcher.cancel()
        arrivals = await asyncio.to_thread(replacement.command, "arrivals")
        listening = replacement.ready_at
        return StormRun(
            figures([t - listening for t in arrivals]),
            listening - killed,
            peak_window_share([t for t in attempts if t >= listening], count),
            cpu,
            # loop.time() is time.monotonic() in asyncio's default loop.
            max((late for at, late in lateness if at >= listening), default=0.0),
        )
    finally:
        gc.unfreeze()
        for handler in handlers:
            handler.close()
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        server.kill()
        if replacement is not None:
            replacement.kill()


def run(full: bool = False) -> list[Result]:
    count, repeats = (5_000, 3) if full else (1_000, 2)
    # The default strategy on both transports: the storm's figures must hold on each.
    plan = [("default", 0.5, repeats, "websockets"), ("default", 5.0, repeats, "websockets")]
    plan += [("default", 0.5, 1, "picows"), ("default", 5.0, 1, "picows")]
    plan.append(("old default (equal-jitter exponential)", 0.5, 1, "websockets"))
    results = []
    for strategy, down, runs, transport in plan:
        real = [asyncio.run(_storm(count, strategy, down, transport)) for _ in range(runs)]
        outage = max(run.outage for run in real)
        factory = STRATEGIES[strategy]

        def make(rng: random.Random, factory: StrategyFactory = factory) -> RetryStrategy:
            strategy_object = factory(rng)
            assert strategy_object is not None
            return strategy_object

        big = simulate(100_000, make, outage)
        small = simulate(count, make, outage, seed=7)
        result = Result(
            f"storm, {strategy}, {transport} transport, down {down:g} s: peak 100 ms share "
            f"(N={count:,})",
            "share",
            [run.server.peak_share for run in real],
            [big.peak_share],
            "simulated, 100,000 clients",
        )
        if strategy == "default":
            result.target = "<= 10 %, p50 <= 1 s, p99 <= 2 s"
            result.met = all(
                run.server.peak_share <= 0.10 and run.server.p50 <= 1.0 and run.server.p99 <= 2.0
                for run in real
            )
        for run_ in real:
            result.notes.append(
                f"real (outage {run_.outage:.2f} s): {run_.server.describe()}; the clients "
                f"started {100 * run_.client_peak:.1f}% in their busiest 100 ms and used "
                f"{100 * run_.client_cpu:.0f}% of a core until all were back; longest loop "
                f"stall {1000 * run_.stall:.0f} ms"
            )
        stalled = [run_.stall for run_ in real if run_.stall > STALL_LIMIT]
        if stalled:
            result.notes.append(
                f"NOISY: the clients' event loop stalled up to {1000 * max(stalled):.0f} ms while "
                "they came back (another process had the CPU, or a long collection); a stall "
                "releases every timer it delayed at once, which the peak share shows. Rerun on "
                "a quiet machine to measure the strategy."
            )
        result.extra = {
            "down": down,
            "real": [
                {**asdict(run_.server), "outage": run_.outage, "client_peak": run_.client_peak}
                | {"client_cpu": run_.client_cpu, "stall": run_.stall}
                for run_ in real
            ],
            "simulated_100k": asdict(big),
            "simulated_same_n": asdict(small),
        }
        result.notes.append(f"simulated 100,000: {big.describe()}")
        result.notes.append(f"simulated {count:,}: {small.describe()}")
        results.append(result)
    return results
