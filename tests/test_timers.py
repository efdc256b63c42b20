"""The shell's timers: one live ``loop.call_at`` handle per kind, in virtual time."""

from __future__ import annotations

import asyncio

import pytest

from statesock.core_io import TimerKind
from statesock.timers import Timers
from tests.conftest import virtual_time

K = TimerKind


def recording() -> tuple[Timers, list[tuple[TimerKind, float]]]:
    """Timers whose firings are listed as (kind, loop time)."""
    loop = asyncio.get_running_loop()
    fired: list[tuple[TimerKind, float]] = []
    return Timers(lambda kind: fired.append((kind, loop.time()))), fired


@virtual_time
async def test_a_timer_fires_once_at_its_time_and_is_then_gone() -> None:
    timers, fired = recording()
    timers.start(asyncio.get_running_loop(), K.PING, 5.0)
    assert K.PING in timers and len(timers) == 1
    await asyncio.sleep(100)
    assert fired == [(K.PING, 5.0)]
    assert K.PING not in timers and len(timers) == 0


@virtual_time
async def test_starting_a_kind_again_replaces_it_the_old_time_never_fires() -> None:
    loop = asyncio.get_running_loop()
    timers, fired = recording()
    timers.start(loop, K.PING, 5.0)
    timers.start(loop, K.PING, 10.0)
    assert len(timers) == 1
    await asyncio.sleep(100)
    assert fired == [(K.PING, 10.0)]
    # ...and earlier than before: the old, later time does not fire either.
    timers.start(loop, K.RECONNECT, 200.0)
    timers.start(loop, K.RECONNECT, 150.0)
    await asyncio.sleep(200)
    assert fired == [(K.PING, 10.0), (K.RECONNECT, 150.0)]
    assert len(timers) == 0


@virtual_time
async def test_kinds_are_independent() -> None:
    loop = asyncio.get_running_loop()
    timers, fired = recording()
    timers.start(loop, K.PING, 3.0)
    timers.start(loop, K.PONG_DEADLINE, 4.0)
    timers.start(loop, K.CLOSE_DEADLINE, 2.0)
    assert sorted(kind.value for kind in timers) == ["close_deadline", "ping", "pong_deadline"]
    timers.cancel(K.PING)
    await asyncio.sleep(10)
    assert fired == [(K.CLOSE_DEADLINE, 2.0), (K.PONG_DEADLINE, 4.0)]


@virtual_time
async def test_cancel_stops_a_kind_and_cancelling_an_idle_kind_does_nothing() -> None:
    loop = asyncio.get_running_loop()
    timers, fired = recording()
    timers.cancel(K.PING)  # nothing armed: no error
    timers.start(loop, K.PING, 5.0)
    timers.cancel(K.PING)
    assert K.PING not in timers and len(timers) == 0
    timers.cancel(K.PING)
    await asyncio.sleep(100)
    assert fired == []


@virtual_time
async def test_cancel_all_stops_every_kind() -> None:
    loop = asyncio.get_running_loop()
    timers, fired = recording()
    for at, kind in enumerate(K, start=1):
        timers.start(loop, kind, float(at))
    assert len(timers) == len(K)
    timers.cancel_all()
    assert len(timers) == 0 and list(timers) == []
    await asyncio.sleep(100)
    assert fired == []


@virtual_time
async def test_a_firing_kind_is_gone_before_its_callback_so_the_callback_may_start_it_again() -> (
    None
):
    loop = asyncio.get_running_loop()
    fired: list[tuple[TimerKind, float, bool]] = []

    def fire(kind: TimerKind) -> None:
        fired.append((kind, loop.time(), kind in timers))
        if len(fired) < 3:
            timers.start(loop, kind, loop.time() + 5.0)

    timers = Timers(fire)
    timers.start(loop, K.PING, 5.0)
    await asyncio.sleep(100)
    assert fired == [(K.PING, 5.0, False), (K.PING, 10.0, False), (K.PING, 15.0, False)]
    assert len(timers) == 0


@virtual_time
async def test_iterating_is_a_snapshot_so_cancelling_while_iterating_is_safe() -> None:
    loop = asyncio.get_running_loop()
    timers, fired = recording()
    timers.start(loop, K.PING, 1.0)
    timers.start(loop, K.IDLE_DEADLINE, 2.0)
    for kind in timers:
        timers.cancel(kind)
    assert len(timers) == 0
    await asyncio.sleep(10)
    assert fired == []


def test_a_timer_needs_its_loop() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    timers = Timers(lambda kind: None)
    with pytest.raises(RuntimeError):
        timers.start(loop, K.PING, 1.0)
    assert len(timers) == 0
