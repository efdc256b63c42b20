"""Retry-strategy behaviours that tests/test_retry.py leaves unpinned (found by mutation).

Each test here exists because a mutant of statesock/retry.py survived the rest of the suite;
the assertion says the behaviour that mutant broke.
"""

from __future__ import annotations

import random
import statistics

import pytest

from statesock.exceptions import HandshakeRejected
from statesock.retry import DelayList, ExponentialBackoff, PacedBackoff, as_strategy
from statesock.sources import DisconnectionSource, NoPongReceived, ServerInitiated

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


def test_exponential_backoff_jitter_reaches_both_ends_of_the_upper_half() -> None:
    strategy = ExponentialBackoff(rng=random.Random(5))
    delays = [strategy.next_delay(4, NOPONG) or 0.0 for _ in range(2000)]
    assert 2.0 <= min(delays) < 2.02 and 3.98 < max(delays) <= 4.0


@pytest.mark.parametrize(
    "kwargs",
    [{"base": 0.0}, {"cap": 0.0}, {"factor": 1.0}, {"cap": 0.5}, {"base": 0.0, "cap": 0.0}],
)
def test_exponential_backoff_accepts_its_boundaries(kwargs: dict[str, float]) -> None:
    strategy = ExponentialBackoff(jitter=False, **kwargs)  # type: ignore[arg-type]
    assert strategy.next_delay(1, NOPONG) is not None


@pytest.mark.parametrize(
    "kwargs", [{"base": -0.1}, {"cap": -1.0}, {"factor": 0.99}, {"base": -1.0, "cap": 1.0}]
)
def test_exponential_backoff_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"^base and cap must be >= 0 and factor >= 1$"):
        ExponentialBackoff(**kwargs)  # type: ignore[arg-type]


def test_the_exponent_is_clamped_at_64_doublings() -> None:
    # A cap far above 2**64 (an infinite one is refused): only the clamp bounds the delay.
    unbounded = ExponentialBackoff(base=1.0, cap=1e30, jitter=False)
    assert unbounded.next_delay(10_000, NOPONG) == 2.0**64
    paced = PacedBackoff(low=0.5, high=1.0, cap=1e30, rng=random.Random(1))
    delay = paced.next_delay(10_000, NOPONG)
    assert delay is not None and 2.0**63 <= delay <= 2.0**64


