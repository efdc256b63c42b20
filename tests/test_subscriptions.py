"""Subscription and Fanout: overflow policies, ending, closing, cancellation, type matching,
callbacks and backpressure, on a real event loop in virtual time (looptime)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
import typing
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, assert_type

import pytest

from statesock.exceptions import SubscriberStalled
from statesock.subscriptions import Fanout, Overflow, Subscription
from tests.conftest import run_virtual

P = ParamSpec("P")
R = TypeVar("R")
# Every async test here is bounded: a wait nothing will ever end (a reader no item wakes, a
# producer no room frees) fails the test at once, since virtual time jumps to the bound.
BOUND = 600.0


def virtual_time(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, R]:
    """tests.conftest.virtual_time, with the whole test bounded by :data:`BOUND`."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return run_virtual(asyncio.wait_for(fn(*args, **kwargs), BOUND))

    return wrapper


class A:
    pass


class B:
    pass


class SubA(A):
    pass


def make_fanout(**kwargs: Any) -> tuple[Fanout, list[tuple[Exception, str]]]:
    errors: list[tuple[Exception, str]] = []
    fanout = Fanout(on_callback_error=lambda exc, name: errors.append((exc, name)), **kwargs)
    return fanout, errors


async def settle() -> None:
    """Let every task that is ready run (a few loop iterations, no virtual time passes)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def feed(fanout: Fanout, events: typing.Iterable[object]) -> None:
    """What the client's receive loop does: dispatch, and wait when a subscriber is full."""
    for event in events:
        waiting = fanout.dispatch(event)
        if waiting is not None:
            await waiting


async def collect(sub: Subscription[Any]) -> list[Any]:
    return [item async for item in sub]


# -- Subscription ------------------------------------------------------------------------------


@virtual_time
async def test_items_come_out_in_order_and_are_counted_as_delivered() -> None:
    sub: Subscription[int] = Subscription(10)
    for i in range(5):
        assert sub.offer(i)
    assert (sub.pending, len(sub)) == (5, 5)
    sub.end()
    assert await collect(sub) == [0, 1, 2, 3, 4]
    assert (sub.delivered, sub.pending, sub.dropped, sub.discarded) == (5, 0, 0, 0)


@virtual_time
async def test_a_full_block_subscription_refuses_until_the_consumer_makes_room() -> None:
    sub: Subscription[int] = Subscription(2)
    assert sub.overflow is Overflow.BLOCK
    assert sub.offer(1) and sub.offer(2)
    assert not sub.offer(3)
    assert sub.pending == 2 and sub.dropped == 0

    waiter = asyncio.ensure_future(sub.wait_for_room())
    await settle()
    assert not waiter.done()
    assert await sub.__anext__() == 1
    await settle()
    assert waiter.done()
    assert sub.offer(3)
    sub.end()
    assert await collect(sub) == [2, 3]


@virtual_time
async def test_wait_for_room_returns_at_once_with_room_or_after_the_end() -> None:
    sub: Subscription[int] = Subscription(1)
    await sub.wait_for_room()  # empty: room
    sub.offer(1)
    sub.end()
    await sub.wait_for_room()  # full but ended: nothing will be taken, nothing to wait for
    assert sub.offer(2)  # ended: taken and discarded
    assert sub.discarded == 1


@virtual_time
async def test_drop_oldest_keeps_the_newest_and_reports_each_drop() -> None:
    reported: list[int] = []
    sub: Subscription[int] = Subscription(
        3, Overflow.DROP_OLDEST, on_drop=lambda s: reported.append(s.dropped)
    )
    assert all(sub.offer(i) for i in range(10))
    assert sub.dropped == 7
    assert reported == [1, 2, 3, 4, 5, 6, 7]
    sub.end()
    assert await collect(sub) == [7, 8, 9]


@virtual_time
async def test_drop_newest_keeps_the_oldest() -> None:
    sub: Subscription[int] = Subscription(3, Overflow.DROP_NEWEST)
    assert all(sub.offer(i) for i in range(10))
    sub.end()
    assert await collect(sub) == [0, 1, 2]
    assert (sub.dropped, sub.delivered) == (7, 3)


@virtual_time
async def test_end_drains_what_is_queued_then_stops_with_its_cause() -> None:
    sub: Subscription[str] = Subscription(5)
    consumer = asyncio.ensure_future(collect(sub))
    sub.offer("a")
    await settle()
    sub.offer("b")
    sub.end("server went away")
    sub.end("a later cause")
    assert await consumer == ["a", "b"]
    assert sub.ended and not sub.closed
    assert sub.cause == "server went away"
    assert sub.offer("c")
    assert sub.discarded == 1
    with pytest.raises(StopAsyncIteration):
        await sub.__anext__()


@virtual_time
async def test_aclose_discards_what_is_queued_and_unsubscribes_once() -> None:
    closed: list[Subscription[Any]] = []
    sub: Subscription[int] = Subscription(5, on_close=closed.append)
    for i in range(3):
        sub.offer(i)
    assert await sub.__anext__() == 0
    await sub.aclose()
    await sub.aclose()
    assert closed == [sub]
    assert sub.closed and sub.ended
    assert (sub.delivered, sub.discarded, sub.pending) == (1, 2, 0)
    assert await collect(sub) == []


@virtual_time
async def test_aclose_releases_a_waiting_consumer_and_a_waiting_producer() -> None:
    sub: Subscription[int] = Subscription(1)
    reader: Subscription[int] = Subscription(1)
    consumer = asyncio.ensure_future(collect(reader))
    sub.offer(1)
    producer = asyncio.ensure_future(sub.wait_for_room())
    await settle()
    assert not consumer.done() and not producer.done()
    await reader.aclose()
    await sub.aclose()
    await settle()
    assert await consumer == []
    assert producer.done() and producer.exception() is None


@virtual_time
async def test_break_inside_async_with_unsubscribes() -> None:
    closed: list[Subscription[Any]] = []
    sub: Subscription[int] = Subscription(5, on_close=closed.append)
    for i in range(4):
        sub.offer(i)
    async with sub as events:
        assert events is sub
        async for item in events:
            if item == 1:
                break
    assert closed == [sub]
    assert (sub.delivered, sub.discarded) == (2, 2)


