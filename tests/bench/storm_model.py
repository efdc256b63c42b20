"""The reconnect storm without sockets: a retry strategy's delays and a model of an outage.

Model: every client drops at t = 0 (spread by ``drop_spread``: the real fleet notices the
close over a few milliseconds), then retries after ``strategy.next_delay(attempt, source)``.
An attempt made before the server is back (``t < down``) fails after ``fail_cost`` seconds
(a refused connect on loopback); the first attempt at or after ``down`` is a handshake
arriving at the restarted server. The figures are those the real benchmark measures on the
server side: the largest share of the fleet's handshakes in any 100 ms window (sliding, not
aligned) and the percentiles of arrival time after the server is back.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from statesock.retry import RetryStrategy
from statesock.sources import ServerInitiated

WINDOW = 0.1


@dataclass(frozen=True)
class StormFigures:
    """What the restarted server saw: peak share, and arrival percentiles after its return."""

    clients: int
    peak_share: float
    p50: float
    p99: float
    last: float
    failed_attempts: int

    def describe(self) -> str:
        return (
            f"peak {100 * self.peak_share:.1f}% in 100 ms, back p50 {self.p50:.2f} s, "
            f"p99 {self.p99:.2f} s, last {self.last:.2f} s"
        )


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not ordered:
        return float("nan")
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def peak_window_share(times: Sequence[float], total: int, window: float = WINDOW) -> float:
    """The largest share of ``total`` falling in any window of ``window`` seconds."""
    ordered = sorted(times)
    best = 0
    for start, t in enumerate(ordered):
        best = max(best, bisect_right(ordered, t + window, lo=start) - start)
    return best / total if total else 0.0


def figures(arrivals_after_return: Sequence[float], failed: int = 0) -> StormFigures:
    ordered = sorted(arrivals_after_return)
    return StormFigures(
        clients=len(ordered),
        peak_share=peak_window_share(ordered, len(ordered)),
        p50=percentile(ordered, 0.50),
        p99=percentile(ordered, 0.99),
        last=ordered[-1] if ordered else float("nan"),
        failed_attempts=failed,
    )


def simulate(
    count: int,
    make_strategy: Callable[[random.Random], RetryStrategy],
    down: float,
    *,
    fail_cost: float = 0.002,
    drop_spread: float = 0.02,
    seed: int = 1,
) -> StormFigures:
    """Arrival figures for ``count`` clients and a server that is back ``down`` s after the drop."""
    rng = random.Random(seed)
    source = ServerInitiated(1006)
    arrivals: list[float] = []
    failed = 0
    for _ in range(count):
        strategy = make_strategy(rng)
        t = rng.uniform(0, drop_spread)
        attempt = 0
        while True:
            attempt += 1
            delay = strategy.next_delay(attempt, source)
            if delay is None:  # gave up: never arrives
                break
            t += delay
            if t >= down:
                arrivals.append(t - down)
                break
            failed += 1
            t += fail_cost
    return figures(arrivals, failed)
