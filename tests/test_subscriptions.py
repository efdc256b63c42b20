"""Subscription and Fanout: overflow policies, ending, closing, cancellation, type matching,
callbacks and backpressure, on a real event loop in virtual time (looptime)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import typing
from collections.abc import Coroutine
from typing import Any, assert_type

import pytest

from statesock.subscriptions import Fanout, Overflow, Subscription
from tests.conftest import run_virtual, virtual_time


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