@virtual_time
async def test_cancelling_a_waiting_consumer_loses_no_item() -> None:
    sub: Subscription[int] = Subscription(5)
    for _ in range(20):
        waiting = asyncio.ensure_future(sub.__anext__())
        await settle()
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
    assert sub._getters == []
    sub.offer(1)
    assert await sub.__anext__() == 1


@virtual_time
async def test_a_consumer_cancelled_after_its_wake_up_leaves_the_item_queued() -> None:
    sub: Subscription[int] = Subscription(5)
    first = asyncio.ensure_future(sub.__anext__())
    second = asyncio.ensure_future(sub.__anext__())
    await settle()
    sub.offer(7)  # wakes both waiters; the first is cancelled before it can run
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    assert await second == 7
    assert sub.delivered == 1 and sub.pending == 0


@virtual_time
async def test_cancelled_waits_for_room_leave_no_future_behind() -> None:
    sub: Subscription[int] = Subscription(1)
    sub.offer(0)
    for _ in range(50):
        waiting = asyncio.ensure_future(sub.wait_for_room())
        await settle()
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
    assert sub._putters == []


def test_a_subscription_needs_room_for_one_and_a_policy() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        Subscription(0)
    with pytest.raises(TypeError, match="Overflow"):
        Subscription(1, "drop-oldest")  # type: ignore[arg-type]


def test_repr_shows_the_counters() -> None:
    sub: Subscription[int] = Subscription(2, Overflow.DROP_NEWEST)
    for i in range(3):
        sub.offer(i)
    assert repr(sub) == ("<Subscription open 2/2 drop-newest delivered=0 dropped=1 discarded=0>")


# -- Fanout: matching and order ------------------------------------------------------------------


@virtual_time
async def test_event_types_match_classes_tuples_unions_and_none() -> None:
    fanout, _ = make_fanout()
    only_a = fanout.subscribe(A)
    a_or_b = fanout.subscribe(A | B)
    a_or_b_tuple = fanout.subscribe((A, B))
    a_or_b_union = fanout.subscribe(typing.Union[A, B])  # noqa: UP007 - the old spelling works
    everything = fanout.subscribe()
    events: list[object] = [A(), B(), SubA(), 1]
    assert all(fanout.dispatch(e) is None for e in events)
    fanout.end_all()
    a, b, sub_a, _one = events
    assert await collect(only_a) == [a, sub_a]
    assert await collect(a_or_b) == [a, b, sub_a]
    assert await collect(a_or_b_tuple) == [a, b, sub_a]
    assert await collect(a_or_b_union) == [a, b, sub_a]
    assert await collect(everything) == events
    assert fanout.unclaimed == 0


def test_an_event_type_that_isinstance_cannot_use_is_refused_at_once() -> None:
    fanout, _ = make_fanout()
    bad: Any
    for bad in ("A", list[int], 3):
        with pytest.raises(TypeError, match="event_type"):
            fanout.subscribe(bad)
        with pytest.raises(TypeError, match="event_type"):
            fanout.on(bad, print)
    assert fanout.subscribers == 0


def test_subscribe_overloads_type_the_stream() -> None:
    """Checked by mypy (``assert_type``); at run time it only exercises the calls."""
    fanout, _ = make_fanout()
    assert_type(fanout.subscribe(), Subscription[Any])
    assert_type(fanout.subscribe(A), Subscription[A])
    assert_type(fanout.subscribe((A, B)), Subscription[A | B])
    assert_type(fanout.subscribe(A | B), Subscription[A | B])
    assert_type(fanout.subscribe(A, maxsize=3, overflow=Overflow.DROP_OLDEST), Subscription[A])

    def handle_a(event: A) -> None:
        pass

    async def handle_a_or_b(event: A | B) -> None:
        pass

    fanout.on(A, handle_a)
    fanout.on(SubA, handle_a)
    fanout.on(A | B, handle_a_or_b)
    fanout.on((A, B), handle_a_or_b)
    # A handler for A cannot take every B (mypy must refuse, or the ignore is unused).
    fanout.on(B, handle_a)  # type: ignore[arg-type]
    assert fanout.subscribers == 10


@virtual_time
async def test_events_that_match_nobody_are_counted_as_unclaimed() -> None:
    fanout, _ = make_fanout()
    sub = fanout.subscribe(A)
    assert fanout.dispatch(B()) is None
    assert fanout.dispatch(1) is None
    assert fanout.dispatch(A()) is None
    assert (fanout.unclaimed, sub.pending) == (2, 1)


@virtual_time
async def test_subscribers_and_callbacks_get_each_event_in_registration_order() -> None:
    fanout, _ = make_fanout()
    seen: list[tuple[str, int, int]] = []
    first = fanout.subscribe()
    fanout.on(None, lambda e: seen.append(("one", first.pending, e)))
    second = fanout.subscribe()
    fanout.on(None, lambda e: seen.append(("two", second.pending, e)))
    fanout.dispatch(5)
    # Each callback runs after the subscriptions registered before it took the event and
    # before those registered after it.
    assert seen == [("one", 1, 5), ("two", 1, 5)]
    third = fanout.subscribe()
    fanout.dispatch(6)
    assert seen[2:] == [("one", 2, 6), ("two", 2, 6)]
    assert third.pending == 1


@virtual_time
async def test_a_callback_may_subscribe_and_unsubscribe_while_an_event_is_dispatched() -> None:
    fanout, _ = make_fanout()
    late: list[Subscription[Any]] = []
    undo: list[typing.Callable[[], None]] = []

    def register(event: object) -> None:
        late.append(fanout.subscribe())
        undo[0]()

    undo.append(fanout.on(None, register))
    assert fanout.dispatch(1) is None
    assert fanout.dispatch(2) is None
    assert len(late) == 1
    assert late[0].pending == 1  # from the next event on, not the one that created it


# -- Fanout: backpressure ----------------------------------------------------------------------


