"""WebSocketClient: the public object.

It owns a :class:`~statesock.machine.ConnectionMachine`, a
:class:`~statesock.engine.WebSocketEngine` and a
:class:`~statesock.ping.WebSocketPingController`. It turns what the engine reports into
triggers, decodes messages with the user's ``event_decoder``, dispatches events to
subscribers, and runs the auth hooks. Side effects (open a socket, start a timer, close) are
started by the machine's records, never by assigning a state.

Delivery policy: each ``events()`` / ``states()`` iterator and each async ``on()`` callback
has a bounded queue (``event_queue_size``, default 1024). When an event subscriber's queue is
full, the receive loop waits for it to make room, at most ``slow_subscriber_wait`` seconds
(default 1 s; TCP backpressure meanwhile slows the server). A subscriber still full after
that is stuck, not slow: it is marked ``stalled`` and from then on, until it has drained
half its queue, the loop never waits for it: its *oldest* items are dropped, counted on the
subscription (``dropped``) and in ``client.stats.events_dropped``, and logged
(``events_dropped``), so the link's health checks keep flowing. ``slow_subscriber_wait=0``
never holds the loop at all. ``states()`` queues never hold the loop (records are
delivered synchronously) and use the same drop-oldest rule. Sync ``on()`` callbacks run
inline, in order, in the receive loop: keep them fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import ssl as ssl_module
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, overload

from .engine import EngineConfig, HeadersSource, QuerySource, WebSocketEngine
from .events import HealthCheckInfo, HealthCheckPongEvent, ServerErrorEvent
from .exceptions import (
    ClientClosed,
    ConnectFailed,
    ConnectionFailure,
    InvalidTransition,
    NotConnectedError,
    TokenUnavailable,
)
from .machine import (
    ACTIVE_STATES,
    ConnectionMachine,
    ConnectionSnapshot,
    ConnectionState,
    Listener,
    Record,
    StateChange,
)
from .ping import PingRequestBuilder, WebSocketPingController, default_ping_request
from .redaction import redact_text, redact_url
from .sources import NoPongReceived, ServerInitiated, Timeout, UserInitiated
from .transition_log import TransitionLogger, emit

__all__ = ["ClientStats", "Subscription", "WebSocketClient"]

T = TypeVar("T")
S = ConnectionState
EventDecoder = Callable[[str | bytes], Any]
Hook = Callable[["WebSocketClient"], Any]
TokenProvider = Callable[[], Awaitable[str] | str]


class SendQueue(Protocol):
    """Where ``send()`` puts messages it cannot send now (see ``recovery.SendBuffer``)."""

    @property
    def pending(self) -> int: ...

    async def enqueue(self, data: str | bytes) -> None: ...

    def abandon(self, reason: str) -> None: ...


_labels = itertools.count(1)


@dataclass
class ClientStats:
    """Counters a user can read to see what the client skipped or dropped, and why."""

    messages_received: int = 0
    decode_errors: int = 0
    ignored_messages: int = 0
    events_dropped: int = 0
    callback_errors: int = 0


class Subscription(Generic[T], AsyncIterator[T]):
    """A bounded queue read with ``async for``; ends when the client closes.

    ``put`` never blocks: when full it drops the oldest item (counted in ``dropped``). The
    receive loop calls :meth:`wait_for_room` first, so a consumer that is merely behind is
    waited for and only a stuck one loses items.
    """

    def __init__(self, maxsize: int, on_drop: Callable[[Subscription[T]], None]) -> None:
        self._items: deque[T] = deque()
        self._maxsize = maxsize
        self._on_drop = on_drop
        self._waiter: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        self._closed = False
        self.dropped = 0
        # Set when the consumer let a wait for room time out: it is stuck, not slow, and is
        # not waited for again until it has drained half its queue.
        self.stalled = False

    @property
    def full(self) -> bool:
        return not self._closed and len(self._items) >= self._maxsize

    async def wait_for_room(self) -> None:
        while self.full:
            self._room = asyncio.get_running_loop().create_future()
            try:
                await self._room
            finally:
                self._room = None

    def put(self, item: T) -> None:
        """Append ``item``; when full, drop the oldest first (counted)."""
        if self._closed:
            return
        if len(self._items) >= self._maxsize:
            self._items.popleft()
            self.dropped += 1
            self._on_drop(self)
        self._items.append(item)
        self._wake()

    def offer(self, item: T) -> bool:
        """Append ``item`` if there is room (the receive loop's fast path); False if full."""
        if self._closed:
            return True  # an ended subscription takes nothing and never blocks
        items = self._items
        if len(items) >= self._maxsize:
            return False
        items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    def end(self) -> None:
        """No more items will come; the iterator stops once the queue is drained."""
        self._closed = True
        self._wake()
        self._make_room()

    def _make_room(self) -> None:
        if self._room is not None and not self._room.done():
            self._room.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if self._room is not None:
            self._make_room()
        if self.stalled and len(self._items) <= self._maxsize // 2:
            self.stalled = False
        return item

    def __len__(self) -> int:
        return len(self._items)


class WebSocketClient:
    """A WebSocket connection whose lifecycle is an explicit state machine.

    ``event_decoder`` maps each message (str or bytes) to an event; map the server's health
    checks to :class:`HealthCheckPongEvent` and its in-band errors to
    :class:`ServerErrorEvent`. A decoder that raises is logged and counted and the
    connection stays up; one that returns None skips the message (counted).

    ``on_connection_established(client)`` runs on entering authenticating (send the auth
    message there); the first ``HealthCheckPongEvent`` completes authentication. With
    ``ack_required=False`` (servers with no ack step) the client goes to connected as soon as
    that hook has finished. ``on_connected(client)`` runs once connected. Hooks and ``on()``
    callbacks may be sync or async; one that raises is logged and never kills the client.
    """

    def __init__(
        self,
        url: str,
        event_decoder: EventDecoder,
        ping_request_builder: PingRequestBuilder | None = default_ping_request,
        on_connection_established: Hook | None = None,
        on_connected: Hook | None = None,
        *,
        ack_required: bool = True,
        subprotocols: Sequence[str] = (),
        headers: HeadersSource = None,
        query_params: QuerySource = None,
        ssl: ssl_module.SSLContext | None = None,
        max_size: int | None = 2**20,
        compression: bool = True,
        connect_timeout: float = 10.0,
        auth_timeout: float = 10.0,
        close_timeout: float = 5.0,
        ping_interval: float = 25.0,
        pong_timeout: float = 3.0,
        protocol_keepalive: float | None = None,
        event_queue_size: int = 1024,
        slow_subscriber_wait: float = 1.0,
        message_encoder: Callable[[Any], str | bytes] = json.dumps,
        token_provider: TokenProvider | None = None,
        proxy: str | bool | None = True,
        label: str | None = None,
    ) -> None:
        if event_queue_size < 1:
            raise ValueError("event_queue_size must be at least 1")
        if inspect.iscoroutinefunction(event_decoder):
            # Decoding runs in the receive loop for every message; it must not await.
            raise TypeError("event_decoder must be a plain function, not a coroutine function")
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("auth_timeout", auth_timeout),
            ("close_timeout", close_timeout),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be positive, not {value!r}")
        self.label = label or f"ws-{next(_labels)}"
        self.url = url
        self.event_decoder = event_decoder
        self.on_connection_established = on_connection_established
        self.on_connected = on_connected
        self.ack_required = ack_required
        self.connect_timeout = connect_timeout
        self.auth_timeout = auth_timeout
        self.close_timeout = close_timeout
        self.event_queue_size = event_queue_size
        self.slow_subscriber_wait = slow_subscriber_wait
        self._encoder = message_encoder
        self.token_provider = token_provider
        self.token: str | None = None
        self.send_buffer: SendQueue | None = None
        self.stats = ClientStats()
        self._engine = WebSocketEngine(
            EngineConfig(
                url=url,
                subprotocols=tuple(subprotocols),
                headers=headers,
                query_params=query_params,
                ssl=ssl,
                max_size=max_size,
                compression=compression,
                close_timeout=close_timeout,
                protocol_keepalive=protocol_keepalive,
                before_attempt=self._fetch_token if token_provider is not None else None,
                proxy=proxy,
            ),
            self,
            self.label,
        )
        self.ping_controller = WebSocketPingController(
            self,
            ping_interval=ping_interval,
            pong_timeout=pong_timeout,
            ping_request_builder=ping_request_builder,
            label=self.label,
        )
        self._machine = ConnectionMachine(_clock, on_listener_error=self._listener_failed)
        self._machine.add_listener(TransitionLogger(self.label))
        self._machine.add_listener(self._on_record)
        self._state_subscriptions: list[Subscription[StateChange]] = []
        self._event_subscriptions: list[tuple[type | None, Subscription[Any]]] = []
        self._callbacks: list[tuple[type | None, Callable[[Any], Any]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._deferred: list[Awaitable[Any]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._connect_waiters: list[tuple[asyncio.Future[ConnectionSnapshot], list[bool]]] = []
        self._disconnect_waiters: list[asyncio.Future[None]] = []
        self._generation = 0
        self._closed = False
        self.subprotocol: str | None = None

    # -- reading -------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionSnapshot:
        """An immutable snapshot: state, disconnection source, health-check info."""
        return self._machine.snapshot()

    @property
    def health(self) -> HealthCheckInfo:
        return self._machine.health

    @property
    def machine(self) -> ConnectionMachine:
        """The state machine (read it, add listeners, fire triggers; never assign)."""
        return self._machine

    @property
    def generation(self) -> int:
        """Increments with each socket; callbacks from older sockets are ignored."""
        return self._generation

    @property
    def closed(self) -> bool:
        return self._closed

    async def wait_for(self, state: ConnectionState) -> ConnectionSnapshot:
        """Return as soon as the client is in ``state`` (at once if it is already there).

        Bound the wait with ``asyncio.timeout()`` or ``asyncio.wait_for()``.
        """
        if self._machine.state is state:
            return self._machine.snapshot()
        reached: asyncio.Future[ConnectionSnapshot] = asyncio.get_running_loop().create_future()

        def listen(record: Record) -> None:
            if isinstance(record, StateChange) and record.current is state and not reached.done():
                reached.set_result(self._machine.snapshot())

        self._machine.add_listener(listen)
        try:
            return await reached
        finally:
            self._machine.remove_listener(listen)

    def add_listener(self, listener: Listener) -> None:
        """Receive every record (changes and internal transitions) synchronously, in order."""
        self._machine.add_listener(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._machine.remove_listener(listener)

    def states(self) -> Subscription[StateChange]:
        """Every state change from now on, until the client closes."""
        sub: Subscription[StateChange] = Subscription(self.event_queue_size, self._dropped)
        if self._closed:
            sub.end()
        self._state_subscriptions.append(sub)
        return sub

    @overload
    def events(self) -> Subscription[Any]: ...

    @overload
    def events(self, event_type: type[T]) -> Subscription[T]: ...

    def events(self, event_type: type[Any] | None = None) -> Subscription[Any]:
        """Every decoded event (of ``event_type`` when given) from now on, until close."""
        sub: Subscription[Any] = Subscription(self.event_queue_size, self._dropped)
        if self._closed:
            sub.end()
        self._event_subscriptions.append((event_type, sub))
        return sub

    def unsubscribe(self, subscription: Subscription[Any]) -> None:
        subscription.end()
        self._event_subscriptions = [
            (t, s) for t, s in self._event_subscriptions if s is not subscription
        ]
        self._state_subscriptions = [s for s in self._state_subscriptions if s is not subscription]

    def on(self, event_type: type[T] | None, callback: Callable[[T], Any]) -> Callable[[], None]:
        """Call ``callback`` for each event of ``event_type`` (None: all); returns an undo.

        Sync callbacks run inline in order; async ones run one at a time, in order, from a
        bounded queue of their own.
        """
        entry: tuple[type | None, Callable[[Any], Any]]
        if inspect.iscoroutinefunction(callback):
            sub: Subscription[Any] = Subscription(self.event_queue_size, self._dropped)
            entry = (event_type, sub.put)
            self._event_subscriptions.append((event_type, sub))
            drain = self._drain_callback(sub, callback)
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # registered before the loop runs: start on connect()
                self._deferred.append(drain)
            else:
                self._spawn(drain, f"on-{callback.__name__}")

            def undo() -> None:
                self.unsubscribe(sub)

            return undo
        entry = (event_type, callback)
        self._callbacks.append(entry)

        def undo_sync() -> None:
            if entry in self._callbacks:
                self._callbacks.remove(entry)

        return undo_sync

    # -- commands ------------------------------------------------------------------------

    async def connect(self) -> ConnectionSnapshot:
        """Connect (a no-op while already active) and wait until connected.

        Raises :class:`ConnectFailed` when the attempt ends in disconnected; ``source``
        says why. Cancelling the caller does not cancel the attempt.
        """
        if self._closed:
            raise ClientClosed(f"client {self.label} is closed")
        loop = asyncio.get_running_loop()
        while self._deferred:
            self._spawn(self._deferred.pop(0), "on-callback")
        waiter: asyncio.Future[ConnectionSnapshot] = loop.create_future()
        armed = [self._machine.state in (S.CONNECTING, S.AUTHENTICATING)]
        self._connect_waiters.append((waiter, armed))
        try:
            self._machine.connect()
            if self._machine.state is S.CONNECTED:
                return self._machine.snapshot()
            return await waiter
        finally:
            self._connect_waiters = [(w, a) for w, a in self._connect_waiters if w is not waiter]

    async def disconnect(self) -> ConnectionSnapshot:
        """Close with code 1000 and wait (bounded by ``close_timeout``) for disconnected.

        A user disconnect sticks: no reconnect happens until the user connects again.
        """
        if self._machine.state is S.INITIALIZED:
            return self._machine.snapshot()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._disconnect_waiters.append(waiter)
        try:
            self._machine.disconnect(UserInitiated())
            if self._machine.state is not S.DISCONNECTED:
                try:
                    async with asyncio.timeout(self.close_timeout + 1.0):
                        await asyncio.shield(waiter)
                except TimeoutError:
                    # The close handshake is bounded by close_timeout; past that, force it.
                    await self._engine.aclose()
        finally:
            if waiter in self._disconnect_waiters:
                self._disconnect_waiters.remove(waiter)
        return self._machine.snapshot()

    async def send(self, message: Any) -> None:
        """Send ``message`` (str or bytes as is, anything else through ``message_encoder``).

        Allowed in authenticating (for the auth message) and connected; raises
        :class:`NotConnectedError` otherwise, unless a send buffer is attached (see
        ``ConnectionRecoveryHandler(send_buffer_size=...)``): then the message waits for the
        next connection and the call returns once it is written. Raises ``ConnectionLost``
        if the socket closes before the message is written.
        """
        state = self._machine.state
        sendable = state in (S.AUTHENTICATING, S.CONNECTED) and self._engine.is_open
        buffer = self.send_buffer
        # With a buffer, a message waits for the next connection; while the buffer still
        # flushes, new messages queue behind it so that order is kept.
        if buffer is not None and (not sendable or (state is S.CONNECTED and buffer.pending)):
            if self._closed:
                raise ClientClosed(f"client {self.label} is closed")
            data = message if isinstance(message, str | bytes) else self._encoder(message)
            await buffer.enqueue(data)
            return
        if not sendable:
            raise NotConnectedError(state.value)
        data = message if isinstance(message, str | bytes) else self._encoder(message)
        await self._engine.send(data)

    async def send_now(self, data: str | bytes) -> None:
        """Write ``data`` to the current socket, bypassing any buffer (used to flush it)."""
        if self._machine.state is not S.CONNECTED or not self._engine.is_open:
            raise NotConnectedError(self._machine.state.value)
        await self._engine.send(data)

    async def close(self) -> None:
        """Disconnect (user), end every subscription, and leave no task running."""
        if self._closed:
            return
        with contextlib.suppress(ConnectionFailure):
            await self.disconnect()
        self._closed = True
        if self.send_buffer is not None:
            self.send_buffer.abandon("the client was closed")
        self._cancel_timer()
        await self.ping_controller.wait_stopped()
        await self._engine.aclose()
        for sub in self._state_subscriptions:
            sub.end()
        for _, events_sub in self._event_subscriptions:
            events_sub.end()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        # Let async callbacks drain what they already hold, then stop them.
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=self.close_timeout)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def __aenter__(self) -> WebSocketClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _fetch_token(self) -> None:
        assert self.token_provider is not None
        try:
            token = self.token_provider()
            self.token = await token if inspect.isawaitable(token) else token
        except Exception as exc:
            raise TokenUnavailable(f"token provider failed: {type(exc).__name__}") from exc

    # -- engine reports (EngineListener) -------------------------------------------------

    def engine_opened(self, subprotocol: str | None) -> None:
        self.subprotocol = subprotocol
        self._fire(self._machine.opened)

    def engine_message(self, data: str | bytes) -> Awaitable[None] | None:
        self.stats.messages_received += 1
        try:
            event = self.event_decoder(data)
        except Exception as exc:
            self.stats.decode_errors += 1
            emit(
                "warning",
                "decode_failed",
                client=self.label,
                error=redact_text(f"{type(exc).__name__}: {exc}"),
                message=redact_text(data),
                decode_errors=self.stats.decode_errors,
            )
            return None
        if event is None:
            self.stats.ignored_messages += 1
            return None
        if isinstance(event, HealthCheckPongEvent):
            self._health_check(event)
        elif isinstance(event, ServerErrorEvent) and self._machine.state in ACTIVE_STATES:
            self._fire(lambda: self._machine.disconnect(ServerInitiated(error=event)))
        return self._dispatch(event)

    def engine_closed(self, code: int | None, reason: str, error: ConnectionFailure | None) -> None:
        state = self._machine.state
        if state in ACTIVE_STATES:
            source = ServerInitiated(code, reason, error)
            self._fire(lambda: self._machine.closed(source))
        elif state is S.DISCONNECTING:
            self._fire(self._machine.closed)
        else:
            emit("debug", "late_close_ignored", client=self.label, state=state.value)

    # -- PingClient -------------------------------------------------------------------------

    async def send_ping_message(self, generation: int, message: Any) -> None:
        if generation == self._generation:
            await self.send(message)

    async def send_protocol_ping(self, generation: int) -> float:
        if generation != self._generation:
            raise NotConnectedError(self._machine.state.value)
        return await self._engine.ping()

    def pong_received(self, generation: int, health: HealthCheckInfo) -> None:
        if generation == self._generation and self._machine.state is S.CONNECTED:
            self._fire(lambda: self._machine.pong(health))

    def pong_missed(self, generation: int) -> None:
        if generation == self._generation and self._machine.state is S.CONNECTED:
            self._fire(lambda: self._machine.disconnect(NoPongReceived()))

    def report_error(self, exc: Exception, where: str) -> None:
        """A user-supplied function failed in ``where``: logged and counted, never fatal."""
        self._callback_failed(exc, where)

    # -- reacting to records -----------------------------------------------------------

    def _on_record(self, record: Record) -> None:
        if not isinstance(record, StateChange):
            return
        state = record.current
        if state is S.CONNECTING:
            self._cancel_timer()
            self._generation = self._engine.start()
            self._start_timer(self.connect_timeout, S.CONNECTING)
            for _, armed in self._connect_waiters:
                armed[0] = True
        elif state is S.AUTHENTICATING:
            self._start_timer(self.auth_timeout, S.AUTHENTICATING)
            self._spawn(self._authenticate(self._generation), "auth")
        elif state is S.CONNECTED:
            self._cancel_timer()
            self.ping_controller.start(self._generation)
            if self.on_connected is not None:
                self._spawn(self._run_hook(self.on_connected, "on_connected"), "on-connected")
            for waiter, _ in self._connect_waiters:
                if not waiter.done():
                    waiter.set_result(self._machine.snapshot())
        elif state is S.DISCONNECTING:
            self._cancel_timer()
            self.ping_controller.stop()
            # A dead link will not answer a close handshake: do not wait for one.
            wait = 0.0 if isinstance(record.source, NoPongReceived) else None
            reason = record.source.close_reason if record.source else ""
            self._engine.request_close(1000, reason, wait)
        elif state is S.DISCONNECTED:
            self._cancel_timer()
            self.ping_controller.stop()
            for waiter, armed in self._connect_waiters:
                if armed[0] and not waiter.done():
                    waiter.set_exception(ConnectFailed(record.source))
            for done in self._disconnect_waiters:
                if not done.done():
                    done.set_result(None)
        for sub in self._state_subscriptions:
            sub.put(record)

    async def _authenticate(self, generation: int) -> None:
        if self.on_connection_established is not None:
            await self._run_hook(self.on_connection_established, "on_connection_established")
        if (
            not self.ack_required
            and generation == self._generation
            and self._machine.state is S.AUTHENTICATING
        ):
            self._fire(self._machine.authenticated)

    def _health_check(self, event: HealthCheckPongEvent) -> None:
        state = self._machine.state
        if state is S.AUTHENTICATING and self.ack_required:
            health = HealthCheckInfo(event.connection_id, None, _clock(), 0)
            self._fire(lambda: self._machine.health_check(health))
        elif state is S.CONNECTED:
            self.ping_controller.on_pong(self._generation, event)

    def _dispatch(self, event: Any) -> Awaitable[None] | None:
        # The per-message hot path: no allocation unless a subscriber is full.
        if self._callbacks:
            for event_type, callback in tuple(self._callbacks):
                if event_type is None or isinstance(event, event_type):
                    try:
                        result = callback(event)
                        if inspect.isawaitable(result):
                            self._spawn(self._await_callback(result, callback), "on-callback")
                    except Exception as exc:
                        self._callback_failed(exc, getattr(callback, "__name__", "callback"))
        blocked: list[Subscription[Any]] | None = None
        for event_type, sub in self._event_subscriptions:
            if (event_type is None or isinstance(event, event_type)) and not sub.offer(event):
                if sub.stalled:
                    sub.put(event)  # drop its oldest now: never hold the loop for it again
                    continue
                if blocked is None:
                    blocked = []
                blocked.append(sub)
        return self._deliver_when_room(blocked, event) if blocked else None

    async def _deliver_when_room(self, blocked: list[Subscription[Any]], event: Any) -> None:
        """Backpressure: hold the receive loop (and so the server, through TCP) while a
        subscriber is behind, for at most ``slow_subscriber_wait``; then drop its oldest."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.slow_subscriber_wait
        for sub in blocked:
            try:
                async with asyncio.timeout_at(deadline):
                    await sub.wait_for_room()
            except TimeoutError:
                sub.stalled = True
            sub.put(event)

    # -- helpers -----------------------------------------------------------------------------

    def _fire(self, trigger: Callable[[], object]) -> None:
        """Fire a trigger from I/O; a refusal means the I/O was late, never a crash."""
        try:
            trigger()
        except InvalidTransition as exc:
            emit("debug", "trigger_refused", client=self.label, error=str(exc))

    def _start_timer(self, delay: float, state: ConnectionState) -> None:
        self._cancel_timer()
        generation = self._generation
        self._timer = asyncio.get_running_loop().call_later(
            delay, self._timer_expired, generation, state
        )

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timer_expired(self, generation: int, state: ConnectionState) -> None:
        self._timer = None
        if generation == self._generation and self._machine.state is state:
            self._fire(lambda: self._machine.disconnect(Timeout(state)))

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(f"statesock-{name}-{self.label}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_hook(self, hook: Hook, name: str) -> None:
        try:
            result = hook(self)
            if inspect.isawaitable(result):
                await result
        except (ConnectionFailure, NotConnectedError) as exc:
            # The socket went away under the hook (its send failed): not a bug in the hook,
            # and the engine reports the close itself.
            emit(
                "info",
                "hook_interrupted",
                client=self.label,
                hook=name,
                error=redact_text(str(exc)),
            )
        except Exception as exc:
            self._callback_failed(exc, name)

    async def _drain_callback(self, sub: Subscription[Any], callback: Callable[[Any], Any]) -> None:
        async for event in sub:
            try:
                await callback(event)
            except Exception as exc:
                self._callback_failed(exc, getattr(callback, "__name__", "callback"))

    async def _await_callback(self, result: Awaitable[Any], callback: object) -> None:
        try:
            await result
        except Exception as exc:
            self._callback_failed(exc, getattr(callback, "__name__", "callback"))

    def _callback_failed(self, exc: Exception, name: str) -> None:
        self.stats.callback_errors += 1
        emit(
            "error",
            "callback_failed",
            client=self.label,
            callback=name,
            error=redact_text(f"{type(exc).__name__}: {exc}"),
            exc_info=exc,
        )

    def _listener_failed(self, exc: Exception, record: Record, listener: Listener) -> None:
        self._callback_failed(exc, getattr(listener, "__name__", type(listener).__name__))

    def _dropped(self, sub: Subscription[Any]) -> None:
        self.stats.events_dropped += 1
        if sub.dropped == 1 or sub.dropped % 1000 == 0:
            emit(
                "warning",
                "events_dropped",
                client=self.label,
                dropped=sub.dropped,
                queue_size=self.event_queue_size,
                policy="drop-oldest",
            )

    def __repr__(self) -> str:
        return f"<WebSocketClient {self.label} {redact_url(self.url)} {self._machine.state.value}>"


def _clock() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()
