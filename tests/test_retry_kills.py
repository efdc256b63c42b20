"""Retry-strategy behaviours that tests/test_retry.py leaves unpinned (found by mutation).

Each test here exists because a mutant of statesock/retry.py survived the rest of the suite;
the assertion says the behaviour that mutant broke.
"""

from __future__ import annotations

import random
import statistics

import pytest

from statesock.retry import ExponentialBackoff
from statesock.sources import NoPongReceived

NOPONG = NoPongReceived()


def test_exponential_backoff_jitter_is_a_spread_not_a_fixed_fraction() -> None:
    # Equal jitter: uniform over the upper half of the ceiling. Removing the jitter (any
    # fixed point of that range) would make every draw the same.
    strategy = ExponentialBackoff(rng=random.Random(3))
    draws = [strategy.next_delay(5, NOPONG) for _ in range(400)]
    delays = [d for d in draws if d is not None]
    assert len(delays) == 400
    assert min(delays) < 4.2 and max(delays) > 7.8  # ceiling 8: the whole of [4, 8]
    assert statistics.mean(delays) == pytest.approx(6.0, abs=0.25)
    assert len(set(delays)) == 400


def test_exponential_backoff_draws_from_its_own_random_source() -> None:
    seeded = random.Random(11)
    expected = [min(25.0, 0.5 * 2 ** (n - 1)) for n in range(1, 8)]
    expected = [c / 2 + seeded.uniform(0, c / 2) for c in expected]
    strategy = ExponentialBackoff(rng=random.Random(11))
    assert [strategy.next_delay(n, NOPONG) for n in range(1, 8)] == expected