@virtual_time
async def test_a_full_block_subscriber_holds_dispatch_and_the_others_get_the_event_at_once() -> (
    None
):
    fanout, _ = make_fanout(queue_size=2)
    slow = fanout.subscribe()
    fast = fanout.subscribe(maxsize=100)
    assert fanout.dispatch(0) is None
    assert fanout.dispatch(1) is None
    assert not fanout.blocked
    waiting = fanout.dispatch(2)
    assert waiting is not None
    assert fanout.blocked
    assert fast.pending == 3 and slow.pending == 2
    task = asyncio.ensure_future(waiting)
    await settle()
    assert not task.done() and fanout.blocked
    assert await slow.__anext__() == 0
    await task
    assert not fanout.blocked
    assert slow.pending == 2 and slow.dropped == 0


@virtual_time
async def test_a_consumer_pausing_during_a_burst_loses_nothing_by_default() -> None:
    """The issue's case: a 1.5 s pause in a 10,000-message burst, default settings."""
    fanout, _ = make_fanout()
    sub = fanout.subscribe()
    received: list[int] = []
    blocked_seen: list[bool] = []

    async def consume() -> None:
        async for item in sub:
            received.append(item)
            if len(received) == 100:
                await asyncio.sleep(1.5)
                blocked_seen.append(fanout.blocked)

    consumer = asyncio.ensure_future(consume())
    loop = asyncio.get_running_loop()
    start = loop.time()
    await feed(fanout, range(10_000))
    fanout.end_all()
    await consumer
    assert received == list(range(10_000))
    assert (sub.dropped, sub.discarded, fanout.dropped) == (0, 0, 0)
    assert blocked_seen == [True]  # the producer was held for the pause, not dropping
    assert loop.time() - start == pytest.approx(1.5)


@virtual_time
async def test_breaking_out_of_async_with_frees_the_producer() -> None:
    fanout, _ = make_fanout(queue_size=2)
    sub = fanout.subscribe()
    other = fanout.subscribe(maxsize=1000)

    async def take_three() -> list[int]:
        got: list[int] = []
        async with sub:
            async for item in sub:
                got.append(item)
                await asyncio.sleep(0.1)
                if len(got) == 3:
                    break
        return got

    consumer = asyncio.ensure_future(take_three())
    await feed(fanout, range(500))
    assert await consumer == [0, 1, 2]
    assert sub.closed and fanout.subscribers == 1
    # 0-2 delivered; 3 and 4 were queued and 5 was waiting for room at the break: those are
    # counted as discarded; from 6 on it is no longer subscribed and nothing is offered.
    assert (sub.delivered, sub.discarded, sub.pending) == (3, 3, 0)
    assert other.pending == 500


@virtual_time
async def test_a_cancelled_dispatch_counts_the_event_as_discarded_for_the_blocked() -> None:
    fanout, _ = make_fanout(queue_size=1)
    first = fanout.subscribe()
    second = fanout.subscribe()
    fanout.dispatch(0)
    waiting = fanout.dispatch(1)
    assert waiting is not None
    task = asyncio.ensure_future(waiting)
    await settle()
    assert await first.__anext__() == 0
    await settle()  # the first now has the event; the dispatch still waits for the second
    assert fanout.blocked
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert not fanout.blocked
    assert (first.pending, first.discarded) == (1, 0)
    assert (second.pending, second.discarded) == (1, 1)


@virtual_time
async def test_drop_policies_are_counted_on_the_fanout_and_reported() -> None:
    reported: list[Subscription[Any]] = []
    fanout, errors = make_fanout(queue_size=2, on_drop=reported.append)
    oldest = fanout.subscribe(overflow=Overflow.DROP_OLDEST)
    newest = fanout.subscribe(maxsize=1, overflow=Overflow.DROP_NEWEST)
    assert all(fanout.dispatch(i) is None for i in range(4))
    assert (oldest.dropped, newest.dropped, fanout.dropped) == (2, 3, 5)
    assert reported == [newest, oldest, newest, oldest, newest]
    assert not errors


@virtual_time
async def test_an_on_drop_that_raises_is_reported_and_delivery_goes_on() -> None:
    def broken(sub: Subscription[Any]) -> None:
        raise RuntimeError("log sink gone")

    fanout, errors = make_fanout(queue_size=1, on_drop=broken)
    sub = fanout.subscribe(overflow=Overflow.DROP_OLDEST)
    assert fanout.dispatch(1) is None
    assert fanout.dispatch(2) is None
    assert [name for _, name in errors] == ["on_drop"]
    assert fanout.callback_errors == 1
    assert await sub.__anext__() == 2


@virtual_time
async def test_dispatch_allocates_nothing_while_nobody_is_full() -> None:
    fanout, _ = make_fanout(queue_size=64)
    subs = [fanout.subscribe(), fanout.subscribe(A), fanout.subscribe()]
    fanout.on(None, lambda e: None)
    event = object()

    def burst() -> None:
        for _ in range(50):
            fanout.dispatch(event)
        for sub in subs:
            sub._items.clear()

    burst()
    before = sys.getallocatedblocks()
    for _ in range(200):
        burst()
    # 10,000 dispatches: one allocation each would show up as thousands of blocks.
    assert sys.getallocatedblocks() - before < 50


# -- Fanout: ending ----------------------------------------------------------------------------


@virtual_time
async def test_end_all_ends_streams_after_what_is_queued_and_later_ones_at_once() -> None:
    fanout, _ = make_fanout()
    sub = fanout.subscribe()
    calls: list[int] = []
    fanout.on(int, calls.append)
    fanout.dispatch(1)
    fanout.end_all("gave up")
    assert await collect(sub) == [1]
    assert sub.cause == "gave up" and fanout.cause == "gave up"
    late = fanout.subscribe(int)
    assert late.ended and late.cause == "gave up"
    assert await collect(late) == []
    # Callbacks outlive the streams: the client may be connected again by the user.
    fanout.dispatch(2)
    assert calls == [1, 2]
    fanout.reopen()
    live = fanout.subscribe()
    fanout.dispatch(3)
    assert not live.ended and live.pending == 1


