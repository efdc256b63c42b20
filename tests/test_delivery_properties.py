"""Hypothesis state-machine test of delivery through a Fanout, in virtual time.

A producer task numbers messages 0, 1, 2, ... and dispatches them the way the client's
receive loop does (awaiting dispatch while a subscriber is full). Rules interleave bursts,
the passing of time, new subscriptions with every overflow policy, queue size and consumer
speed, consumer pauses, consumers cancelled mid-``__anext__`` and restarted, consumers that
break out (``aclose``) after a few items, closing from outside, async callbacks and their
undo, a blocked dispatch cancelled, and ``end_all()``. Each example has its own looptime loop.

The invariant, for every subscription (and every async callback's queue): each message offered
to it (dispatched while it was subscribed and matching) is counted exactly once, as delivered
(the consumer got it), dropped (only under a DROP_* policy) or discarded (only after its
aclose/end), never both and never neither; a BLOCK subscription never drops, so what it
delivered is exactly the offered messages up to the point it was closed; and the delivered
messages keep the order in which they were offered.

It is checked message by message against a model queue per subscription (which message each
policy drops, which ones aclose() discards, which one the consumer must get next), and in
totals against the subscription's counters.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import looptime
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from statesock.subscriptions import Fanout, Overflow, Subscription

R = TypeVar("R")
DELAYS = st.sampled_from([0.0, 0.0, 0.001, 0.01, 0.2])


class Odd(int):
    """Odd messages are of this type, so a typed subscriber matches only some messages."""


@dataclass(eq=False)
class Consumer:
    """One subscription (or one async callback), its consumer and what it has seen."""

    sub: Subscription[Any]
    matches: type
    delay: float
    offered: list[int] = field(default_factory=list)
    received: list[int] = field(default_factory=list)
    # The model: what should be queued, and what should have been dropped or discarded.
    queue: deque[int] = field(default_factory=deque)
    dropped: list[int] = field(default_factory=list)
    discarded: list[int] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)  # discarded by a cancelled dispatch
    pause: float = 0.0
    stop_after: int | None = None
    task: asyncio.Task[None] | None = None
    closed_by_consumer: bool = False
    callback: bool = False
    undo: Any = None

    def offer(self, message: int) -> None:
        self.offered.append(message)
        if len(self.queue) >= self.sub.maxsize:
            if self.sub.overflow is Overflow.DROP_NEWEST:
                self.dropped.append(message)
                return
            if self.sub.overflow is Overflow.DROP_OLDEST:
                self.dropped.append(self.queue.popleft())
        # BLOCK: the message waits in the dispatch, and will be next in line after the queue.
        self.queue.append(message)

    def take(self, message: int) -> None:
        # Runs in the consumer's task: record a mismatch for the invariant to report.
        expected = self.queue.popleft() if self.queue else None
        if message != expected:
            self.mismatches.append(f"got {message}, expected {expected}")
        self.received.append(message)


class DeliverySpec(RuleBasedStateMachine):
    consumers = Bundle("consumers")

    def run(self, coro: Coroutine[Any, Any, R] | asyncio.Future[R]) -> R:
        return self.loop.run_until_complete(coro)

    def setup(self) -> None:
        """Called by the first initializer (Hypothesis runs them in no fixed order)."""
        if hasattr(self, "loop"):
            return
        self.loop = looptime.new_event_loop(start=0.0, end=10_000_000.0)
        self.errors: list[tuple[Exception, str]] = []
        self.fanout = Fanout(
            queue_size=8, on_callback_error=lambda exc, name: self.errors.append((exc, name))
        )
        self.all: list[Consumer] = []
        self.live: list[Consumer] = []  # the model: who is offered the next message
        self.backlog = 0
        self.next_id = 0
        self.work = asyncio.Event()
        self.stopping = False
        self.producer = self.loop.create_task(self.produce())

    def teardown(self) -> None:
        if not hasattr(self, "loop"):
            return
        try:
            self.finish()
        finally:
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.run_until_complete(asyncio.sleep(0))
            self.loop.close()

    # -- the producer and the consumers ------------------------------------------------------

    async def produce(self) -> None:
        while True:
            await self.work.wait()
            self.work.clear()
            while self.backlog:
                self.backlog -= 1
                message = Odd(self.next_id) if self.next_id % 2 else self.next_id
                self.next_id += 1
                for consumer in self.live:
                    if isinstance(message, consumer.matches):
                        consumer.offer(int(message))
                waiting = self.fanout.dispatch(message)
                if waiting is not None:
                    await waiting
            if self.stopping:
                return

    async def consume(self, consumer: Consumer) -> None:
        sub = consumer.sub
        while True:
            if consumer.pause:
                pause, consumer.pause = consumer.pause, 0.0
                await asyncio.sleep(pause)
            try:
                item = await sub.__anext__()
            except StopAsyncIteration:
                return
            consumer.take(int(item))
            if consumer.stop_after is not None and len(consumer.received) >= consumer.stop_after:
                # What `break` inside `async with` does.
                await sub.aclose()
                self.unsubscribe(consumer, by_consumer=True)
                return
            if consumer.delay:
                await asyncio.sleep(consumer.delay)

    def unsubscribe(self, consumer: Consumer, *, by_consumer: bool = False) -> None:
        """The model's side of aclose(): offered no more, what is queued is discarded."""
        consumer.closed_by_consumer = by_consumer or consumer.closed_by_consumer
        if consumer in self.live:
            self.live.remove(consumer)
        consumer.discarded.extend(consumer.queue)
        consumer.queue.clear()

    def settle(self) -> None:
        self.run(asyncio.sleep(0))
        self.run(asyncio.sleep(0))

    # -- rules -----------------------------------------------------------------------------

    # Every example starts with two subscribers, so most steps have someone to deliver to.
    @initialize(
        target=consumers,
        overflow=st.sampled_from(list(Overflow)),
        maxsize=st.integers(1, 6),
        delay=DELAYS,
        odd_only=st.booleans(),
    )
    def first_subscriber(
        self, overflow: Overflow, maxsize: int, delay: float, odd_only: bool
    ) -> Consumer:
        self.setup()
        return self.new_subscriber(overflow, maxsize, delay, odd_only)

    @initialize(
        target=consumers,
        overflow=st.sampled_from(list(Overflow)),
        maxsize=st.integers(1, 6),
        delay=DELAYS,
    )
    def second_subscriber(self, overflow: Overflow, maxsize: int, delay: float) -> Consumer:
        self.setup()
        return self.new_subscriber(overflow, maxsize, delay, False)

    @rule(
        target=consumers,
        overflow=st.sampled_from(list(Overflow)),
        maxsize=st.integers(1, 6),
        delay=DELAYS,
        odd_only=st.booleans(),
    )
    def subscribe(self, overflow: Overflow, maxsize: int, delay: float, odd_only: bool) -> Consumer:
        return self.new_subscriber(overflow, maxsize, delay, odd_only)

    def new_subscriber(
        self, overflow: Overflow, maxsize: int, delay: float, odd_only: bool
    ) -> Consumer:
        matches: type = Odd if odd_only else int
        sub: Subscription[Any] = self.fanout.subscribe(matches, maxsize=maxsize, overflow=overflow)
        consumer = Consumer(sub, matches, delay)
        if not sub.ended:
            self.live.append(consumer)
        consumer.task = self.loop.create_task(self.consume(consumer))
        self.all.append(consumer)
        return consumer

    @rule(target=consumers, delay=DELAYS)
    def add_async_callback(self, delay: float) -> Consumer:
        consumer: Consumer | None = None

        async def record(message: int) -> None:
            assert consumer is not None
            consumer.take(int(message))
            if delay:
                await asyncio.sleep(delay)

        undo = self.fanout.on(int, record)
        # The callback's queue is the Fanout's own; find it as the newest registration.
        queue = self.fanout._entries[-1][1]
        assert isinstance(queue, Subscription)
        consumer = Consumer(queue, int, delay, callback=True, undo=undo)
        self.live.append(consumer)
        self.all.append(consumer)
        return consumer

    @rule(n=st.integers(1, 200))
    def burst(self, n: int) -> None:
        self.backlog += n
        self.work.set()
        self.settle()

    @rule(seconds=st.sampled_from([0.001, 0.05, 0.5, 1.5, 5.0]))
    def advance(self, seconds: float) -> None:
        self.run(asyncio.sleep(seconds))

    @rule(consumer=consumers, seconds=st.sampled_from([0.1, 1.5, 10.0]))
    def pause(self, consumer: Consumer, seconds: float) -> None:
        consumer.pause = seconds

    @rule(consumer=consumers, more=st.integers(0, 5))
    def break_after(self, consumer: Consumer, more: int) -> None:
        if not consumer.callback:
            consumer.stop_after = len(consumer.received) + more

    @rule(consumer=consumers)
    def close_from_outside(self, consumer: Consumer) -> None:
        if consumer.callback:
            consumer.undo()
            self.unsubscribe(consumer)
        else:
            self.run(self.close(consumer))
        self.settle()

    async def close(self, consumer: Consumer) -> None:
        # In one step of the loop: the producer must not dispatch between the two.
        await consumer.sub.aclose()
        self.unsubscribe(consumer)

    @rule(consumer=consumers)
    def cancel_and_restart_consumer(self, consumer: Consumer) -> None:
        task = consumer.task
        if task is None or task.done():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            self.run(task)
        consumer.task = self.loop.create_task(self.consume(consumer))
        self.settle()

    @rule()
    def cancel_blocked_dispatch(self) -> None:
        """What the client does when it closes while the app is slow: the message the
        dispatch was holding is discarded, counted, by each subscriber still full."""
        if not self.fanout.blocked:
            return
        delivery = self.fanout._deliveries[0]
        message = int(delivery.event)  # type: ignore[call-overload]
        # A subscriber its consumer closed meanwhile may still be listed until the dispatch
        # resumes; the model already discarded its queue (unsubscribe()).
        waiting = [
            consumer
            for consumer in self.all
            if consumer.sub in delivery.waiting and consumer in self.live
        ]
        self.producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            self.run(self.producer)
        for consumer in waiting:
            assert consumer.queue[-1] == message
            consumer.queue.pop()
            consumer.discarded.append(message)
            consumer.cancelled.append(message)
        self.producer = self.loop.create_task(self.produce())
        self.work.set()
        self.settle()
        event("cancelled a blocked dispatch")

    @rule()
    def end_all(self) -> None:
        self.fanout.end_all("done")
        # Ended, not closed: offered nothing more, but what is queued is still delivered.
        self.live = [consumer for consumer in self.live if consumer.callback]
        self.settle()

    @rule()
    def reopen(self) -> None:
        self.fanout.reopen()

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def counted_at_most_once_and_in_order(self) -> None:
        if not hasattr(self, "loop"):
            return
        in_flight = 1 if self.fanout.blocked else 0
        for consumer in self.all:
            assert not consumer.mismatches, consumer.mismatches
            sub = consumer.sub
            counted = sub.delivered + sub.dropped + sub.discarded + sub.pending
            assert len(consumer.offered) - in_flight <= counted <= len(consumer.offered)
            if sub.overflow is Overflow.BLOCK:
                assert sub.dropped == 0
            if not consumer.callback:
                assert sub.delivered == len(consumer.received)
            assert _is_subsequence(consumer.received, consumer.offered)

    # -- the end -----------------------------------------------------------------------------

    def finish(self) -> None:
        """End everything, let the producer and every consumer run dry, then check that
        every offered message was counted exactly once."""
        for consumer in self.all:
            consumer.delay = consumer.pause = 0.0
        self.fanout.end_all("done")
        self.live = [consumer for consumer in self.live if consumer.callback]

        async def drain() -> None:
            async with asyncio.timeout(1_000_000):
                self.stopping = True
                self.work.set()
                await self.producer
                for consumer in self.all:
                    if consumer.task is not None:
                        await consumer.task
                await self.fanout.aclose(timeout=1_000_000)

        self.run(drain())
        assert not self.errors
        for consumer in self.all:
            sub = consumer.sub
            offered, received = consumer.offered, consumer.received
            assert sub.pending == 0
            assert not consumer.mismatches, consumer.mismatches
            # Exactly once: every offered message is delivered, dropped or discarded.
            assert sub.delivered + sub.dropped + sub.discarded == len(offered), consumer
            # ... and the model agrees on which message went where.
            assert sub.dropped == len(consumer.dropped)
            assert sub.discarded == len(consumer.discarded)
            assert not consumer.queue
            assert sorted(received + consumer.dropped + consumer.discarded) == offered
            assert len(received) == sub.delivered
            assert received == sorted(set(received)), "delivered twice or out of order"
            assert _is_subsequence(received, offered)
            # Lossless: a BLOCK subscription gets every message offered, in order, up to its
            # aclose() (all of them if it was only ended), except those a cancelled dispatch
            # was holding for it.
            if sub.overflow is Overflow.BLOCK:
                assert sub.dropped == 0
                expected = [m for m in offered if m not in consumer.cancelled]
                assert received == expected[: len(received)]
                if not sub.closed:
                    assert received == expected
            if not sub.closed:
                assert sub.discarded == len(consumer.cancelled)


def _is_subsequence(items: list[int], of: list[int]) -> bool:
    it = iter(of)
    return all(any(item == other for other in it) for item in items)


DeliverySpec.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestDelivery = DeliverySpec.TestCase
