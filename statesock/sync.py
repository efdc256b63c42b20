"""A blocking client for scripts, threads and frameworks without asyncio.

This module owns :class:`WebSocketClient`, a facade that runs the asyncio client
(:class:`statesock.client.WebSocketClient`) on an event loop of its own, in one daemon thread
per client named ``statesock-sync-<label>``, started at construction, and the matching
:class:`ConnectionRecoveryHandler` and :class:`SyncSubscription`. Every method hands its work
to that loop (``run_coroutine_threadsafe``, or ``call_soon_threadsafe`` and a future) and
blocks until it is done. Timeouts run on the loop: a call that times out is cancelled there as
an asyncio caller would be, and a subscription loses no event. Any thread may call, several
at a time, except the loop's own.

On the loop thread run everything given to the constructor (decoder, ping request builder,
hooks, a ``message_encoder``, ``token_provider``, ``headers`` or ``query_params`` callable)
and the recovery policy and strategy: none may block. The hooks receive the *asyncio* client,
which that thread owns (``await client.send(...)``). A method of this facade called on the
loop thread would wait for itself forever, so it raises RuntimeError instead.

:meth:`WebSocketClient.close` (or leaving ``with``) closes the asyncio client, stops and
closes the loop and joins the thread. Afterwards the methods raise
:class:`~statesock.exceptions.ClientClosed`, the properties still answer and a subscription
yields what it held. A client never closed is closed in the background when it is
garbage-collected (with a ``ResourceWarning``); nobody waits for it, and the daemon thread
never holds the interpreter open.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import threading
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, Unpack, cast, overload

from .client import WebSocketClient as AsyncWebSocketClient
from .events import HealthCheckInfo
from .exceptions import ClientClosed
from .machine import ConnectionSnapshot, ConnectionState
from .network import NetworkMonitor, StatusCallback
from .ping import default_ping_request
from .recovery import ConnectionRecoveryHandler as AsyncRecoveryHandler
from .recovery import SendBufferStats, _check_monitor
from .retry import RetryStrategy
from .settings import ClientOptions
from .sources import DisconnectionSource, ReconnectPolicy, default_reconnect_policy
from .stats import ClientStats
from .subscriptions import Overflow, Subscription

if TYPE_CHECKING:
    from typing_extensions import TypeForm

__all__ = ["ConnectionRecoveryHandler", "SyncSubscription", "WebSocketClient"]

T = TypeVar("T")
Hook = Callable[[AsyncWebSocketClient], Any]


class _Bridge:
    """The loop thread of one client, and the only way into it. ``closing`` is set (under
    ``lock``) by the first ``close()``: nothing is handed to the loop after it, and a call
    whose task the stopping loop cancels is told ClientClosed. The thread sets ``closed``
    once its loop is closed."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.loop = asyncio.new_event_loop()
        self.lock = threading.Lock()
        self.closing = False
        self.closed = threading.Event()
        self.thread = threading.Thread(
            target=_run_loop,
            args=(self.loop, self.closed),
            name=f"statesock-sync-{label}",
            daemon=True,
        )
        self.thread.start()

    def on_loop_thread(self) -> bool:
        return threading.current_thread() is self.thread

    def check(self, what: str) -> None:
        """Raise RuntimeError on the loop thread (waiting there is a deadlock)."""
        if self.on_loop_thread():
            raise RuntimeError(
                f"statesock.sync: {what} was called on the event-loop thread of client "
                f"{self.label} (from a hook or the decoder?) and would wait for itself forever; "
                "there, use the asyncio client that hooks receive: `await client.send(...)`."
            )

    def run(self, coro: Coroutine[Any, Any, T], what: str, timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and return its result; ``timeout`` (seconds) bounds it
        there: on expiry it is cancelled on the loop and TimeoutError is raised here."""
        return self._wait(
            what, lambda: asyncio.run_coroutine_threadsafe(_within(coro, timeout), self.loop),
            coro.close,
        )  # fmt: skip

    def call(self, fn: Callable[[], T], what: str) -> T:
        """Call ``fn()`` on the loop thread (``call_soon_threadsafe``); return its result."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except Exception as exc:
                    future.set_exception(exc)

        def schedule() -> concurrent.futures.Future[T]:
            self.loop.call_soon_threadsafe(run)
            return future

        return self._wait(what, schedule)

    def _wait(
        self,
        what: str,
        schedule: Callable[[], concurrent.futures.Future[T]],
        discard: Callable[[], object] = lambda: None,
    ) -> T:
        try:
            self.check(what)
            with self.lock:  # close() sets closing under it: nothing is scheduled after
                if self.closing:
                    raise ClientClosed(f"client {self.label} is closed")
                future = schedule()
        except BaseException:
            discard()  # the coroutine that will never run
            raise
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            if self.closing:  # the loop stopped under the call
                raise ClientClosed(f"client {self.label} is closed") from None
            raise
        finally:
            future.cancel()  # a caller interrupted (KeyboardInterrupt) cancels its call

    def read(self, fn: Callable[[], T]) -> T:
        """``fn()`` where reading is safe: on the loop thread, or directly once it is gone."""
        if self.on_loop_thread() or self.closed.is_set():
            return fn()
        try:
            return self.call(fn, "reading")
        except ClientClosed:
            self.closed.wait()  # closing: read what it ended with
            return fn()

    def stop(self) -> None:
        """Stop the loop and join the thread (the thread closes the loop on its way out)."""
        with contextlib.suppress(RuntimeError):  # closed already
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


def _run_loop(loop: asyncio.AbstractEventLoop, closed: threading.Event) -> None:
    """The loop thread: run until stopped, then cancel what is left and close the loop."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
            closed.set()


async def _within(coro: Coroutine[Any, Any, T], seconds: float | None) -> T:
    async with asyncio.timeout(seconds):
        return await coro


def _abandoned(bridge: _Bridge, client: AsyncWebSocketClient) -> None:
    """weakref.finalize of an unclosed client (collected, or alive at interpreter exit): close
    it on its loop and stop the loop, waiting for nothing. It may run in the garbage collector
    on any thread, so it takes no lock."""
    if bridge.closing:
        return
    bridge.closing = True
    message = f"statesock.sync.WebSocketClient {bridge.label} was never closed: closing it "
    warnings.warn(message + "in the background (use `with client:`)", ResourceWarning, stacklevel=2)

    async def close_and_stop() -> None:
        try:
            with contextlib.suppress(Exception):
                await client.close()
        finally:
            bridge.loop.stop()

    def start() -> None:
        bridge.loop.create_task(close_and_stop())

    with contextlib.suppress(RuntimeError):  # the loop is closed already
        bridge.loop.call_soon_threadsafe(start)


def _finish_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``, which must complete without suspending (no loop is running)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coro.close()
    raise RuntimeError("statesock.sync: the coroutine needed an event loop")


class WebSocketClient:
    """A blocking :class:`statesock.client.WebSocketClient` (see the module docstring): the
    same arguments, checked at once; hooks and decoder run on the loop thread."""

    def __init__(
        self,
        url: str,
        event_decoder: Callable[[str | bytes], Any],
        ping_request_builder: Callable[[HealthCheckInfo], Any] | None = default_ping_request,
        on_connection_established: Hook | None = None,
        on_connected: Hook | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        # Made here, in the caller's thread, so that a bad option raises before any thread
        # exists; its clock starts with its first step, on the loop.
        self._client = AsyncWebSocketClient(
            url, event_decoder, ping_request_builder, on_connection_established, on_connected,
            **options,
        )  # fmt: skip
        self.label = self._client.label
        self.url = url
        self._bridge = _Bridge(self.label)
        self._finalizer = weakref.finalize(self, _abandoned, self._bridge, self._client)

    # -- reading ----------------------------------------------------------------------------

    @property
    def async_client(self) -> AsyncWebSocketClient:
        """The asyncio client underneath. It belongs to the loop thread: use it only there
        (in a hook, say), e.g. for ``add_listener()``, ``on()`` or ``states()``."""
        return self._client

    @property
    def state(self) -> ConnectionSnapshot:
        """An immutable snapshot (state, disconnection source, health), taken on the loop."""
        return self._bridge.read(lambda: self._client.state)

    @property
    def done(self) -> bool:
        """Nothing will reconnect the client (closed, user disconnect, no or failed recovery)."""
        return self._bridge.read(lambda: self._client.done)

    @property
    def final_source(self) -> DisconnectionSource | None:
        """Why the client is done (None while it is not)."""
        return self._bridge.read(lambda: self._client.final_source)

    @property
    def closed(self) -> bool:
        """The client was closed: its loop is closed and its thread ends."""
        return self._bridge.closed.is_set()

    @property
    def stats(self) -> ClientStats:
        """A copy of the client's counters, taken on the loop (``reading_paused_for`` and
        ``oldest_undelivered_age`` as they were then); the live object once closed."""
        return self._bridge.read(self._stats_copy)

    def _stats_copy(self) -> ClientStats:
        stats = self._client.stats
        if self._bridge.closed.is_set():
            return stats
        waiting = stats.probe()
        return dataclasses.replace(stats, probe=lambda: waiting)

    # -- commands ---------------------------------------------------------------------------

    def connect(self, timeout: float | None = None) -> ConnectionSnapshot:
        """Connect (a no-op while already active) and block until connected.

        Raises :class:`~statesock.exceptions.ConnectFailed` as the asyncio ``connect()``
        does, and TimeoutError after ``timeout`` seconds; either way the attempt goes on
        (and recovery, when attached, keeps trying).
        """
        return self._bridge.run(self._client.connect(), "connect()", timeout)

    def disconnect(self) -> ConnectionSnapshot:
        """Close with 1000 (a user disconnect: nothing reconnects until ``connect()``) and
        block until disconnected."""
        return self._bridge.run(self._client.disconnect(), "disconnect()")

    def send(self, message: Any, timeout: float | None = None) -> None:
        """Send ``message`` as the asyncio ``send()`` does (encoded on the loop thread) and
        block until it is written. TimeoutError after ``timeout`` seconds cancels the send
        (a buffered message is taken out of the send buffer)."""
        self._bridge.run(self._client.send(message), "send()", timeout)

    def wait_for(self, state: ConnectionState, timeout: float | None = None) -> ConnectionSnapshot:
        """Block until the client is in ``state``; ConnectionEnded when it is done without
        being there, TimeoutError after ``timeout`` seconds."""
        return self._bridge.run(self._client.wait_for(state), "wait_for()", timeout)

    def wait_done(self, timeout: float | None = None) -> DisconnectionSource | None:
        """Block until the client is done; return the final disconnection source."""
        return self._bridge.run(self._client.wait_done(), "wait_done()", timeout)

    def close(self) -> None:
        """Close the asyncio client (user disconnect, streams end), stop and close the loop
        and join its thread. Idempotent; a second caller waits for the first to finish."""
        bridge = self._bridge
        if bridge.closed.is_set():
            return
        bridge.check("close()")
        with bridge.lock:
            first, bridge.closing = not bridge.closing, True
        if not first:
            bridge.closed.wait()
            bridge.thread.join()
            return
        self._finalizer.detach()
        try:
            future = asyncio.run_coroutine_threadsafe(self._client.close(), bridge.loop)
            future.result()
        finally:
            bridge.stop()

    def __enter__(self) -> WebSocketClient:
        """Connect; when that fails, close (no thread is left) and raise."""
        try:
            self.connect()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- events -----------------------------------------------------------------------------

    @overload
    def events(
        self,
        event_type: tuple[type[Any], ...] | None = None,
        *,
        timeout: float | None = ...,
        maxsize: int | None = ...,
        overflow: Overflow = ...,
    ) -> SyncSubscription[Any]: ...
    @overload
    def events(
        self,
        event_type: type[T],
        *,
        timeout: float | None = ...,
        maxsize: int | None = ...,
        overflow: Overflow = ...,
    ) -> SyncSubscription[T]: ...
    @overload
    def events(  # ``A | B``: SyncSubscription[A | B]
        self,
        event_type: TypeForm[T],
        *,
        timeout: float | None = ...,
        maxsize: int | None = ...,
        overflow: Overflow = ...,
    ) -> SyncSubscription[T]: ...
    def events(
        self,
        event_type: Any = None,
        *,
        timeout: float | None = None,
        maxsize: int | None = None,
        overflow: Overflow = Overflow.BLOCK,
    ) -> SyncSubscription[Any]:
        """A blocking iterator of every decoded event matching ``event_type`` from now on
        (subscribed on the loop thread, as the asyncio ``events()``; subscribe before
        ``connect()`` to miss nothing). Each ``next()`` waits at most ``timeout`` seconds,
        else raises TimeoutError (nothing is lost; iterate again); iteration ends when the
        client is done, or raises SubscriberStalled when the subscription was cut off.
        Use ``with client.events(T) as events:`` so that leaving the loop unsubscribes.
        """

        def subscribe() -> Subscription[Any]:
            return self._client.events(event_type, maxsize=maxsize, overflow=overflow)

        return SyncSubscription(self, self._bridge.call(subscribe, "events()"), timeout)

    def __repr__(self) -> str:
        return f"<statesock.sync.WebSocketClient {self._client!r}>"


class SyncSubscription(Iterator[T], Generic[T]):
    """A subscription read with a plain ``for`` loop; a context manager that unsubscribes.

    ``timeout`` (seconds or None, settable) bounds each ``next()``: TimeoutError, and the
    next item is still there for the next call. ``subscription`` is the asyncio one
    underneath, whose counters (``delivered``, ``dropped``, ``discarded``) any thread may read.
    """

    def __init__(
        self, client: WebSocketClient, subscription: Subscription[T], timeout: float | None
    ) -> None:
        self._client = client
        self._sub = self.subscription = subscription
        self.timeout = timeout
        # Items taken on the loop thread, handed over here: a caller interrupted after the
        # take (KeyboardInterrupt) finds its item on the next call, so nothing is lost.
        self._held: deque[T] = deque()
        self._finished = False
        # Dropped without close(): unsubscribe on the loop, so it cannot stall the client.
        self._finalizer = weakref.finalize(self, _unsubscribe_soon, client._bridge, subscription)

    def __iter__(self) -> SyncSubscription[T]:
        return self

    def __next__(self) -> T:
        while not self._held:
            if self._finished:
                raise StopIteration
            try:
                more = self._client._bridge.run(self._take(), "next(events)")
            except ClientClosed:
                self._client._bridge.closed.wait()
                more = self._take_after_close()
            if not more:
                self._finished = True
        return self._held.popleft()

    async def _take(self) -> bool:
        # On the loop. Cancelled (timeout) while waiting, the subscription keeps the item;
        # once taken, it is held before the next await, so no cancellation can lose it.
        try:
            async with asyncio.timeout(self.timeout):
                self._held.append(await anext(self._sub))
        except StopAsyncIteration:
            return False
        return True

    def _take_after_close(self) -> bool:
        sub = self._sub
        if not sub.pending and not sub.ended:  # a close that failed half-way: no more
            return False
        try:
            self._held.append(_finish_now(sub.__anext__()))
        except StopAsyncIteration:
            return False
        return True

    def close(self) -> None:
        """Unsubscribe: end it and discard what it still holds (counted in ``discarded``)."""
        self._finalizer.detach()
        self._finished = True
        self._held.clear()
        bridge = self._client._bridge
        try:
            bridge.run(self._sub.aclose(), "events().close()")
        except ClientClosed:
            bridge.closed.wait()
            _finish_now(self._sub.aclose())

    def __enter__(self) -> SyncSubscription[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def cause(self) -> object:
        """Why it ended (the final disconnection source, or SubscriberStalled), or None."""
        return self._sub.cause

    @property
    def pending(self) -> int:
        """Events queued and not yet returned by ``next()``."""
        return self._sub.pending + len(self._held)


def _unsubscribe_soon(bridge: _Bridge, subscription: Subscription[Any]) -> None:
    def unsubscribe() -> None:
        _finish_now(subscription.aclose())

    with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to unsubscribe from
        bridge.loop.call_soon_threadsafe(unsubscribe)


class _LoopMonitor:
    """A network monitor as the loop thread sees it: changes reported on any thread are
    handed to the loop."""

    def __init__(self, monitor: NetworkMonitor, loop: asyncio.AbstractEventLoop) -> None:
        self._monitor = monitor
        self._loop = loop

    @property
    def available(self) -> bool:
        return self._monitor.available

    def subscribe(self, callback: StatusCallback) -> Callable[[], None]:
        def relay(available: bool) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the client is gone
                self._loop.call_soon_threadsafe(callback, available)

        return self._monitor.subscribe(relay)


class ConnectionRecoveryHandler:
    """:class:`statesock.recovery.ConnectionRecoveryHandler` for a blocking client: the same
    parameters and checks, the same reading, ``pause()``, ``resume()`` and ``close()``, all
    carried out on the loop thread (the policy and strategy run there). ``network_monitor``
    may report from any thread (a :class:`~statesock.network.ManualNetworkMonitor`)."""

    def __init__(
        self,
        client: WebSocketClient,
        network_monitor: NetworkMonitor | None = None,
        *,
        policy: ReconnectPolicy = default_reconnect_policy,
        strategy: RetryStrategy | Callable[[int, DisconnectionSource], float | None] | None = None,
        stable_after: float = 10.0,
        send_buffer_size: int = 0,
        send_ttl: float = 30.0,
        retry_first_connect: bool = False,
    ) -> None:
        if not isinstance(client, WebSocketClient):
            raise TypeError(f"client must be a statesock.sync.WebSocketClient, not {client!r}")
        _check_monitor(network_monitor)
        self.client = client
        self.network_monitor = network_monitor
        bridge = client._bridge
        monitor = None if network_monitor is None else _LoopMonitor(network_monitor, bridge.loop)

        def attach() -> AsyncRecoveryHandler:
            return AsyncRecoveryHandler(
                client.async_client, monitor, policy=policy, strategy=strategy,
                stable_after=stable_after, send_buffer_size=send_buffer_size,
                send_ttl=send_ttl, retry_first_connect=retry_first_connect,
            )  # fmt: skip

        self._handler = bridge.call(attach, "ConnectionRecoveryHandler()")
        self.policy = self._handler.policy
        self.strategy = self._handler.strategy
        self.stable_after = self._handler.stable_after

    @property
    def attempt(self) -> int:
        return self.client._bridge.read(lambda: self._handler.attempt)

    @property
    def reconnects(self) -> int:
        return self.client._bridge.read(lambda: self._handler.reconnects)

    @property
    def gave_up(self) -> bool:
        return self.client._bridge.read(lambda: self._handler.gave_up)

    @property
    def paused(self) -> bool:
        return self.client._bridge.read(lambda: self._handler.paused)

    @property
    def retry_in(self) -> float | None:
        """The delay of the reconnect now scheduled (None when none is)."""
        return self.client._bridge.read(lambda: self._handler.retry_in)

    @property
    def waiting(self) -> bool:
        return self.retry_in is not None

    @property
    def network_available(self) -> bool:
        return self._handler.network_available

    @property
    def send_buffer(self) -> SendBufferStats | None:
        return self.client._bridge.read(lambda: self._handler.send_buffer)

    def pause(self) -> None:
        """The app goes idle: disconnect (SystemInitiated) and suspend reconnecting."""
        self.client._bridge.call(self._handler.pause, "pause()")

    def resume(self) -> None:
        """The app is back: reconnect at once if the last disconnection allows it."""
        self.client._bridge.call(self._handler.resume, "resume()")

    def close(self) -> None:
        """Stop recovering. Does nothing once the client is closed (recovery ended with it)."""
        with contextlib.suppress(ClientClosed):
            self.client._bridge.call(self._handler.close, "close()")