@virtual_time
async def test_end_all_releases_a_blocked_dispatch_and_keeps_its_event() -> None:
    fanout, _ = make_fanout(queue_size=1)
    sub = fanout.subscribe()
    closed_early = fanout.subscribe()
    fanout.dispatch(0)
    waiting = fanout.dispatch(1)
    assert waiting is not None
    task = asyncio.ensure_future(waiting)
    await settle()
    await closed_early.aclose()
    await settle()
    fanout.end_all("closed")
    await task
    assert not fanout.blocked
    # The event the dispatch held goes in over the limit: the stream ends after it.
    assert await collect(sub) == [0, 1]
    assert (sub.dropped, sub.discarded) == (0, 0)
    assert (closed_early.delivered, closed_early.discarded) == (0, 2)


# -- Fanout: callbacks -------------------------------------------------------------------------


@virtual_time
async def test_a_sync_callback_that_raises_is_reported_and_delivery_goes_on() -> None:
    fanout, errors = make_fanout()
    calls: list[int] = []

    def broken(event: int) -> None:
        raise ValueError(f"bad {event}")

    fanout.on(int, broken)
    fanout.on(int, calls.append)
    sub = fanout.subscribe(int)
    for i in range(3):
        assert fanout.dispatch(i) is None
    assert calls == [0, 1, 2] and sub.pending == 3
    assert [(str(exc), name) for exc, name in errors] == [
        ("bad 0", broken.__qualname__),
        ("bad 1", broken.__qualname__),
        ("bad 2", broken.__qualname__),
    ]
    assert fanout.callback_errors == 3


@virtual_time
async def test_a_reporter_that_raises_does_not_stop_delivery() -> None:
    def report(exc: Exception, name: str) -> None:
        raise RuntimeError("reporter broken too")

    fanout = Fanout(on_callback_error=report)
    calls: list[int] = []

    def broken(event: int) -> None:
        raise ValueError(event)

    fanout.on(int, broken)
    fanout.on(int, calls.append)
    fanout.dispatch(1)
    fanout.dispatch(2)
    assert calls == [1, 2] and fanout.callback_errors == 2


@virtual_time
async def test_undo_stops_a_sync_callback() -> None:
    fanout, _ = make_fanout()
    calls: list[int] = []
    undo = fanout.on(int, calls.append)
    fanout.dispatch(1)
    undo()
    undo()
    fanout.dispatch(2)
    assert calls == [1] and fanout.unclaimed == 1


@virtual_time
async def test_async_callbacks_run_in_order_one_at_a_time() -> None:
    fanout, errors = make_fanout()
    calls: list[int] = []
    running = 0
    most = 0

    async def slow(event: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01 * (event % 3))
        calls.append(event)
        running -= 1

    fanout.on(int, slow)
    await feed(fanout, range(50))
    await fanout.aclose(10)
    assert calls == list(range(50))
    assert most == 1 and not errors


@virtual_time
async def test_a_slow_async_callback_applies_backpressure_and_loses_nothing() -> None:
    fanout, _ = make_fanout(queue_size=4)
    calls: list[int] = []

    async def slow(event: int) -> None:
        await asyncio.sleep(1)
        calls.append(event)

    fanout.on(None, slow)
    loop = asyncio.get_running_loop()
    start = loop.time()
    held = 0
    for i in range(20):
        waiting = fanout.dispatch(i)
        if waiting is not None:
            held += 1
            await waiting
    # The producer cannot run more than the queue (4) plus the call in progress ahead.
    assert held > 0
    assert loop.time() - start >= 20 - 4 - 1
    await fanout.aclose(100)
    assert calls == list(range(20))
    assert fanout.dropped == 0


@virtual_time
async def test_an_async_callback_that_raises_is_reported_and_the_next_events_still_run() -> None:
    fanout, errors = make_fanout()
    calls: list[int] = []

    async def flaky(event: int) -> None:
        if event % 2:
            raise ValueError(str(event))
        calls.append(event)

    async def cancels_itself(event: int) -> None:
        # Something the callback awaited was cancelled; the callback's task was not.
        raise asyncio.CancelledError

    fanout.on(int, flaky)
    fanout.on(int, cancels_itself)
    await feed(fanout, range(4))
    await fanout.aclose(10)
    assert calls == [0, 2]
    names = [name for _, name in errors]
    assert names.count(flaky.__qualname__) == 2
    assert names.count(cancels_itself.__qualname__) == 4
    assert fanout.callback_errors == 6


def test_async_callbacks_registered_before_the_loop_start_on_the_first_dispatch() -> None:
    fanout, _ = make_fanout()
    calls: list[int] = []

    async def record(event: int) -> None:
        calls.append(event)

    fanout.on(int, record)
    assert fanout.dispatch(1) is None  # no loop: queued, nothing started
    assert calls == []

    async def main() -> None:
        assert fanout.dispatch(2) is None
        await settle()
        assert calls == [1, 2]
        await fanout.aclose(1)

    run_virtual(main())


def test_a_subscription_made_before_the_loop_runs_gets_the_first_event() -> None:
    fanout, _ = make_fanout(queue_size=1)
    sub = fanout.subscribe(int)  # like client.events() before connect(): no loop yet

    async def main() -> list[int]:
        consumer = asyncio.ensure_future(collect(sub))
        await feed(fanout, range(5))
        fanout.end_all()
        return await consumer

    assert run_virtual(main()) == [0, 1, 2, 3, 4]


def test_start_starts_callbacks_registered_before_the_loop() -> None:
    fanout, _ = make_fanout()
    calls: list[int] = []

    async def record(event: int) -> None:
        calls.append(event)

    fanout.on(int, record)
    fanout.dispatch(1)
    with pytest.raises(RuntimeError):
        fanout.start()  # no running loop: refused, and nothing is lost

    async def main() -> None:
        fanout.start()
        await settle()
        assert calls == [1]
        await fanout.aclose(1)

    run_virtual(main())


@virtual_time
async def test_undo_of_an_async_callback_discards_what_it_had_not_run() -> None:
    fanout, _ = make_fanout()
    calls: list[int] = []

    async def slow(event: int) -> None:
        await asyncio.sleep(1)
        calls.append(event)

    undo = fanout.on(int, slow)
    await feed(fanout, range(5))
    await asyncio.sleep(0.5)
    undo()
    await asyncio.sleep(10)
    assert calls == [0]  # the call in progress finished; the four queued ones never ran
    assert fanout.dispatch(9) is None and fanout.unclaimed == 1
    await fanout.aclose(1)


