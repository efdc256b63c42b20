"""How long to wait before the next reconnect attempt, and when to give up.

A strategy answers ``next_delay(attempt, source)``: the seconds to wait before attempt
number ``attempt`` (1 for the first retry after a drop) given the source of the last
disconnection, or None to give up.

:class:`PacedBackoff` is the default. It is built for the fleet, not for one client: when a
server restarts, every client dropped at the same instant, and what the restarted server
sees is each client's *next* attempt after it is back. So the strategy keeps every client's
attempts a stationary random process from the first retry on:

* a paced phase (``paced_attempts`` retries, about 15 s of outage): each delay is uniform in
  ``[low, high]`` (1-2 s), except the first, which is drawn from that process's equilibrium
  (residual-life) distribution: uniform density on ``[0, low]``, falling linearly to 0 at
  ``high``. With that first draw the fleet attempts at a constant ``N / 1.5`` per second from
  the moment of the drop, with no first-retry wave: whenever the server comes back, at most
  ~7 % of the clients reach it in any 100 ms, half are back within 0.75 s and all within 2 s;
* then exponential backoff with equal jitter (the ceiling doubles from ``high`` to ``cap``,
  25 s; each delay is uniform in the upper half of its ceiling), so a server that stays down
  is not polled by the whole fleet every 1.5 s forever;
* ``Retry-After`` on HTTP 429/503 is a floor (bounded by ``max_retry_after``), and a fleet
  told the same ``Retry-After`` is spread over the ``max(high, retry_after / 4)`` seconds
  after it instead of all coming back at that instant.

:class:`ExponentialBackoff` (``base * factor ** (attempt - 1)`` capped, equal jitter) and
:class:`DelayList` (fixed delays) remain for apps that want them; any
``(attempt, source) -> float | None`` callable works too (:func:`as_strategy`).

Every parameter is checked at construction: a delay, cap, factor or ``max_retry_after`` is
a finite int or float (not a bool, not NaN, not infinite), ``max_attempts`` and
``paced_attempts`` are ints, ``jitter`` and ``repeat`` are bools, ``rng`` has the
``random.Random`` methods the strategy draws with; anything else is a
``TypeError`` (wrong kind) or ``ValueError`` (out of range) that names the parameter and
shows the value. An infinite cap or delay would be a silent give-up (the client waits
forever) and a negative or NaN one a tight reconnect loop, so neither is accepted.

Pure module: the random source is injected (``rng``) so a strategy is deterministic under
test, and no clock is read: the connection core asks for a delay and the shell's timers wait
it out.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from .exceptions import HandshakeRejected
from .sources import DisconnectionSource, ServerInitiated

__all__ = [
    "DelayList",
    "ExponentialBackoff",
    "PacedBackoff",
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


def _number(owner: str, name: str, value: object) -> float:
    """``value`` as a float when it is a finite int or float (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{owner} {name} must be a number, not {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{owner} {name} must be finite, not {value!r}")
    return float(value)


def _flag(owner: str, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{owner} {name} must be True or False, not {value!r}")


def _count(owner: str, name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner} {name} must be an int, not {value!r}")
    if value < minimum:
        raise ValueError(f"{owner} {name} must be >= {minimum}, not {value!r}")


def _source_of_randomness(owner: str, rng: object, methods: tuple[str, ...]) -> None:
    """``rng`` has the ``random.Random`` methods the strategy draws with."""
    missing = [name for name in methods if not callable(getattr(rng, name, None))]
    if missing:
        raise TypeError(
            f"{owner} rng must be a random.Random (or have {', '.join(methods)}), not {rng!r}"
        )


def _grown(start: float, factor: float, steps: int, cap: float) -> float:
    """``min(cap, start * factor ** steps)``, also where the power is too large for a float
    (a factor of 1e10 overflows at the 31st step)."""
    try:
        grown = start * factor**steps
    except OverflowError:
        grown = math.inf if start > 0 else 0.0
    return min(cap, grown)


def _limits(owner: str, max_attempts: object, max_retry_after: object) -> None:
    if max_attempts is not None:
        _count(owner, "max_attempts", max_attempts, 0)
    if _number(owner, "max_retry_after", max_retry_after) < 0:
        raise ValueError(f"{owner} max_retry_after must be >= 0, not {max_retry_after!r}")


@dataclass
class ExponentialBackoff:
    """Exponential backoff with equal jitter, capped, honouring ``Retry-After``.

    Accepted values (checked at construction): ``base`` and ``cap`` finite, >= 0 (seconds);
    ``factor`` finite, >= 1; ``jitter`` a bool; ``max_attempts`` an int >= 0 or None (0 gives
    up at once, None never); ``max_retry_after`` finite, >= 0 (seconds: the most of a
    server's ``Retry-After`` that is honoured).
    """

    base: float = 0.5
    factor: float = 2.0
    cap: float = 25.0
    jitter: bool = True
    max_attempts: int | None = None
    max_retry_after: float = 600.0
    rng: random.Random = field(default=_SHARED_RNG)

    def __post_init__(self) -> None:
        for name in ("base", "factor", "cap"):
            _number("ExponentialBackoff", name, getattr(self, name))
        if self.base < 0 or self.cap < 0 or self.factor < 1:
            raise ValueError("base and cap must be >= 0 and factor >= 1")
        _flag("ExponentialBackoff", "jitter", self.jitter)
        _limits("ExponentialBackoff", self.max_attempts, self.max_retry_after)
        _source_of_randomness("ExponentialBackoff", self.rng, ("uniform",))

    def next_delay(self, attempt: int, source: DisconnectionSource) -> float | None:
        if self.max_attempts is not None and attempt > self.max_attempts:
            return None
        # min() before the power would overflow for large attempts.
        exponent = min(attempt - 1, 64)
        delay = _grown(self.base, self.factor, exponent, self.cap)
        if self.jitter:
            delay = delay / 2 + self.rng.uniform(0, delay / 2)
        server_says = retry_after(source)
        if server_says is not None:
            delay = max(delay, min(server_says, self.max_retry_after))
        return delay


@dataclass
class PacedBackoff:
    """The default: a paced phase with stationary jitter, then exponential backoff to the cap.

    See the module docstring for why. Stateless apart from ``rng``: the delay depends only on
    ``attempt`` (which the connection core resets after a stable connection) and ``source``.

    Accepted values (checked at construction): ``low``, ``high`` and ``cap`` finite with
    ``0 <= low <= high <= cap`` (seconds); ``paced_attempts`` an int >= 1; ``factor`` finite,
    >= 1; ``max_attempts`` an int >= 0 or None; ``max_retry_after`` finite, >= 0 (seconds).
    """

    low: float = 1.0
    high: float = 2.0
    paced_attempts: int = 10
    factor: float = 2.0
    cap: float = 25.0
    max_attempts: int | None = None
    max_retry_after: float = 600.0
    rng: random.Random = field(default=_SHARED_RNG)

    def __post_init__(self) -> None:
        for name in ("low", "high", "cap", "factor"):
            _number("PacedBackoff", name, getattr(self, name))
        if not 0 <= self.low <= self.high <= self.cap:
            raise ValueError("PacedBackoff needs 0 <= low <= high <= cap")
        if isinstance(self.paced_attempts, bool) or not isinstance(self.paced_attempts, int):
            raise TypeError(
                f"PacedBackoff paced_attempts must be an int, not {self.paced_attempts!r}"
            )
        if self.paced_attempts < 1 or self.factor < 1:
            raise ValueError("paced_attempts must be >= 1 and factor >= 1")
        _limits("PacedBackoff", self.max_attempts, self.max_retry_after)
        _source_of_randomness("PacedBackoff", self.rng, ("random", "triangular", "uniform"))

    def next_delay(self, attempt: int, source: DisconnectionSource) -> float | None:
        if self.max_attempts is not None and attempt > self.max_attempts:
            return None
        server_says = retry_after(source)
        if server_says is not None:
            # A floor the whole fleet was given at once: spread the comeback after it.
            floor = min(server_says, self.max_retry_after)
            return floor + self.rng.uniform(0, max(self.high, floor / 4))
        if attempt <= 1:
            return self._first_delay()
        if attempt <= self.paced_attempts:
            return self.rng.uniform(self.low, self.high)
        # min() before the power would overflow for large attempts.
        exponent = min(attempt - self.paced_attempts, 64)
        ceiling = _grown(self.high, self.factor, exponent, self.cap)
        return self.rng.uniform(ceiling / 2, ceiling)

    def _first_delay(self) -> float:
        """A draw from the residual life of a ``uniform(low, high)`` interval.

        Density ``(1 - F(x)) / mean``: flat on ``[0, low]`` (mass ``low / mean``), then a
        triangle falling to 0 at ``high``. Starting a renewal process with this draw makes it
        stationary at once: the fleet's attempt rate is flat from the drop on.
        """
        low, high = self.low, self.high
        mean = (low + high) / 2
        if mean == 0:
            return 0.0
        if self.rng.random() * mean < low:
            return self.rng.uniform(0, low)
        return self.rng.triangular(low, high, low)


@dataclass
class DelayList:
    """Fixed delays, one per attempt; the last repeats (or None after it: ``repeat=False``).

    ``delays`` is a non-empty sequence (a list, tuple or range; not a string) of finite
    numbers of seconds >= 0, not bools; ``repeat`` a bool. The delays are stored as a tuple
    of floats (a copy: changing the list passed in later changes nothing).
    """

    delays: Sequence[float]
    repeat: bool = True

    def __post_init__(self) -> None:
        delays = self.delays
        if isinstance(delays, str | bytes) or not isinstance(delays, Sequence):
            raise TypeError(f"DelayList delays must be a sequence of seconds, not {delays!r}")
        if not delays:
            raise ValueError("DelayList needs at least one delay")
        checked = []
        for index, delay in enumerate(delays):
            seconds = _number("DelayList", f"delays[{index}]", delay)
            if seconds < 0:
                raise ValueError(f"DelayList delays[{index}] must be >= 0, not {delay!r}")
            checked.append(seconds)
        self.delays = tuple(checked)
        _flag("DelayList", "repeat", self.repeat)

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
        return PacedBackoff()
    if isinstance(strategy, RetryStrategy):
        return strategy
    if callable(strategy):
        return _CallableStrategy(strategy)
    raise TypeError(f"not a retry strategy: {strategy!r}")