@pytest.mark.parametrize(
    "kwargs",
    [
        {"low": 0.0},
        {"low": 1.5, "high": 1.5},
        {"high": 25.0, "cap": 25.0},
        {"low": 0.0, "high": 0.0, "cap": 0.0},
        {"paced_attempts": 1},
        {"factor": 1.0},
    ],
)
def test_paced_backoff_accepts_its_boundaries(kwargs: dict[str, float]) -> None:
    PacedBackoff(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"low": -0.1}, r"^PacedBackoff needs 0 <= low <= high <= cap$"),
        ({"low": 2.5, "high": 2.0}, r"^PacedBackoff needs 0 <= low <= high <= cap$"),
        ({"high": 30.0}, r"^PacedBackoff needs 0 <= low <= high <= cap$"),
        ({"paced_attempts": 0}, r"^paced_attempts must be >= 1 and factor >= 1$"),
        ({"factor": 0.5}, r"^paced_attempts must be >= 1 and factor >= 1$"),
    ],
)
def test_paced_backoff_refuses_nonsense(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PacedBackoff(**kwargs)  # type: ignore[arg-type]


def test_the_last_paced_attempt_is_still_paced() -> None:
    # With low well under high / 2 the paced draw and the first backoff draw differ.
    strategy = PacedBackoff(low=0.2, high=2.0, paced_attempts=4, rng=random.Random(2))
    last_paced = [strategy.next_delay(4, NOPONG) or 0.0 for _ in range(500)]
    assert min(last_paced) < 0.5
    first_backoff = [strategy.next_delay(5, NOPONG) or 0.0 for _ in range(500)]
    assert min(first_backoff) >= 2.0


def test_a_zero_paced_range_retries_at_once() -> None:
    strategy = PacedBackoff(low=0.0, high=0.0, cap=0.0)
    assert strategy.next_delay(1, NOPONG) == 0.0


def test_the_first_delay_is_spread_when_the_mean_is_one_second() -> None:
    strategy = PacedBackoff(low=0.5, high=1.5, rng=random.Random(4))
    delays = [strategy.next_delay(1, NOPONG) or 0.0 for _ in range(500)]
    assert min(delays) < 0.05 and max(delays) > 1.2


def test_a_fleet_told_retry_after_is_spread_over_the_quarter_after_it() -> None:
    source = ServerInitiated(error=HandshakeRejected(503, retry_after=100.0))
    strategy = PacedBackoff(rng=random.Random(9))
    delays = [strategy.next_delay(1, source) or 0.0 for _ in range(2000)]
    assert 100.0 <= min(delays) < 100.1
    assert 124.9 < max(delays) <= 125.0


def test_delay_list_honours_retry_after_as_a_floor() -> None:
    source = ServerInitiated(error=HandshakeRejected(503, retry_after=7.0))
    assert DelayList([1.0]).next_delay(1, source) == 7.0
    assert DelayList([10.0]).next_delay(1, source) == 10.0
    assert DelayList([1.0]).next_delay(1, NOPONG) == 1.0
    with pytest.raises(ValueError, match=r"^DelayList needs at least one delay$"):
        DelayList([])


def test_a_callable_strategy_is_given_the_source() -> None:
    seen: list[object] = []

    def strategy(attempt: int, source: DisconnectionSource) -> float:
        seen.append((attempt, source))
        return 1.0

    assert as_strategy(strategy).next_delay(3, NOPONG) == 1.0
    assert seen == [(3, NOPONG)]
    with pytest.raises(TypeError, match=r"^not a retry strategy: 42$"):
        as_strategy(42)  # type: ignore[arg-type]


# -- a bad argument is refused at construction, naming the class, the parameter and the value --

NAN, INF = float("nan"), float("inf")
EB, PB, DL = ExponentialBackoff, PacedBackoff, DelayList
# (class, arguments, exception, message after the class name)
REFUSED: list[tuple[type, dict[str, object], type[Exception], str]] = [
    (EB, {"base": "1"}, TypeError, "base must be a number, not '1'"),
    (EB, {"base": True}, TypeError, "base must be a number, not True"),
    (EB, {"factor": NAN}, ValueError, "factor must be finite, not nan"),
    (EB, {"cap": INF}, ValueError, "cap must be finite, not inf"),
    (EB, {"jitter": "no"}, TypeError, "jitter must be True or False, not 'no'"),
    (EB, {"max_attempts": 2.5}, TypeError, "max_attempts must be an int, not 2.5"),
    (EB, {"max_attempts": True}, TypeError, "max_attempts must be an int, not True"),
    (EB, {"max_attempts": -1}, ValueError, "max_attempts must be >= 0, not -1"),
    (EB, {"max_retry_after": "x"}, TypeError, "max_retry_after must be a number, not 'x'"),
    (EB, {"max_retry_after": -0.5}, ValueError, "max_retry_after must be >= 0, not -0.5"),
    (PB, {"low": "x"}, TypeError, "low must be a number, not 'x'"),
    (PB, {"high": INF}, ValueError, "high must be finite, not inf"),
    (PB, {"paced_attempts": 2.5}, TypeError, "paced_attempts must be an int, not 2.5"),
    (PB, {"paced_attempts": True}, TypeError, "paced_attempts must be an int, not True"),
    (PB, {"max_attempts": -1}, ValueError, "max_attempts must be >= 0, not -1"),
    (PB, {"max_retry_after": -1}, ValueError, "max_retry_after must be >= 0, not -1"),
    (DL, {"delays": "abc"}, TypeError, "delays must be a sequence of seconds, not 'abc'"),
    (DL, {"delays": 5}, TypeError, "delays must be a sequence of seconds, not 5"),
    (DL, {"delays": [1, NAN]}, ValueError, "delays[1] must be finite, not nan"),
    (DL, {"delays": [1, "2"]}, TypeError, "delays[1] must be a number, not '2'"),
    (DL, {"delays": [1, -1]}, ValueError, "delays[1] must be >= 0, not -1"),
    (DL, {"delays": [1], "repeat": "yes"}, TypeError, "repeat must be True or False, not 'yes'"),
]


@pytest.mark.parametrize(
    ("strategy", "arguments", "kind", "message"),
    REFUSED,
    ids=[f"{cls.__name__} {message}" for cls, _, _, message in REFUSED],
)
def test_a_bad_argument_is_refused_naming_the_class_the_parameter_and_the_value(
    strategy: type, arguments: dict[str, object], kind: type[Exception], message: str
) -> None:
    with pytest.raises(kind) as refused:
        strategy(**arguments)
    assert str(refused.value) == f"{strategy.__name__} {message}"


def test_the_edges_of_the_accepted_ranges_are_accepted() -> None:
    for strategy in (ExponentialBackoff, PacedBackoff):
        assert strategy(max_attempts=0, max_retry_after=0).next_delay(1, NOPONG) is None
        assert strategy(max_attempts=1, max_retry_after=0.5).max_retry_after == 0.5
    assert DelayList([0]).next_delay(1, NOPONG) == 0.0