@virtual_time
async def test_a_sync_callback_that_returns_a_coroutine_still_runs() -> None:
    fanout, errors = make_fanout()
    calls: list[int] = []

    async def handle(event: int) -> None:
        if event == 2:
            raise ValueError("two")
        calls.append(event)

    def not_async(event: int) -> Coroutine[Any, Any, None]:
        return handle(event)

    fanout.on(int, not_async)
    await feed(fanout, range(3))
    await fanout.aclose(1)
    assert sorted(calls) == [0, 1]
    assert [str(exc) for exc, _ in errors] == ["two"]


@virtual_time
async def test_aclose_lets_callbacks_drain_then_cancels_the_stuck_ones() -> None:
    fanout, _ = make_fanout()
    done: list[int] = []
    cancelled: list[int] = []

    async def quick(event: int) -> None:
        await asyncio.sleep(0.1)
        done.append(event)

    async def stuck(event: int) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(event)
            raise

    fanout.on(int, quick)
    fanout.on(int, stuck)
    await feed(fanout, range(3))
    loop = asyncio.get_running_loop()
    start = loop.time()
    await fanout.aclose(timeout=2)
    assert loop.time() - start == pytest.approx(2)
    assert done == [0, 1, 2]
    assert cancelled == [0]
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("statesock-")]
    # Closed for good: nothing new is accepted, nothing is started.
    assert fanout.subscribe().ended
    assert fanout.on(int, quick)() is None
    assert fanout.dispatch(1) is None and fanout.unclaimed == 1


@virtual_time
async def test_aclose_releases_a_dispatch_held_by_an_async_callback() -> None:
    fanout, _ = make_fanout(queue_size=1)

    async def stuck(event: int) -> None:
        await asyncio.sleep(3600)

    fanout.on(int, stuck)
    fanout.dispatch(0)
    await settle()  # the callback takes 0 and hangs
    fanout.dispatch(1)  # queued
    waiting = fanout.dispatch(2)
    assert waiting is not None
    task = asyncio.ensure_future(waiting)
    await settle()
    await fanout.aclose(timeout=1)
    await task
    assert not fanout.blocked


# -- a subscription's last item, its cut-off, and its counts -------------------------------------


@virtual_time
async def test_the_last_item_goes_in_even_when_full_and_keeps_when_it_arrived() -> None:
    now = [10.0]
    sub: Subscription[int] = Subscription(1, clock=lambda: now[0])
    assert sub.offer(1)
    sub.put_last(2, since=4.0)  # it was waiting for room since 4.0
    assert len(sub) == 2 and sub.oldest_since == 10.0
    assert [await sub.__anext__()] == [1]
    assert sub.oldest_since == 4.0
    now[0] = 11.0
    sub.put_last(3)
    assert await sub.__anext__() == 2
    assert sub.oldest_since == 11.0  # no time given: it arrived now
    assert await sub.__anext__() == 3
    assert sub.oldest_since is None
    sub.end()
    sub.put_last(4)  # after the end: counted, not queued
    sub.put_last(5)
    assert (len(sub), sub.discarded) == (0, 2)


@virtual_time
async def test_put_last_wakes_a_waiting_reader() -> None:
    sub: Subscription[str] = Subscription(1)
    reader = asyncio.create_task(sub.__anext__())
    await asyncio.sleep(0)
    sub.put_last("last")
    assert await asyncio.wait_for(reader, 1) == "last"


@virtual_time
async def test_a_cut_off_subscription_yields_what_it_holds_then_raises_its_error() -> None:
    sub: Subscription[int] = Subscription(5)
    sub.offer(1)
    error = RuntimeError("stalled")
    sub.cut_off(error)
    sub.cut_off(ValueError("later"))  # the first error stands
    assert sub.ended and sub.cause is error
    assert await sub.__anext__() == 1
    with pytest.raises(RuntimeError) as raised:
        await sub.__anext__()
    assert raised.value is error


def test_discards_are_counted_one_by_one_and_at_close_with_what_was_queued() -> None:
    closed: list[object] = []
    sub: Subscription[int] = Subscription(5, on_close=closed.append)
    sub.discard_one()
    sub.discard_one()
    sub.offer(1)
    sub.offer(2)
    assert sub.discarded == 2
    run_virtual(sub.aclose())
    assert sub.discarded == 4 and sub.pending == 0
    run_virtual(sub.aclose())  # twice: nothing more
    assert sub.discarded == 4 and closed == [sub]


def test_a_subscription_says_what_it_is() -> None:
    sub: Subscription[int] = Subscription(3, Overflow.DROP_OLDEST)
    sub.offer(1)
    assert repr(sub) == "<Subscription open 1/3 drop-oldest delivered=0 dropped=0 discarded=0>"
    sub.end()
    assert repr(sub).startswith("<Subscription ended 1/3 ")
    run_virtual(sub.aclose())
    assert repr(sub) == "<Subscription closed 0/3 drop-oldest delivered=0 dropped=0 discarded=1>"


# -- callbacks: how each kind runs, what its failures are reported as -----------------------------


class Raiser:
    """A callable object (no __qualname__ of its own: named after its class)."""

    def __call__(self, event: object) -> None:
        raise ValueError("bug")


def test_a_raising_callback_is_reported_with_its_name() -> None:
    fanout, errors = make_fanout()

    def named(event: object) -> None:
        raise KeyError("k")

    fanout.on(A, named)
    fanout.on(A, Raiser())
    fanout.on(A, lambda event: 5)  # a plain result is no awaitable: nothing to run
    assert fanout.dispatch(A()) is None
    assert [(type(exc), name) for exc, name in errors] == [
        (KeyError, named.__qualname__),
        (ValueError, "Raiser"),
    ]
    assert fanout.callback_errors == 2


def test_a_plain_callback_returning_a_coroutine_runs_it_in_a_named_task() -> None:
    async def scenario() -> tuple[list[str], str]:
        fanout, errors = make_fanout()
        names: list[str] = []

        async def later(event: object) -> None:
            task = asyncio.current_task()
            assert task is not None
            names.append(task.get_name())
            raise ValueError("later")

        def plain(event: object) -> Any:
            return later(event)

        fanout.on(A, plain)
        fanout.dispatch(A())
        await settle()
        assert [(type(exc), name) for exc, name in errors] == [(ValueError, plain.__qualname__)]
        await fanout.aclose(timeout=1)
        return names, plain.__qualname__

    names, name = run_virtual(scenario())
    assert names == [f"statesock-callback-{name}"]


