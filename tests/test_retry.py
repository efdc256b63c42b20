"""Retry strategies: backoff shape, jitter bounds, determinism, Retry-After, give-up."""

from __future__ import annotations

import random

import pytest

from statesock.exceptions import HandshakeRejected
from statesock.retry import DelayList, ExponentialBackoff, as_strategy, retry_after
from statesock.sources import NoPongReceived, ServerInitiated

NOPONG = NoPongReceived()


def test_backoff_without_jitter_doubles_up_to_the_cap() -> None:
    strategy = ExponentialBackoff(jitter=False)
    delays = [strategy.next_delay(n, NOPONG) for n in range(1, 10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 25.0, 25.0, 25.0]
    assert strategy.next_delay(10_000, NOPONG) == 25.0  # no overflow


def test_equal_jitter_stays_in_the_upper_half() -> None:
    strategy = ExponentialBackoff(rng=random.Random(7))
    for attempt in range(1, 12):
        ceiling = min(25.0, 0.5 * 2 ** (attempt - 1))
        for _ in range(200):
            delay = strategy.next_delay(attempt, NOPONG)
            assert delay is not None
            assert ceiling / 2 <= delay <= ceiling


def test_deterministic_under_an_injected_random_source() -> None:
    first = [ExponentialBackoff(rng=random.Random(42)).next_delay(n, NOPONG) for n in range(1, 8)]
    again = [ExponentialBackoff(rng=random.Random(42)).next_delay(n, NOPONG) for n in range(1, 8)]
    assert first == again


def test_max_attempts_gives_up() -> None:
    strategy = ExponentialBackoff(max_attempts=3, jitter=False)
    assert [strategy.next_delay(n, NOPONG) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, None]


@pytest.mark.parametrize(
    ("status", "header", "honoured"),
    [(503, 7.0, 7.0), (429, 30.0, 30.0), (500, 7.0, None), (503, None, None), (401, 9.0, None)],
)
def test_retry_after_is_honoured_on_429_and_503(
    status: int, header: float | None, honoured: float | None
) -> None:
    source = ServerInitiated(error=HandshakeRejected(status, retry_after=header))
    assert retry_after(source) == honoured
    delay = ExponentialBackoff(jitter=False).next_delay(1, source)
    assert delay == (honoured if honoured is not None else 0.5)


def test_retry_after_is_bounded() -> None:
    source = ServerInitiated(error=HandshakeRejected(503, retry_after=86_400))
    assert ExponentialBackoff(max_retry_after=600).next_delay(1, source) == 600


def test_delay_list_repeats_the_last_or_gives_up() -> None:
    assert [DelayList([0, 1, 5]).next_delay(n, NOPONG) for n in range(1, 6)] == [0, 1, 5, 5, 5]
    once = DelayList([0, 1], repeat=False)
    assert [once.next_delay(n, NOPONG) for n in (1, 2, 3)] == [0, 1, None]
    with pytest.raises(ValueError):
        DelayList([])


def test_as_strategy_accepts_objects_callables_and_none() -> None:
    assert isinstance(as_strategy(None), ExponentialBackoff)
    fixed = DelayList([3])
    assert as_strategy(fixed) is fixed
    assert as_strategy(lambda attempt, source: attempt * 10.0).next_delay(2, NOPONG) == 20.0
    with pytest.raises(TypeError):
        as_strategy(42)  # type: ignore[arg-type]


def test_invalid_backoff_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        ExponentialBackoff(factor=0.5)
