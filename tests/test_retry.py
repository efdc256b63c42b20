"""Retry strategies: backoff shape, jitter as a distribution, determinism, Retry-After."""

from __future__ import annotations

import random
from typing import Any

import pytest

from statesock.exceptions import HandshakeRejected
from statesock.retry import DelayList, ExponentialBackoff, PacedBackoff, as_strategy, retry_after
from statesock.sources import NoPongReceived, ServerInitiated
from tests.bench.storm_model import peak_window_share, simulate

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
    assert isinstance(as_strategy(None), PacedBackoff)
    assert as_strategy(None) is not as_strategy(None)  # one per recovery handler
    fixed = DelayList([3])
    assert as_strategy(fixed) is fixed
    assert as_strategy(lambda attempt, source: attempt * 10.0).next_delay(2, NOPONG) == 20.0
    with pytest.raises(TypeError):
        as_strategy(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("settings", [{"factor": 0.5}, {"base": -1.0}, {"cap": -1.0}])
def test_invalid_backoff_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ExponentialBackoff(**settings)  # type: ignore[arg-type]


# -- PacedBackoff, the default -----------------------------------------------------------


def first_delays(count: int, seed: int = 3) -> list[float]:
    rng = random.Random(seed)
    delays = [PacedBackoff(rng=rng).next_delay(1, NOPONG) for _ in range(count)]
    assert all(delay is not None for delay in delays)
    return [d for d in delays if d is not None]


def test_the_first_retry_of_a_fleet_is_spread_flat_over_the_first_second() -> None:
    delays = first_delays(20_000)
    assert len(set(delays)) == len(delays)  # every client draws its own delay
    assert min(delays) >= 0 and max(delays) <= 2.0
    # Equilibrium draw: 2/3 of the mass flat on [0, 1], the rest a triangle on [1, 2].
    per_tenth = [sum(1 for d in delays if k / 10 <= d < (k + 1) / 10) for k in range(20)]
    for bucket in per_tenth[:10]:
        assert bucket / len(delays) == pytest.approx(1 / 15, abs=0.01)
    assert per_tenth[10] > per_tenth[15] > per_tenth[19]
    assert sum(per_tenth[10:]) / len(delays) == pytest.approx(1 / 3, abs=0.015)


def test_paced_retries_are_uniform_between_low_and_high() -> None:
    strategy = PacedBackoff(rng=random.Random(5))
    delays = [strategy.next_delay(attempt, NOPONG) or 0.0 for attempt in range(2, 11)]
    delays += [strategy.next_delay(5, NOPONG) or 0.0 for _ in range(5_000)]
    assert min(delays) >= 1.0 and max(delays) <= 2.0
    halves = sum(1 for d in delays if d < 1.5) / len(delays)
    assert halves == pytest.approx(0.5, abs=0.03)
    assert len({round(d, 3) for d in delays}) > 500


def test_a_fleet_keeps_a_flat_attempt_rate_from_the_drop_on() -> None:
    """Attempt times of 5,000 clients while the server stays down: no wave at any moment."""
    rng = random.Random(11)
    attempts: list[float] = []
    for _ in range(5_000):
        strategy = PacedBackoff(rng=rng)
        t = 0.0
        for attempt in range(1, 8):
            t += strategy.next_delay(attempt, NOPONG) or 0.0
            attempts.append(t)
    early = [t for t in attempts if t < 8.0]
    # Flat rate 1 / 1.5 per client per second: 6.7 % of the fleet per 100 ms, everywhere.
    assert peak_window_share(early, 5_000) <= 0.085


@pytest.mark.parametrize("down", [0.5, 5.0])
def test_a_restarted_server_sees_no_spike_and_everyone_back_within_two_seconds(
    down: float,
) -> None:
    storm = simulate(10_000, lambda rng: PacedBackoff(rng=rng), down, seed=2)
    assert storm.clients == 10_000
    assert storm.peak_share <= 0.08
    assert storm.p50 <= 1.0
    assert storm.p99 <= 2.0


def test_the_old_equal_jitter_default_would_spike() -> None:
    """The benchmark's model tells the strategies apart (so the test above can fail)."""
    storm = simulate(10_000, lambda rng: ExponentialBackoff(rng=rng), 0.5, seed=2)
    assert storm.peak_share > 0.15


def test_after_the_paced_phase_the_delay_backs_off_to_the_cap_and_stays_there() -> None:
    strategy = PacedBackoff(rng=random.Random(9))
    ceilings = {11: 4.0, 12: 8.0, 13: 16.0, 14: 25.0, 40: 25.0, 10_000: 25.0}
    for attempt, ceiling in ceilings.items():
        delays = [strategy.next_delay(attempt, NOPONG) or 0.0 for _ in range(500)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 3  # still jittered at the cap
    capped = PacedBackoff(cap=5.0, rng=random.Random(1)).next_delay(99, NOPONG)
    assert capped is not None and 2.5 <= capped <= 5.0


def test_paced_backoff_gives_up_after_max_attempts() -> None:
    strategy = PacedBackoff(max_attempts=3, rng=random.Random(1))
    assert [strategy.next_delay(n, NOPONG) is None for n in (1, 2, 3, 4, 50)] == [
        False,
        False,
        False,
        True,
        True,
    ]
    limited = ServerInitiated(error=HandshakeRejected(503, retry_after=5))
    assert strategy.next_delay(4, limited) is None  # Retry-After does not revive it


def test_retry_after_is_a_floor_and_the_fleet_is_spread_after_it() -> None:
    rng = random.Random(4)
    source = ServerInitiated(error=HandshakeRejected(503, retry_after=40))
    delays = [PacedBackoff(rng=rng).next_delay(1, source) or 0.0 for _ in range(2_000)]
    assert min(delays) >= 40.0
    assert 49.5 < max(delays) <= 50.0  # spread over all of retry_after / 4
    assert peak_window_share(delays, len(delays)) <= 0.03
    short = ServerInitiated(error=HandshakeRejected(429, retry_after=0.5))
    spread = [PacedBackoff(rng=rng).next_delay(n, short) or 0.0 for n in (1, 5, 30) * 300]
    assert min(spread) >= 0.5 and max(spread) <= 2.5  # at least `high` (2 s) of spread
    assert max(spread) > 2.4 and sum(1 for d in spread if d > 1.5) > 300
    # Not a 429/503: the header means nothing, the paced delay applies.
    other = ServerInitiated(error=HandshakeRejected(500, retry_after=40))
    assert (PacedBackoff(rng=rng).next_delay(2, other) or 99) <= 2.0


def test_retry_after_is_bounded_for_the_paced_default() -> None:
    source = ServerInitiated(error=HandshakeRejected(503, retry_after=86_400))
    delay = PacedBackoff(max_retry_after=600, rng=random.Random(1)).next_delay(1, source)
    assert delay is not None and 600 <= delay <= 750


def test_paced_backoff_is_deterministic_under_an_injected_random_source() -> None:
    def run(seed: int) -> list[float | None]:
        strategy = PacedBackoff(rng=random.Random(seed))
        return [strategy.next_delay(n, NOPONG) for n in range(1, 20)]

    assert run(8) == run(8)
    assert run(8) != run(9)


def test_zero_delays_are_allowed_and_stay_zero() -> None:
    strategy = PacedBackoff(low=0.0, high=0.0, cap=0.0, rng=random.Random(1))
    assert [strategy.next_delay(n, NOPONG) for n in (1, 2, 30)] == [0.0, 0.0, 0.0]


def test_delay_list_honours_retry_after_as_a_floor() -> None:
    busy = ServerInitiated(error=HandshakeRejected(503, retry_after=7))
    soon = ServerInitiated(error=HandshakeRejected(429, retry_after=0.5))
    assert DelayList([1.0]).next_delay(1, busy) == 7
    assert DelayList([1.0]).next_delay(1, soon) == 1.0


@pytest.mark.parametrize(
    "settings",
    [
        {"low": 3.0, "high": 2.0},
        {"high": 30.0},
        {"low": -1.0},
        {"paced_attempts": 0},
        {"factor": 0.5},
    ],
)
def test_invalid_paced_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PacedBackoff(**settings)  # type: ignore[arg-type]


# -- huge factors and foreign random sources -------------------------------------------------


@pytest.mark.parametrize("attempt", [31, 33, 65, 10_000])
def test_a_factor_too_large_for_a_float_power_still_stops_at_the_cap(attempt: int) -> None:
    # 1e10 ** 31 is past a float's range: the power overflowed instead of being capped.
    exponential = ExponentialBackoff(factor=1e10, jitter=False)
    assert exponential.next_delay(attempt, NOPONG) == 25.0
    paced = PacedBackoff(factor=1e10, cap=30.0, rng=random.Random(3))
    delay = paced.next_delay(10 + attempt, NOPONG)
    assert delay is not None and 15.0 <= delay <= 30.0


def test_a_zero_start_stays_zero_however_large_the_factor() -> None:
    strategy = ExponentialBackoff(base=0.0, factor=1e10, jitter=False)
    assert [strategy.next_delay(n, NOPONG) for n in (1, 2, 40)] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("make", "needs"),
    [
        (lambda rng: ExponentialBackoff(rng=rng), "ExponentialBackoff rng .* uniform"),
        (lambda rng: PacedBackoff(rng=rng), "PacedBackoff rng .* random, triangular, uniform"),
    ],
)
@pytest.mark.parametrize("rng", [None, 7, "random", object()])
def test_a_random_source_without_the_draws_it_needs_is_refused(
    make: Any, needs: str, rng: object
) -> None:
    with pytest.raises(TypeError, match=f"^{needs}\\), not "):
        make(rng)


def test_any_object_with_the_draws_will_do_as_a_random_source() -> None:
    class Midpoint:
        def uniform(self, low: float, high: float) -> float:
            return (low + high) / 2

        def random(self) -> float:
            return 0.0

        def triangular(self, low: float, high: float, mode: float) -> float:
            return mode

    assert ExponentialBackoff(rng=Midpoint()).next_delay(1, NOPONG) == 0.375  # type: ignore[arg-type]
    assert PacedBackoff(rng=Midpoint()).next_delay(2, NOPONG) == 1.5  # type: ignore[arg-type]