def test_a_coroutine_returned_outside_a_loop_is_closed_and_reported() -> None:
    import gc
    import warnings

    fanout, errors = make_fanout()

    async def later(event: object) -> None:
        return None

    def plain(event: object) -> Any:
        return later(event)

    fanout.on(A, plain)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fanout.dispatch(A())
        for exc, _name in errors:
            exc.__traceback__ = None  # its frames would keep the coroutine alive
        gc.collect()
    assert [w for w in caught if "never awaited" in str(w.message)] == []  # it was closed
    [(exc, name)] = errors
    assert isinstance(exc, RuntimeError) and name == plain.__qualname__


def test_an_object_with_an_async_call_gets_its_own_ordered_queue() -> None:
    async def scenario() -> list[tuple[int, float]]:
        fanout, errors = make_fanout()
        loop = asyncio.get_running_loop()
        calls: list[tuple[int, float]] = []

        class Slow:
            async def __call__(self, event: int) -> None:
                calls.append((event, loop.time()))
                await asyncio.sleep(1)

        fanout.on(int, Slow())
        for n in range(3):
            fanout.dispatch(n)
        await asyncio.sleep(5)
        await fanout.aclose(timeout=1)
        assert errors == []
        return calls

    assert run_virtual(scenario()) == [(0, 0.0), (1, 1.0), (2, 2.0)]  # one at a time, in order


def test_an_async_callback_failure_is_reported_and_a_stray_cancellation_too() -> None:
    async def scenario() -> list[tuple[type, str, object]]:
        fanout, errors = make_fanout()

        async def broken(event: object) -> None:
            if isinstance(event, A):
                raise ValueError("bug")
            never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            never.cancel()
            await never  # a cancellation that is not this task's

        fanout.on(None, broken)
        fanout.dispatch(A())
        fanout.dispatch(B())
        await settle()
        await fanout.aclose(timeout=1)
        return [(type(exc), name, exc.__cause__) for exc, name in errors]

    (first, second) = run_virtual(scenario())
    assert first[:2] == (ValueError, first[1]) and first[1].endswith("broken")
    assert second[0] is RuntimeError and second[1] == first[1]
    assert isinstance(second[2], asyncio.CancelledError)


def test_a_stray_cancellation_is_reported_in_words() -> None:
    async def scenario() -> list[str]:
        fanout, errors = make_fanout()

        async def broken(event: object) -> None:
            never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            never.cancel()
            await never

        fanout.on(A, broken)
        fanout.dispatch(A())
        await settle()
        await fanout.aclose(timeout=1)
        return [f"{exc}|{name}" for exc, name in errors]

    [said] = run_virtual(scenario())
    text, name = said.split("|")
    assert text == f"{name} raised CancelledError without being cancelled"


def test_cancelling_a_running_async_callback_at_close_is_no_failure() -> None:
    async def scenario() -> list[tuple[Exception, str]]:
        fanout, errors = make_fanout()

        async def forever(event: object) -> None:
            await asyncio.Event().wait()

        fanout.on(A, forever)
        fanout.dispatch(A())
        await settle()
        await asyncio.wait_for(fanout.aclose(timeout=0.5), 5)
        return errors

    assert run_virtual(scenario()) == []


def test_an_on_drop_that_raises_is_reported_as_on_drop() -> None:
    def on_drop(sub: object) -> None:
        raise ValueError("drop hook")

    fanout, errors = make_fanout(on_drop=on_drop)
    sub = fanout.subscribe(A, maxsize=1, overflow=Overflow.DROP_NEWEST)
    fanout.dispatch(A())
    fanout.dispatch(A())
    assert fanout.dropped == 1 and sub.dropped == 1
    assert [(type(exc), name) for exc, name in errors] == [(ValueError, "on_drop")]


def test_on_refuses_what_cannot_be_called() -> None:
    fanout, _ = make_fanout()
    with pytest.raises(TypeError) as refused:
        fanout.on(A, 5)  # type: ignore[call-overload]
    assert str(refused.value) == "callback must be callable, not 5"


# -- stalls, ends and what is still waiting ----------------------------------------------------


def test_a_stalled_subscriber_keeps_the_held_event_with_its_arrival_and_is_counted() -> None:
    async def scenario() -> None:
        now = [0.0]
        stalls: list[object] = []

        def on_stall(error: object) -> None:
            stalls.append(error)
            raise RuntimeError("stall hook")

        fanout, errors = make_fanout(stall_timeout=3.0, on_stall=on_stall, clock=lambda: now[0])
        first = fanout.subscribe(A, maxsize=1)
        second = fanout.subscribe(B, maxsize=1)
        fanout.dispatch(A())
        now[0] = 1.0
        pending_a = fanout.dispatch(A())
        assert pending_a is not None
        assert fanout.oldest_undelivered() == 0.0
        await asyncio.wait_for(pending_a, 10)
        assert fanout.stalled == 1 and first.ended
        assert first.pending == 2 and first.oldest_since == 0.0
        [error] = stalls
        assert isinstance(error, SubscriberStalled)
        assert (error.subscription, error.stalled_for) == ("events(A)", 3.0)
        assert [(type(exc), name) for exc, name in errors] == [(RuntimeError, "on_stall")]
        fanout.dispatch(B())
        now[0] = 2.0
        pending_b = fanout.dispatch(B())
        assert pending_b is not None
        await asyncio.wait_for(pending_b, 10)
        assert fanout.stalled == 2 and second.ended
        await fanout.aclose(timeout=1)

    run_virtual(scenario())


