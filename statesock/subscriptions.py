"""Subscriptions and fan-out: how one client hands each decoded event to its consumers.

This module owns :class:`Fanout` (the subscriptions and ``on()`` callbacks of one client, in
registration order, and the backpressure a full subscriber puts on the receive loop), and is
the documented home of :class:`Subscription` and :class:`Overflow` (defined in
:mod:`statesock.streams`: a bounded queue read with ``async for``, with an explicit overflow
policy and counters for every item it did not deliver).

Delivery guarantee: every event handed to a subscription is either delivered to its consumer,
in order, or counted exactly once, as ``dropped`` (only under a ``DROP_*`` policy the
subscriber chose) or as ``discarded`` (only after the subscription was closed or ended), so
with the default ``BLOCK`` policy nothing is lost: a full subscriber makes the client stop
reading until it has room, and TCP slows the server.

It is shell code (it uses asyncio futures and tasks) but knows nothing of sockets: the client
calls :meth:`Fanout.dispatch` for each event and awaits what it returns before reading on.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import types
from collections.abc import Awaitable, Callable, Collection, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from .exceptions import SubscriberStalled
from .streams import Overflow, Subscription

if TYPE_CHECKING:
    from typing_extensions import TypeForm

__all__ = ["EventType", "Fanout", "Overflow", "Subscription"]

T = TypeVar("T")
T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")

EventType = type | types.UnionType | tuple[type, ...] | None
"""What a subscriber matches: a class, a tuple of classes, an ``A | B`` union or None (all)."""


def without(items: tuple[T, ...], item: T) -> tuple[T, ...]:
    """``items`` without its first member equal to ``item`` (``items`` itself when none is):
    the removal of the copy-on-write tuples that hold a client's rarely changed members."""
    try:
        index = items.index(item)
    except ValueError:
        return items
    return items[:index] + items[index + 1 :]


def _type_name(event_type: object) -> str:
    if event_type is None:
        return ""
    if isinstance(event_type, tuple):
        return ", ".join(_type_name(t) for t in event_type)
    return str(getattr(event_type, "__qualname__", None) or event_type)


def _name(callback: object) -> str:
    return str(getattr(callback, "__qualname__", None) or type(callback).__qualname__)


def _is_async(callback: object) -> bool:
    # inspect unwraps functools.partial; an object whose __call__ is async counts too.
    return inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
        getattr(callback, "__call__", None)  # noqa: B004 - the attribute, not callable()
    )


def _check_event_type(event_type: object) -> None:
    if event_type is None:
        return
    try:
        isinstance(None, event_type)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            "event_type must be a class, a tuple of classes, an `A | B` union or None, "
            f"not {event_type!r}"
        ) from None


class _Inline:
    """A sync ``on()`` callback: dispatch calls it inline, in registration order, and hands
    :meth:`returned` what it returned when that is not None."""

    __slots__ = ("fanout", "name")

    def __init__(self, fanout: Fanout, callback: Callable[[Any], object]) -> None:
        self.fanout = fanout
        self.name = _name(callback)

    def returned(self, result: object) -> None:
        if inspect.isawaitable(result):
            # A plain function that returned an awaitable (a lambda around a coroutine
            # function, say): run it, unordered. Register an ``async def`` for in-order,
            # backpressured delivery.
            finish = self._finish(result)
            try:
                self.fanout._spawn(finish, self.name)
            except RuntimeError as exc:  # no running loop to run it on
                finish.close()
                if inspect.iscoroutine(result):
                    result.close()
                self.fanout._callback_failed(exc, self.name)

    async def _finish(self, result: Awaitable[object]) -> None:
        try:
            await result
        except Exception as exc:
            self.fanout._callback_failed(exc, self.name)


class _Delivery:
    """One dispatch that waits for full subscribers: the event and who has not taken it."""

    __slots__ = ("event", "since", "waiting")

    def __init__(self, waiting: list[Subscription[Any]], event: object, since: float) -> None:
        self.waiting = waiting
        self.event = event
        self.since = since  # when the event arrived: it has waited for them since then


