"""The shell's timers, in virtual time: each kind at most once per client; the timers of all
clients on a loop share one ``loop.call_at`` handle."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest

from statesock.core_io import TimerKind
from statesock.timers import Timers
from tests.conftest import run_virtual, virtual_time

K = TimerKind


def recording() -> tuple[Timers, list[tuple[TimerKind, float]]]:
    """Timers whose firings are listed as (kind, loop time)."""
    loop = asyncio.get_running_loop()
    fired: list[tuple[TimerKind, float]] = []
    return Timers(lambda kind: fired.append((kind, loop.time()))), fired


@virtual_time
async def test_a_timer_fires_once_at_its_time_and_is_then_gone() -> None:
    timers, fired = recording()
    timers.start(asyncio.get_running_loop(), K.HEALTH_CHECK, 5.0)
    assert K.HEALTH_CHECK in timers and len(timers) == 1
    await asyncio.sleep(100)
    assert fired == [(K.HEALTH_CHECK, 5.0)]
    assert K.HEALTH_CHECK not in timers and len(timers) == 0


@virtual_time
async def test_starting_a_kind_again_replaces_it_the_old_time_never_fires() -> None:
    loop = asyncio.get_running_loop()
    timers, fired = recording()
    timers.start(loop, K.HEALTH_CHECK, 5.0)
    timers.start(loop, K.HEALTH_CHECK, 10.0)
    assert len(timers) == 1
    await asyncio.sleep(100)
    assert fired == [(K.HEALTH_CHECK, 10.0)]
    # ...and earlier than before: the old, later time does not fire either.
    timers.start(loop, K.RECONNECT, 200.0)
    timers.start(loop, K.RECONNECT, 150.0)
    await asyncio.sleep(200)
    assert fired == [(K.HEALTH_CHECK, 10.0), (K.RECONNECT, 150.0)]
    assert len(timers) == 0


@virtual_time
async def test_kinds_are_independent() -> None:
    loop = asyncio.get_running_loop()
    timers, fired = recording()
    timers.start(loop, K.HEALTH_CHECK, 3.0)
    timers.start(loop, K.IDLE_DEADLINE, 4.0)
    timers.start(loop, K.CLOSE_DEADLINE, 2.0)
    assert sorted(kind.value for kind in timers) == [
        "close_deadline",
        "health_check",
        "idle_deadline",
    ]
    timers.cancel(K.HEALTH_CHECK)
    await asyncio.sleep(10)
    assert fired == [(K.CLOSE_DEADLINE, 2.0), (K.IDLE_DEADLINE, 4.0)]


@virtual_time
async def test_cancel_stops_a_kind_and_cancelling_an_idle_kind_does_nothing() -> None:
    loop = asyncio.get_running_loop()
    timers, fired = recording()
    timers.cancel(K.HEALTH_CHECK)  # nothing armed: no error
    timers.start(loop, K.HEALTH_CHECK, 5.0)
    timers.cancel(K.HEALTH_CHECK)
    assert K.HEALTH_CHECK not in timers and len(timers) == 0
    timers.cancel(K.HEALTH_CHECK)
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
    timers.start(loop, K.HEALTH_CHECK, 5.0)
    await asyncio.sleep(100)
    assert fired == [
        (K.HEALTH_CHECK, 5.0, False),
        (K.HEALTH_CHECK, 10.0, False),
        (K.HEALTH_CHECK, 15.0, False),
    ]
    assert len(timers) == 0


@virtual_time
async def test_iterating_is_a_snapshot_so_cancelling_while_iterating_is_safe() -> None:
    loop = asyncio.get_running_loop()
    timers, fired = recording()
    timers.start(loop, K.HEALTH_CHECK, 1.0)
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
        timers.start(loop, K.HEALTH_CHECK, 1.0)
    assert len(timers) == 0


# -- the timers of every client on a loop share one schedule --------------------------------


def scheduled(loop: asyncio.AbstractEventLoop) -> list[asyncio.TimerHandle]:
    """The loop's live timer handles (asyncio's own heap)."""
    return [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]


@virtual_time
async def test_many_clients_timers_take_one_loop_handle_for_the_earliest() -> None:
    """Rule: however many clients and timers, the loop holds one statesock handle, due at the
    earliest live timer; each timer still fires at its own time."""
    loop = asyncio.get_running_loop()
    fired: list[tuple[int, TimerKind, float]] = []

    def client(n: int) -> Timers:
        return Timers(lambda kind: fired.append((n, kind, loop.time())))

    clients = [client(n) for n in range(3)]
    for n, timers in enumerate(clients):
        timers.start(loop, K.HEALTH_CHECK, 10.0 - n)
        timers.start(loop, K.IDLE_DEADLINE, 20.0 + n)
    [handle] = scheduled(loop)
    assert handle.when() == 8.0
    clients[2].cancel(K.HEALTH_CHECK)  # the earliest goes: the handle stays, nothing fires at 8
    await asyncio.sleep(30)
    assert fired == [
        (1, K.HEALTH_CHECK, 9.0),
        (0, K.HEALTH_CHECK, 10.0),
        (0, K.IDLE_DEADLINE, 20.0),
        (1, K.IDLE_DEADLINE, 21.0),
        (2, K.IDLE_DEADLINE, 22.0),
    ]


@virtual_time
async def test_timers_due_at_the_same_moment_fire_in_the_order_they_were_started() -> None:
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    first, second = (
        Timers(lambda k: fired.append("first")),
        Timers(lambda k: fired.append("second")),
    )
    second.start(loop, K.HEALTH_CHECK, 5.0)
    first.start(loop, K.HEALTH_CHECK, 5.0)
    await asyncio.sleep(10)
    assert fired == ["second", "first"]


@virtual_time
async def test_with_no_timer_live_nothing_of_statesock_is_scheduled_on_the_loop() -> None:
    """Rule: once every timer is cancelled or has fired, the loop's handle is gone too: a
    closed client leaves nothing scheduled behind."""
    loop = asyncio.get_running_loop()
    timers, fired = recording()
    other, _ = recording()
    timers.start(loop, K.HEALTH_CHECK, 5.0)
    other.start(loop, K.RECONNECT, 50.0)
    timers.cancel(K.HEALTH_CHECK)
    assert [h.when() for h in scheduled(loop)] == [5.0]  # the other client's timer is live
    other.cancel_all()
    assert scheduled(loop) == []
    timers.start(loop, K.HEALTH_CHECK, 7.0)
    await asyncio.sleep(10)
    assert fired == [(K.HEALTH_CHECK, 7.0)] and scheduled(loop) == []
    # A timer that fired is no longer live: cancelling the only other one clears the loop.
    timers.start(loop, K.HEALTH_CHECK, 20.0)
    other.start(loop, K.RECONNECT, 30.0)
    await asyncio.sleep(15)
    other.cancel(K.RECONNECT)
    assert scheduled(loop) == []


@virtual_time
async def test_a_cancelled_timer_does_not_keep_its_client_alive_until_its_time() -> None:
    loop = asyncio.get_running_loop()

    class Client:
        def on_timer(self, kind: TimerKind) -> None:
            pass

    keep, client = Timers(lambda kind: None), Client()
    keep.start(loop, K.RECONNECT, 500.0)  # the schedule stays busy with another client
    gone = weakref.ref(client)
    timers = Timers(client.on_timer)
    timers.start(loop, K.HEALTH_CHECK, 100.0)
    timers.cancel_all()
    del client, timers
    gc.collect()
    assert gone() is None
    keep.cancel_all()


@pytest.mark.parametrize("error", [RuntimeError, asyncio.CancelledError])
def test_a_timer_that_raises_is_reported_and_the_others_due_with_it_still_fire(
    error: type[BaseException],
) -> None:
    """Any exception but SystemExit and KeyboardInterrupt (a CancelledError a listener let
    out, say) stays with its own client, as asyncio keeps it to its own handle."""
    run_virtual(_raising_timer(error))


async def _raising_timer(error: type[BaseException]) -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda loop, context: reported.append(context))
    fired: list[str] = []

    def broken(kind: TimerKind) -> None:
        raise error("bug")

    Timers(broken).start(loop, K.HEALTH_CHECK, 5.0)
    Timers(lambda kind: fired.append("after")).start(loop, K.HEALTH_CHECK, 5.0)
    await asyncio.sleep(10)
    assert fired == ["after"]
    [context] = reported
    assert context["message"] == "statesock timer health_check failed"
    assert isinstance(context["exception"], error)


def test_a_keyboard_interrupt_in_a_timer_leaves_the_loop_and_the_rest_fire_when_it_runs_again() -> (
    None
):
    loop = asyncio.new_event_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda loop, context: reported.append(context))
    try:
        fired: list[str] = []

        def interrupt(kind: TimerKind) -> None:
            fired.append("interrupt")
            raise KeyboardInterrupt

        at = loop.time() + 0.01
        Timers(lambda kind: fired.append("before")).start(loop, K.HEALTH_CHECK, at)
        Timers(interrupt).start(loop, K.HEALTH_CHECK, at)
        Timers(lambda kind: fired.append("after")).start(loop, K.HEALTH_CHECK, at)
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(asyncio.sleep(0.1))
        assert fired == ["before", "interrupt"]
        loop.run_until_complete(asyncio.sleep(0.05))
        assert fired == ["before", "interrupt", "after"]  # each once
        assert reported == []
    finally:
        loop.close()


def test_a_keyboard_interrupt_in_the_last_timer_due_leaves_the_loop_as_it_is() -> None:
    loop = asyncio.new_event_loop()
    try:

        def interrupt(kind: TimerKind) -> None:
            raise KeyboardInterrupt

        Timers(interrupt).start(loop, K.HEALTH_CHECK, loop.time() + 0.01)
        with pytest.raises(KeyboardInterrupt) as raised:
            loop.run_until_complete(asyncio.sleep(0.1))
        assert raised.value.__context__ is None  # nothing else went wrong on the way out
    finally:
        loop.close()


@virtual_time
async def test_a_callback_may_cancel_a_timer_due_in_the_same_moment_which_then_never_fires() -> (
    None
):
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    victim = Timers(lambda kind: fired.append("victim"))

    def cancel_the_other(kind: TimerKind) -> None:
        fired.append("canceller")
        victim.cancel(K.HEALTH_CHECK)

    Timers(cancel_the_other).start(loop, K.HEALTH_CHECK, 5.0)
    victim.start(loop, K.HEALTH_CHECK, 5.0)
    Timers(lambda kind: fired.append("after")).start(loop, K.HEALTH_CHECK, 5.0)
    await asyncio.sleep(10)
    assert fired == ["canceller", "after"] and len(victim) == 0


@virtual_time
async def test_a_timer_started_for_a_moment_already_past_fires_on_the_next_iteration() -> None:
    """Rule: like ``call_at`` in the past, a timer a callback starts for now or earlier fires,
    but after what the loop already has ready (no callback can starve the loop)."""
    loop = asyncio.get_running_loop()
    order: list[str] = []

    def fire(kind: TimerKind) -> None:
        order.append(f"timer {loop.time():g}")
        if order.count("ready") < 2:
            loop.call_soon(order.append, "ready")
            timers.start(loop, K.HEALTH_CHECK, loop.time() - 1.0)

    timers = Timers(fire)
    timers.start(loop, K.HEALTH_CHECK, 5.0)
    await asyncio.sleep(10)
    assert order == ["timer 5", "ready", "timer 5", "ready", "timer 5"]


def test_a_client_whose_loop_changed_starts_on_the_new_one_and_cancels_on_the_old() -> None:
    fired: list[TimerKind] = []
    timers = Timers(fired.append)

    async def start_far() -> None:
        timers.start(asyncio.get_running_loop(), K.RECONNECT, 10**6)

    async def start_soon() -> None:
        loop = asyncio.get_running_loop()
        timers.start(loop, K.RECONNECT, loop.time())  # replaces the one on the old loop
        timers.start(loop, K.HEALTH_CHECK, loop.time())
        await asyncio.sleep(0.01)

    asyncio.run(start_far())
    asyncio.run(start_soon())
    assert sorted(fired) == [K.HEALTH_CHECK, K.RECONNECT] and len(timers) == 0


@virtual_time
async def test_one_wake_up_fires_every_timer_due_at_that_moment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rule: the loop handle runs once for all the timers due at its time (exactly at it, in
    virtual time), never again for the same moment; a schedule that woke up without firing
    what was due would spin the loop (here it stops after 50 wake-ups, and the test fails)."""
    from statesock import timers as timers_module

    loop = asyncio.get_running_loop()
    wake_ups = 0
    run = timers_module._Schedule._run

    def counted(schedule: Any) -> None:
        nonlocal wake_ups
        wake_ups += 1
        if wake_ups > 50:
            raise RuntimeError("the schedule spins")
        run(schedule)

    monkeypatch.setattr(timers_module._Schedule, "_run", counted)
    fired: list[float] = []
    for _ in range(3):
        Timers(lambda kind: fired.append(loop.time())).start(loop, K.HEALTH_CHECK, 5.0)
    await asyncio.sleep(10)
    assert fired == [5.0, 5.0, 5.0] and wake_ups == 1


@virtual_time
async def test_after_a_timer_fires_the_others_still_live_keep_the_schedule_running() -> None:
    loop = asyncio.get_running_loop()
    timers, fired = recording()
    timers.start(loop, K.HEALTH_CHECK, 5.0)
    timers.start(loop, K.IDLE_DEADLINE, 20.0)
    timers.start(loop, K.RECONNECT, 30.0)
    await asyncio.sleep(10)
    timers.cancel(K.IDLE_DEADLINE)  # one of the two still live after HEALTH_CHECK fired
    await asyncio.sleep(30)
    assert fired == [(K.HEALTH_CHECK, 5.0), (K.RECONNECT, 30.0)]