def test_a_stalled_async_callback_is_named_and_its_task_ends_quietly() -> None:
    async def scenario() -> None:
        errors_seen: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: errors_seen.append(context))
        stalls: list[SubscriberStalled] = []
        fanout, _ = make_fanout(stall_timeout=2.0, on_stall=stalls.append, clock=loop.time)
        fanout.queue_size = 1

        async def stuck(event: object) -> None:
            await asyncio.Event().wait()

        fanout.on(A, stuck)
        fanout.dispatch(A())
        await settle()
        fanout.dispatch(A())  # queued: the callback holds the first one
        assert fanout.oldest_undelivered() == 0.0
        pending = fanout.dispatch(A())
        assert pending is not None
        await asyncio.wait_for(pending, 10)
        [error] = stalls
        assert error.subscription == stuck.__qualname__
        await fanout.aclose(timeout=1)
        assert errors_seen == []

    run_virtual(scenario())


def test_the_oldest_undelivered_event_is_the_earliest_queued_anywhere() -> None:
    now = [5.0]
    fanout, _ = make_fanout(clock=lambda: now[0])
    fanout.on(A, lambda event: None)  # a sync callback queues nothing
    early, late, empty = fanout.subscribe(A), fanout.subscribe(B), fanout.subscribe(SubA)
    assert fanout.oldest_undelivered() is None
    fanout.dispatch(A())
    now[0] = 7.0
    fanout.dispatch(B())
    assert (early.oldest_since, late.oldest_since, empty.oldest_since) == (5.0, 7.0, None)
    assert fanout.oldest_undelivered() == 5.0


def test_ending_the_streams_gives_them_the_cause_and_reopening_forgets_it() -> None:
    fanout, _ = make_fanout()
    before = fanout.subscribe(A)
    fanout.end_streams("user")
    assert before.ended and before.cause == "user"
    assert not fanout.ended and fanout.cause is None
    fanout.end_all("done")
    assert fanout.ended and fanout.cause == "done"
    fanout.reopen()
    assert not fanout.ended and fanout.cause is None
    assert not fanout.subscribe(A).ended


def test_the_event_held_for_a_stalled_subscriber_keeps_its_arrival_time() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        fanout, _ = make_fanout(stall_timeout=3.0, clock=loop.time)
        sub = fanout.subscribe(A, maxsize=1)
        fanout.dispatch(A())  # at 0
        await asyncio.sleep(1)
        pending = fanout.dispatch(A())  # at 1: held, the subscriber is full
        assert pending is not None
        await asyncio.wait_for(pending, 10)  # cut off at 4
        await sub.__anext__()
        assert sub.oldest_since == 1.0  # when it arrived, not when it was cut off
        await fanout.aclose(timeout=1)

    run_virtual(scenario())


def test_an_async_callback_that_wakes_after_its_cut_off_ends_quietly() -> None:
    import gc

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        problems: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: problems.append(context))
        fanout, _ = make_fanout(stall_timeout=2.0)
        fanout.queue_size = 1
        release = asyncio.Event()
        seen: list[object] = []

        async def slow(event: object) -> None:
            seen.append(event)
            await release.wait()

        fanout.on(A, slow)
        fanout.dispatch(A())
        await settle()
        fanout.dispatch(A())
        pending = fanout.dispatch(A())
        assert pending is not None
        await asyncio.wait_for(pending, 10)
        assert fanout.stalled == 1
        release.set()
        await settle()
        assert len(seen) == 3  # what it held, then the end: no task left, nothing raised
        assert not fanout._tasks
        gc.collect()
        assert problems == []
        await fanout.aclose(timeout=1)

    run_virtual(scenario())


def test_a_fresh_subscription_is_open_nameless_and_without_cause() -> None:
    sub: Subscription[int] = Subscription(2)
    assert (sub.ended, sub.closed, sub.cause, sub.name) == (False, False, None, "")
    assert (sub.pending, sub.delivered, sub.dropped, sub.discarded) == (0, 0, 0, 0)
    assert (sub.maxsize, sub.overflow) == (2, Overflow.BLOCK)


@virtual_time
async def test_offered_items_come_out_in_order_and_a_full_queue_makes_room_when_read() -> None:
    now = [1.0]
    sub: Subscription[int] = Subscription(2, clock=lambda: now[0])
    assert sub.offer(1) and sub.offer(2)
    assert not sub.offer(3)  # BLOCK: full
    waiting = asyncio.create_task(sub.wait_for_room())
    await asyncio.sleep(0)
    assert not waiting.done()
    assert await asyncio.wait_for(sub.__anext__(), 1) == 1
    await asyncio.wait_for(waiting, 1)
    now[0] = 2.0
    assert sub.offer(3)
    assert [await asyncio.wait_for(sub.__anext__(), 1) for _ in range(2)] == [2, 3]
    sub.end()
    await asyncio.wait_for(sub.wait_for_room(), 1)  # ended: nothing to wait for
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(sub.__anext__(), 1)


def test_drop_oldest_keeps_the_arrival_time_of_what_it_keeps() -> None:
    now = [1.0]
    sub: Subscription[int] = Subscription(2, Overflow.DROP_OLDEST, clock=lambda: now[0])
    sub.offer(1)
    now[0] = 2.0
    sub.offer(2)
    now[0] = 3.0
    sub.offer(3)  # 1 goes
    assert sub.dropped == 1 and sub.oldest_since == 2.0


def test_a_subscription_is_named_after_what_it_matches() -> None:
    fanout, _ = make_fanout()
    assert fanout.subscribe(A).name == "events(A)"
    assert fanout.subscribe((A, B)).name == "events(A, B)"
    assert fanout.subscribe(None).name == "events()"
    with pytest.raises(TypeError) as refused:
        fanout.subscribe(5)  # type: ignore[call-overload]
    assert str(refused.value) == (
        "event_type must be a class, a tuple of classes, an `A | B` union or None, not 5"
    )


# -- a fan-out's defaults, its tasks' names, and what aclose() leaves ---------------------------


def test_a_fan_out_holds_1024_events_per_stream_unless_told_otherwise() -> None:
    fanout, _ = make_fanout()
    assert fanout.queue_size == 1024
    assert fanout.subscribe().maxsize == 1024
    assert make_fanout(queue_size=3)[0].subscribe().maxsize == 3
    with pytest.raises(ValueError) as refused:
        make_fanout(queue_size=0)
    assert str(refused.value) == "queue_size must be at least 1, not 0"