# One registration: (what it matches, what takes the event, its sync callback or None). For a
# Subscription dispatch calls ``target.offer(event)``, which CPython specialises better than a
# stored bound method, and which says "full"; for an _Inline, its callback, without a call more.
_Entry = tuple[Any, "Subscription[Any] | _Inline", "Callable[[Any], object] | None"]
# An on() callback registered before the loop ran, with its queue: its task starts later.
_Unstarted = tuple["Subscription[Any]", Callable[[Any], Awaitable[object]]]


class Fanout:
    """The event subscriptions and ``on()`` callbacks of one client, in registration order.

    :meth:`dispatch` offers each event to every match; with the default ``BLOCK`` policy it
    returns an awaitable while a subscriber is full, and the client awaits it before it reads
    the next frame. :meth:`end_all` ends the streams when the client is done (and
    :meth:`reopen` accepts new ones if it is connected again); :meth:`aclose` also stops the
    async callbacks. ``on()`` callbacks live until ``aclose()`` or their undo.
    """

    def __init__(
        self,
        *,
        queue_size: int = 1024,
        on_drop: Callable[[Subscription[Any]], None] | None = None,
        on_callback_error: Callable[[Exception, str], None],
        stall_timeout: float | None = None,
        on_stall: Callable[[SubscriberStalled], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``stall_timeout``: a ``BLOCK`` subscriber (or async callback) that takes nothing for
        that many seconds while a dispatch waits for it is cut off (None: never); ``on_stall``
        hears of each. ``clock``: the time events arrive, for :meth:`oldest_undelivered`."""
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, not {queue_size!r}")
        self.queue_size = queue_size
        self._on_drop = on_drop
        self._on_callback_error = on_callback_error
        self.stall_timeout = stall_timeout
        self._on_stall = on_stall
        self._clock = clock
        # Replaced, never mutated, so dispatch iterates a snapshot without copying it and a
        # callback may subscribe or unsubscribe while an event is being dispatched.
        self._entries: tuple[_Entry, ...] = ()
        # An idle client has no subscriber: what it holds costs as little as it can (an
        # empty dict is a quarter of an empty set, an empty tuple is shared), the task set is
        # made by the first task, and the rarely changed ones are tuples, replaced on change.
        self._streams: dict[Subscription[Any], None] = {}  # a set, in registration order
        self._callback_queues: tuple[Subscription[Any], ...] = ()
        self._unstarted: tuple[_Unstarted, ...] = ()
        self._tasks: set[asyncio.Task[None]] | None = None
        self._deliveries: tuple[_Delivery, ...] = ()  # dispatches waiting for full subscribers
        self._ended = False
        self._closed = False
        self._cause: object = None
        self.unclaimed = 0
        self.uncounted: tuple[type, ...] = ()
        """Event types the client consumes itself (acks, pongs, server errors): nobody has to
        subscribe to them, so one that matched nothing is not counted as unclaimed."""
        """Events that matched no subscription and no callback."""
        self.dropped = 0
        """Items dropped by ``DROP_*`` subscriptions, all together."""
        self.callback_errors = 0
        """Callbacks (sync, async, or ``on_drop``) that raised."""
        self.stalled = 0
        """Subscribers cut off because they took nothing for ``stall_timeout``."""

    # -- registering -----------------------------------------------------------------------

    @overload
    def subscribe(
        self, event_type: None = None, *, maxsize: int | None = ..., overflow: Overflow = ...
    ) -> Subscription[Any]: ...
    @overload
    def subscribe(
        self, event_type: type[T], *, maxsize: int | None = ..., overflow: Overflow = ...
    ) -> Subscription[T]: ...
    @overload
    def subscribe(
        self,
        event_type: tuple[type[T1], type[T2]],
        *,
        maxsize: int | None = ...,
        overflow: Overflow = ...,
    ) -> Subscription[T1 | T2]: ...
    @overload
    def subscribe(
        self,
        event_type: tuple[type[T1], type[T2], type[T3]],
        *,
        maxsize: int | None = ...,
        overflow: Overflow = ...,
    ) -> Subscription[T1 | T2 | T3]: ...
    @overload
    def subscribe(
        self,
        event_type: tuple[type[Any], ...],
        *,
        maxsize: int | None = ...,
        overflow: Overflow = ...,
    ) -> Subscription[Any]: ...
    @overload
    def subscribe(
        self, event_type: TypeForm[T], *, maxsize: int | None = ..., overflow: Overflow = ...
    ) -> Subscription[T]: ...

    def subscribe(
        self,
        event_type: Any = None,
        *,
        maxsize: int | None = None,
        overflow: Overflow = Overflow.BLOCK,
    ) -> Subscription[Any]:
        """A stream of every event matching ``event_type`` from now on.

        ``event_type`` is a class, a tuple of classes, an ``A | B`` union, or None for all.
        ``maxsize`` defaults to the fan-out's ``queue_size``. After :meth:`end_all` the
        subscription comes back already ended, with the end's cause.
        """
        _check_event_type(event_type)
        sub: Subscription[Any] = Subscription(
            self.queue_size if maxsize is None else maxsize,
            overflow,
            on_drop=self._dropped_one,
            on_close=self._unsubscribe,
            clock=self._clock,
            name=f"events({_type_name(event_type)})",
        )
        if self._ended:
            sub.end(self._cause)
            return sub
        self._streams[sub] = None
        self._entries = (*self._entries, (event_type, sub, None))
        return sub

    @overload
    def on(self, event_type: None, callback: Callable[[Any], object]) -> Callable[[], None]: ...
    @overload
    def on(self, event_type: type[T], callback: Callable[[T], object]) -> Callable[[], None]: ...
    @overload
    def on(
        self, event_type: tuple[type[T1], type[T2]], callback: Callable[[T1 | T2], object]
    ) -> Callable[[], None]: ...
    @overload
    def on(
        self, event_type: tuple[type[Any], ...], callback: Callable[[Any], object]
    ) -> Callable[[], None]: ...
    @overload
    def on(
        self, event_type: TypeForm[T], callback: Callable[[T], object]
    ) -> Callable[[], None]: ...

    def on(self, event_type: Any, callback: Callable[[Any], object]) -> Callable[[], None]:
        """Call ``callback`` with each event matching ``event_type``; returns an undo.

        A sync callback runs inline in :meth:`dispatch`, in registration order. An async one
        gets its own ``BLOCK`` queue (so a slow one applies backpressure too, and loses
        nothing) and runs one call at a time, in order, in a task of its own. A callback that
        raises is reported to ``on_callback_error`` and delivery goes on.
        """
        _check_event_type(event_type)
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {callback!r}")
        if self._closed:
            return _nothing
        if not _is_async(callback):
            entry: _Entry = (event_type, _Inline(self, callback), callback)
            self._entries = (*self._entries, entry)

            def undo_inline() -> None:
                self._remove(entry)

            return undo_inline
        queue: Subscription[Any] = Subscription(
            self.queue_size, on_drop=self._dropped_one, clock=self._clock, name=_name(callback)
        )
        entry = (event_type, queue, None)
        self._entries = (*self._entries, entry)
        self._callback_queues += (queue,)
        self._unstarted += ((queue, cast(Callable[[Any], Awaitable[object]], callback)),)
        with contextlib.suppress(RuntimeError):  # no loop yet: the first dispatch starts it
            asyncio.get_running_loop()
            self.start()

        def undo_async() -> None:
            # Events queued for it and not yet run are discarded (counted on the queue); a
            # call already running finishes.
            self._remove(entry)
            self._callback_queues = without(self._callback_queues, queue)
            queue._close()

        return undo_async

    def start(self) -> None:
        """Start the tasks of async callbacks registered before the event loop ran.

        Needs a running loop. :meth:`dispatch` calls it on its own when needed.
        """
        asyncio.get_running_loop()  # raises RuntimeError before anything is taken off the list
        unstarted, self._unstarted = self._unstarted, ()
        for queue, callback in unstarted:
            if not queue.ended:
                self._spawn(self._run_callback(queue, callback), _name(callback))

    # -- delivering ------------------------------------------------------------------------

    def dispatch(self, event: object) -> Awaitable[None] | None:
        """Offer ``event`` to every matching subscription and callback, in registration order.

        Returns None when all took it, else an awaitable that completes once every full
        ``BLOCK`` subscriber has taken it: await it before dispatching the next event (that is
        the backpressure, and what keeps each subscription in order). :attr:`blocked` stays
        True until it completes, so it must be awaited; cancelling it counts the event as
        ``discarded`` on each subscriber still full.
        """
        if self._unstarted:
            # Outside a running loop nothing starts; the queues keep the events meanwhile.
            with contextlib.suppress(RuntimeError):
                self.start()
        blocked: list[Subscription[Any]] | None = None
        claimed = False
        for event_type, target, call in self._entries:
            if event_type is None or isinstance(event, event_type):
                claimed = True
                if call is not None:  # a sync on() callback (target: its _Inline)
                    try:
                        result = call(event)
                    except Exception as exc:
                        self._callback_failed(exc, target.name)
                        continue
                    if result is not None:
                        cast(_Inline, target).returned(result)
                # Only a full BLOCK subscription says no. An entry without a callback is one.
                elif not target.offer(event):  # type: ignore[union-attr]
                    sub = cast("Subscription[Any]", target)
                    if blocked is None:
                        blocked = [sub]
                    else:
                        blocked.append(sub)
        if not claimed:
            if not isinstance(event, self.uncounted):
                self.unclaimed += 1
            return None
        if blocked is None:
            return None
        delivery = _Delivery(blocked, event, self._clock() if self._clock is not None else 0.0)
        self._deliveries += (delivery,)
        return self._deliver(delivery)

    async def _deliver(self, delivery: _Delivery) -> None:
        waiting = delivery.waiting
        try:
            while waiting:
                sub = waiting[0]
                if sub.offer(delivery.event):
                    del waiting[0]
                elif self.stall_timeout is None:
                    await sub.wait_for_room()
                else:
                    # Each item the subscriber takes makes room and ends this wait: only one
                    # that takes nothing for the whole stall_timeout is cut off.
                    try:
                        async with asyncio.timeout(self.stall_timeout):
                            await sub.wait_for_room()
                    except TimeoutError:
                        self._cut_off(sub, delivery)
        finally:
            self._deliveries = without(self._deliveries, delivery)
            # Cancelled (the client is closing): the event never reached these subscribers.
            # Count it, so none of them has a silent gap.
            for sub in waiting:
                sub.discard_one()
            waiting.clear()

    def _cut_off(self, sub: Subscription[Any], delivery: _Delivery) -> None:
        """``sub`` stalled: it keeps what it holds (the held event too, over its limit),
        then raises SubscriberStalled; nothing more is offered to it."""
        assert self.stall_timeout is not None
        error = SubscriberStalled(sub.name or repr(sub), self.stall_timeout)
        delivery.waiting.remove(sub)
        sub.put_last(delivery.event, delivery.since)
        sub.cut_off(error)
        self._streams.pop(sub, None)
        self._entries = tuple(entry for entry in self._entries if entry[1] is not sub)
        self.stalled += 1
        if self._on_stall is not None:
            try:
                self._on_stall(error)
            except Exception as exc:
                self._callback_failed(exc, "on_stall")

    def oldest_undelivered(self) -> float | None:
        """When the oldest event still waiting for a consumer arrived (queued in a
        subscription, or held by a dispatch waiting for room), or None when none waits."""
        times = [d.since for d in self._deliveries]
        for _, target, _ in self._entries:
            since = getattr(target, "oldest_since", None)
            if since is not None:
                times.append(since)
        return min(times) if times else None

    @property
    def blocked(self) -> bool:
        """True while a dispatch is waiting for a full subscriber (the app is slow, so the
        client is not reading)."""
        return bool(self._deliveries)

    # -- ending ----------------------------------------------------------------------------

    def end_all(self, cause: object = None) -> None:
        """End every stream from :meth:`subscribe` (the client is done); later subscriptions
        come back already ended with ``cause``. ``on()`` callbacks stay registered."""
        if not self._ended:
            self._ended = True
            self._cause = cause
        self._end_streams(self._cause)

    def end_streams(self, cause: object) -> None:
        """End the streams that exist now with ``cause`` (the user is disconnecting), but not
        the fan-out: a subscription made later is live unless :meth:`end_all` follows."""
        self._end_streams(cause)

    def _end_streams(self, cause: object) -> None:
        streams, self._streams = self._streams, {}
        self._entries = tuple(entry for entry in self._entries if entry[1] not in streams)
        self._end(streams, cause)

    def _end(self, subs: Collection[Subscription[Any]], cause: object) -> None:
        # An event a dispatch is still holding for one of them goes in over the limit: the
        # stream ends after it, so that costs one slot once, and nothing is lost at the end.
        for delivery in self._deliveries:
            for sub in [sub for sub in delivery.waiting if sub in subs]:
                sub.put_last(delivery.event)
                delivery.waiting.remove(sub)
        for sub in subs:
            sub.end(cause)

    def reopen(self) -> None:
        """Accept live subscriptions again after :meth:`end_all` (the client was connected
        again); streams ended before stay ended."""
        if not self._closed:
            self._ended = False
            self._cause = None

    async def aclose(self, timeout: float) -> None:  # noqa: ASYNC109 - a drain budget
        """End everything, let async callbacks finish what is queued for up to ``timeout``
        seconds, then cancel them. Returns with no task of this fan-out left running, but
        the one that called it: an async callback that closes the client goes on once the
        close returns (waiting for itself, it would wait for ever)."""
        self._closed = True
        self.end_all(self._cause)
        self._unstarted = ()
        queues, self._callback_queues = self._callback_queues, ()
        self._entries = ()
        self._end(queues, self._cause)
        current = asyncio.current_task()
        others = {task for task in self._tasks or () if task is not current}
        try:
            if others:
                await asyncio.wait(others, timeout=timeout)
        finally:
            tasks = [task for task in others if not task.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def cause(self) -> object:
        return self._cause

    @property
    def subscribers(self) -> int:
        """Live registrations: streams, sync and async callbacks."""
        return len(self._entries)

    # -- internals -------------------------------------------------------------------------

    async def _run_callback(
        self, queue: Subscription[Any], callback: Callable[[Any], Awaitable[object]]
    ) -> None:
        name = _name(callback)
        with contextlib.suppress(SubscriberStalled):  # cut off: already counted and logged
            await self._callbacks(queue, callback, name)

    async def _callbacks(
        self, queue: Subscription[Any], callback: Callable[[Any], Awaitable[object]], name: str
    ) -> None:
        async for event in queue:
            try:
                await callback(event)
            except Exception as exc:
                self._callback_failed(exc, name)
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                # Something the callback awaited was cancelled, not this task: report it like
                # any other failure. Ending the task here would leave its queue to fill up
                # and hold the client forever.
                error = RuntimeError(f"{name} raised CancelledError without being cancelled")
                error.__cause__ = exc
                self._callback_failed(error, name)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"statesock-callback-{name}")
        tasks = self._tasks
        if tasks is None:
            tasks = self._tasks = set()
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _remove(self, entry: _Entry) -> None:
        self._entries = tuple(e for e in self._entries if e is not entry)

    def _unsubscribe(self, sub: Subscription[Any]) -> None:
        if sub in self._streams:
            del self._streams[sub]
            self._entries = tuple(e for e in self._entries if e[1] is not sub)

    def _dropped_one(self, sub: Subscription[Any]) -> None:
        self.dropped += 1
        if self._on_drop is not None:
            try:
                self._on_drop(sub)
            except Exception as exc:
                self._callback_failed(exc, "on_drop")

    def _callback_failed(self, exc: Exception, name: str) -> None:
        self.callback_errors += 1
        # If the reporter itself fails, delivery must still go on.
        with contextlib.suppress(Exception):
            self._on_callback_error(exc, name)


def _nothing() -> None:
    pass
