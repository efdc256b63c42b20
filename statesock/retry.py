"""How long to wait before the next reconnect attempt, and when to give up.

A strategy answers ``next_delay(attempt, source)``: the seconds to wait before attempt
number ``attempt`` (1 for the first retry after a drop) given the source of the last
disconnection, or None to give up. :class:`ExponentialBackoff` is the default:
``base * factor ** (attempt - 1)`` capped at 25 s, with equal jitter (the delay is drawn
uniformly from the upper half of that value, so a fleet of clients spreads out but none
retries at once), and never shorter than a server's ``Retry-After`` on HTTP 429/503.
:class:`DelayList` replays fixed delays; any ``(attempt, source) -> float | None`` callable
works too (:func:`as_strategy`).

Pure module: the random source is injected (``rng``) so a strategy is deterministic under
test, and no clock is read: the recovery handler owns time.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from .exceptions import HandshakeRejected
from .sources import DisconnectionSource, ServerInitiated

__all__ = [
    "DelayList",
    "ExponentialBackoff",
    "RetryStrategy",
    "as_strategy",
    "retry_after",
]

_RETRY_AFTER_STATUSES = frozenset({429, 503})
# One generator for every default strategy: a Random holds 2.5 KiB of state, which would
# be a tenth of a client's memory if each recovery handler had its own.
_SHARED_RNG = random.Random()


@runtime_checkable
class RetryStrategy(Protocol):
    def next_delay(self, attempt: int, source: DisconnectionSource) -> float | None:
        """Seconds before attempt ``attempt`` (>= 1), or None to give up."""


def retry_after(source: DisconnectionSource) -> float | None:
    """The server's ``Retry-After`` (seconds) when the handshake was refused with 429/503."""
    if isinstance(source, ServerInitiated) and isinstance(source.error, HandshakeRejected):
        error = source.error
        if error.status in _RETRY_AFTER_STATUSES and error.retry_after is not None:
            return error.retry_after
    return None


@dataclass
class ExponentialBackoff:
    """Exponential backoff with equal jitter, capped, honouring ``Retry-After``."""

    base: float = 0.5
    factor: float = 2.0
    cap: float = 25.0
    jitter: bool = True
    max_attempts: int | None = None
    max_retry_after: float = 600.0
    rng: random.Random = field(default=_SHARED_RNG)

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0 or self.factor < 1:
            raise ValueError("base and cap must be >= 0 and factor >= 1")

    def next_delay(self, attempt: int, source: DisconnectionSource) -> float | None:
        if self.max_attempts is not None and attempt > self.max_attempts:
            return None
        # min() before the power would overflow for large attempts.
        exponent = min(attempt - 1, 64)
        delay = min(self.cap, self.base * self.factor**exponent)
        if self.jitter:
            delay = delay / 2 + self.rng.uniform(0, delay / 2)
        server_says = retry_after(source)
        if server_says is not None:
            delay = max(delay, min(server_says, self.max_retry_after))
        return delay


@dataclass
class DelayList:
    """Fixed delays, one per attempt; the last repeats (or None after it: ``repeat=False``)."""

    delays: Sequence[float]
    repeat: bool = True

    def __post_init__(self) -> None:
        if not self.delays:
            raise ValueError("DelayList needs at least one delay")

    def next_delay(self, attempt: int, source: DisconnectionSource) -> float | None:
        index = attempt - 1
        if index >= len(self.delays):
            if not self.repeat:
                return None
            index = len(self.delays) - 1
        delay = self.delays[index]
        server_says = retry_after(source)
        return max(delay, server_says) if server_says is not None else delay


@dataclass
class _CallableStrategy:
    function: Callable[[int, DisconnectionSource], float | None]

    def next_delay(self, attempt: int, source: DisconnectionSource) -> float | None:
        return self.function(attempt, source)


def as_strategy(
    strategy: RetryStrategy | Callable[[int, DisconnectionSource], float | None] | None,
) -> RetryStrategy:
    """A strategy object from a strategy, a plain callable, or None (the default)."""
    if strategy is None:
        return ExponentialBackoff()
    if isinstance(strategy, RetryStrategy):
        return strategy
    if callable(strategy):
        return _CallableStrategy(strategy)
    raise TypeError(f"not a retry strategy: {strategy!r}")