def test_a_new_fan_out_is_open_and_has_nothing() -> None:
    fanout, _ = make_fanout()
    assert fanout.ended is False and fanout.cause is None
    assert (fanout.blocked, fanout.subscribers, fanout.unclaimed) == (False, 0, 0)
    assert fanout.oldest_undelivered() is None


def test_an_async_callback_runs_in_a_task_named_after_it() -> None:
    async def early(event: object) -> None:
        await asyncio.Event().wait()

    async def late(event: object) -> None:
        await asyncio.Event().wait()

    fanout, _ = make_fanout()
    fanout.on(A, early)  # before the loop runs: start() makes its task

    async def main() -> set[str]:
        fanout.start()
        fanout.on(A, late)  # in the loop: its task is made at once
        await settle()
        names = {t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("statesock")}
        await fanout.aclose(timeout=1)
        return names

    assert run_virtual(main()) == {
        f"statesock-callback-{early.__qualname__}",
        f"statesock-callback-{late.__qualname__}",
    }


@virtual_time
async def test_without_a_clock_every_event_arrives_at_time_zero() -> None:
    fanout, _ = make_fanout(queue_size=1)
    sub = fanout.subscribe()
    fanout.dispatch(A())
    held = fanout.dispatch(A())  # full: the dispatch holds it
    assert held is not None
    assert sub.oldest_since is None  # a queued event has no time without a clock
    assert fanout.oldest_undelivered() == 0.0  # the held one arrived at 0
    fanout.end_all()
    await asyncio.wait_for(held, 1)


@virtual_time
async def test_a_closed_fan_out_takes_no_callback_and_cannot_be_reopened() -> None:
    fanout, _ = make_fanout()
    await fanout.aclose(timeout=1)
    calls: list[object] = []
    undo = fanout.on(A, calls.append)
    fanout.reopen()  # the client connected again: a closed fan-out stays closed
    assert fanout.ended and fanout.subscribers == 0
    assert fanout.dispatch(A()) is None
    assert calls == [] and fanout.unclaimed == 1
    assert fanout.subscribe(A).ended
    undo()  # does nothing, and says nothing


# -- DROP_OLDEST: the item that comes in is timed when it arrives ---------------------------------


def test_drop_oldest_times_the_item_it_takes_in_when_it_arrives() -> None:
    """Rule: when a full DROP_OLDEST subscription drops its oldest item for a new one, the new
    one's arrival time is the clock's time then: once it is the oldest queued, oldest_since
    says so."""
    now = [1.0]
    sub: Subscription[int] = Subscription(1, Overflow.DROP_OLDEST, clock=lambda: now[0])
    sub.offer(1)
    now[0] = 3.0
    sub.offer(2)  # 1 goes; 2 arrived at 3.0
    assert (sub.dropped, sub.pending, sub.oldest_since) == (1, 1, 3.0)


# -- what a fan-out keeps: rarely changed members in tuples, replaced on change ----------------


def test_without_takes_out_the_first_equal_member_only() -> None:
    from statesock.subscriptions import without

    assert without((1, 2, 3, 2), 2) == (1, 3, 2)
    assert without((1, 2, 3), 1) == (2, 3)
    assert without((1, 2, 3), 3) == (1, 2)
    kept = (1, 2)
    assert without(kept, 9) is kept


def test_async_callbacks_registered_before_the_loop_all_start_and_all_end_at_close() -> None:
    """Two async callbacks registered before any loop runs both get the first event once
    one does, and aclose() ends both queues at once (not after its timeout)."""
    fanout, errors = make_fanout()
    got: list[str] = []

    async def first(event: object) -> None:
        got.append("first")

    async def second(event: object) -> None:
        got.append("second")

    fanout.on(None, first)
    fanout.on(None, second)

    async def scenario() -> float:
        await feed(fanout, [A()])
        await settle()
        started = asyncio.get_running_loop().time()
        await fanout.aclose(timeout=30)
        return asyncio.get_running_loop().time() - started

    assert run_virtual(scenario()) == 0.0
    assert sorted(got) == ["first", "second"] and errors == []


@virtual_time
async def test_an_async_callback_taken_off_leaves_nothing_behind() -> None:
    fanout, _ = make_fanout()

    async def callback(event: object) -> None:
        pass

    undo = fanout.on(None, callback)
    keep = fanout.on(A, callback)
    undo()
    assert len(fanout._callback_queues) == 1
    keep()
    assert not fanout._callback_queues
    await fanout.aclose(timeout=1)


@virtual_time
async def test_a_callback_registered_after_close_is_refused_quietly() -> None:
    """A fan-out that is closed takes a late on() without raising, and never calls it."""
    fanout, _ = make_fanout()
    await fanout.aclose(timeout=1)
    called: list[object] = []

    async def late(event: object) -> None:
        called.append(event)

    fanout.on(None, late)
    await feed(fanout, [A()])
    await settle()
    assert called == []


@virtual_time
async def test_a_cut_off_stream_still_raises_its_stall_when_the_client_is_done_later() -> None:
    """A stalled subscriber that was cut off is no longer one of the fan-out's streams (it
    holds no reference to it), and the client ending afterwards does not turn its
    SubscriberStalled into a plain end."""
    fanout, _ = make_fanout(stall_timeout=3.0)
    stuck = fanout.subscribe(A, maxsize=1)
    fanout.dispatch(A())
    pending = fanout.dispatch(A())
    assert pending is not None
    await pending  # cut off after 3 s
    assert stuck not in fanout._streams  # let go: the fan-out holds no reference to it
    fanout.end_all("done")
    with pytest.raises(SubscriberStalled):
        async for _ in stuck:
            pass


def test_async_callbacks_never_started_are_dropped_at_close_and_start_nothing_after() -> None:
    """An async callback registered before the loop and closed before any event never runs:
    aclose() lets it go, and a start() after the close starts no task."""
    fanout, errors = make_fanout()
    called: list[object] = []

    async def callback(event: object) -> None:
        called.append(event)

    fanout.on(None, callback)

    async def scenario() -> None:
        await fanout.aclose(timeout=1)
        fanout.start()
        await settle()
        assert not fanout._tasks

    run_virtual(scenario())
    assert called == [] and errors == []
