"""Subscription: one consumer's bounded, ordered queue of events, read with ``async for``.

This module owns :class:`Subscription` and its :class:`Overflow` policy. Delivery guarantee:
every item offered to a subscription is either delivered to its consumer, in order, or
counted exactly once, as ``dropped`` (only under a ``DROP_*`` policy the subscriber chose) or
as ``discarded`` (only after the subscription was closed or ended). With the default
``BLOCK`` policy nothing is lost: a full subscription says no, and its producer
(:class:`~statesock.subscriptions.Fanout`) waits for room. Import both from
:mod:`statesock.subscriptions`, their documented home.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

__all__ = ["Overflow", "Subscription"]

T = TypeVar("T")


class Overflow(enum.Enum):
    """What a subscription does with a new item while it is full."""

    BLOCK = "block"
    """The default, lossless: the producer waits for room (the client stops reading)."""
    DROP_OLDEST = "drop-oldest"
    """Make room by dropping the oldest queued item (counted, reported through on_drop)."""
    DROP_NEWEST = "drop-newest"
    """Drop the new item (counted, reported through on_drop)."""


def _wake(waiters: list[asyncio.Future[None]]) -> None:
    """Resolve every waiter. All are woken, not one: a woken waiter whose task is cancelled
    before it runs must not swallow the wake-up another waiter needed."""
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
    waiters.clear()


async def _wait(waiters: list[asyncio.Future[None]]) -> None:
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiters.append(waiter)
    try:
        await waiter
    finally:
        # On cancellation the future is still listed: take it out, or it would stay there
        # (and be resolved for nobody) until the next wake-up, which may never come.
        if waiter in waiters:
            waiters.remove(waiter)


class Subscription(AsyncIterator[T], Generic[T]):
    """A bounded, single-producer queue read with ``async for``; an async context manager.

    The producer calls :meth:`offer` (never blocks) and, when it returns False (a full
    ``BLOCK`` subscription), ``await wait_for_room()`` and offers again. :meth:`end` says no
    more items will come: ``async for`` stops once the queue is drained. The consumer leaves
    with :meth:`aclose` (or ``async with``), which unsubscribes and discards what is queued.

    Every item offered and taken is counted once, as :attr:`delivered`, :attr:`dropped`
    (``DROP_*`` policies only), :attr:`discarded` (offered after the end, or still queued at
    ``aclose()``), or is still :attr:`pending`.
    """

    __slots__ = (
        "_cause",
        "_clock",
        "_closed",
        "_discarded",
        "_dropped",
        "_ended",
        "_error",
        "_getters",
        "_items",
        "_maxsize",
        "_on_close",
        "_on_drop",
        "_overflow",
        "_putters",
        "_times",
        "delivered",
        "name",
    )

    def __init__(
        self,
        maxsize: int,
        overflow: Overflow = Overflow.BLOCK,
        *,
        on_drop: Callable[[Subscription[Any]], None] | None = None,
        on_close: Callable[[Subscription[Any]], None] | None = None,
        clock: Callable[[], float] | None = None,
        name: str = "",
    ) -> None:
        """``clock``: when given, each queued item's arrival time is kept, so that
        :attr:`oldest_since` can say how long the oldest one has waited."""
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, not {maxsize!r}")
        if not isinstance(overflow, Overflow):
            raise TypeError(f"overflow must be an Overflow, not {overflow!r}")
        self._items: deque[T] = deque()
        self._maxsize = maxsize
        self._overflow = overflow
        self._on_drop = on_drop
        self._on_close = on_close
        self._getters: list[asyncio.Future[None]] = []  # consumers waiting for an item
        self._putters: list[asyncio.Future[None]] = []  # producers waiting for room
        self._ended = False
        self._closed = False
        self._cause: object = None
        self._error: BaseException | None = None
        self._clock = clock
        # Arrival times of the queued items, kept only with a clock (else always empty).
        self._times: deque[float] = deque()
        self.name = name
        """What the subscription is, for messages and logs (``events(AppEvent)``)."""
        self._dropped = 0
        self._discarded = 0
        self.delivered = 0
        """Items handed to the consumer."""

    # -- producer side ---------------------------------------------------------------------

    def offer(self, item: T) -> bool:
        """Hand ``item`` over without blocking.

        True: taken (queued; or, when full under a ``DROP_*`` policy, dropped as that policy
        says, counted; or, after the end, discarded, counted). False only when a ``BLOCK``
        subscription is full: ``await wait_for_room()``, then offer the same item again.
        """
        if self._ended:
            self._discarded += 1
            return True
        items = self._items
        clock = self._clock
        if len(items) < self._maxsize:
            items.append(item)
            if clock is not None:
                self._times.append(clock())
            if self._getters:
                _wake(self._getters)
            return True
        overflow = self._overflow
        if overflow is Overflow.BLOCK:
            return False
        if overflow is Overflow.DROP_OLDEST:
            items.popleft()
            items.append(item)
            if clock is not None:
                self._times.popleft()
                self._times.append(clock())
        self._dropped += 1
        if self._on_drop is not None:
            self._on_drop(self)
        return True

    async def wait_for_room(self) -> None:
        """Return once there is room, or the subscription has ended or been closed.

        Cancelling the wait leaves nothing behind.
        """
        while not self._ended and len(self._items) >= self._maxsize:
            await _wait(self._putters)

    def end(self, cause: object = None) -> None:
        """No more items will come: ``async for`` stops after what is queued.

        ``cause`` (say, the final disconnection source) is kept as :attr:`cause`; the first
        end's cause wins. Later offers are discarded (counted).
        """
        if not self._ended:
            self._ended = True
            self._cause = cause
        _wake(self._getters)
        _wake(self._putters)

    def put_last(self, item: T, since: float | None = None) -> None:
        """Queue ``item`` even if full, just before :meth:`end` (the producer's last item,
        which it was waiting to hand over, since ``since``, when it decided to end)."""
        if self._ended:
            self._discarded += 1
            return
        self._items.append(item)
        clock = self._clock
        if clock is not None:
            self._times.append(since if since is not None else clock())
        if self._getters:
            _wake(self._getters)

    def cut_off(self, error: BaseException) -> None:
        """End it for good because its consumer stalled: ``async for`` yields what is queued,
        then raises ``error``."""
        if not self._ended:
            self._error = error
        self.end(error)

    def discard_one(self) -> None:
        """Count one item that was meant for this subscription and never reached it (the
        producer gave up waiting for room, say because the client is closing)."""
        self._discarded += 1

    # -- consumer side ---------------------------------------------------------------------

    async def aclose(self) -> None:
        """Unsubscribe: end the subscription and discard what is still queued (counted)."""
        self._close()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._discarded += len(self._items)
        self._items.clear()
        self._times.clear()
        self.end()
        if self._on_close is not None:
            self._on_close(self)

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        items = self._items
        while not items:
            if self._ended:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            # The item is taken only after the wait, so cancelling here loses nothing.
            await _wait(self._getters)
        item = items.popleft()
        if self._clock is not None:
            self._times.popleft()
        self.delivered += 1
        if self._putters:
            _wake(self._putters)
        return item

    async def __aenter__(self) -> Subscription[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- reading ---------------------------------------------------------------------------

    @property
    def dropped(self) -> int:
        """Items dropped by the ``DROP_*`` policy while full (always 0 under ``BLOCK``)."""
        return self._dropped

    @property
    def discarded(self) -> int:
        """Items offered after the end, or still queued when the consumer closed."""
        return self._discarded

    @property
    def pending(self) -> int:
        """Items queued and not yet handed to the consumer."""
        return len(self._items)

    @property
    def ended(self) -> bool:
        """True once no more items will be queued (``end()`` or ``aclose()``)."""
        return self._ended

    @property
    def closed(self) -> bool:
        """True once the consumer closed it (``aclose()`` or leaving ``async with``)."""
        return self._closed

    @property
    def cause(self) -> object:
        """Why it ended (what the producer passed to ``end()``), or None."""
        return self._cause

    @property
    def oldest_since(self) -> float | None:
        """When the oldest queued item arrived (the clock's time), or None when nothing is
        queued or no clock was given."""
        times = self._times
        return times[0] if times else None

    @property
    def overflow(self) -> Overflow:
        return self._overflow

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "ended" if self._ended else "open"
        return (
            f"<Subscription {state} {len(self._items)}/{self._maxsize} "
            f"{self._overflow.value} delivered={self.delivered} dropped={self._dropped} "
            f"discarded={self._discarded}>"
        )
