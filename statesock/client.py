"""WebSocketClient: the public object, a thin asyncio shell around the connection core.

The client decides nothing about the connection. It turns what happens (a user call, a
socket's report, a timer, a hook finishing) into an input of its
:class:`~statesock.core.ConnectionCore`, and carries out the effects the core returns:
opening and closing sockets through the :class:`~statesock.engine.WebSocketEngine`, timers
with ``loop.call_at``, hooks in tasks it cancels when the core says so, waiters, the send
buffer's writes. It also decodes messages and hands events to its
:class:`~statesock.subscriptions.Fanout`.

Delivery: see :mod:`statesock.subscriptions`. By default nothing is lost: a full subscriber
makes the client stop reading (TCP then slows the server), and while it does, the pong
deadline does not run, because the silence would be the app's, not the peer's.

``send()`` returns once the message is written to the socket (handed to the OS), not once
the server has it. In authenticating, messages sent by the auth hook (or with
``handshake=True``) go straight out; with a send buffer, other messages wait behind the
buffered ones and are written in order once connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar, Unpack, overload

from . import core as c
from .engine import SocketHandle, WebSocketEngine, send_failure
from .events import ConnectionAckEvent, HealthCheckInfo, HealthCheckPongEvent, ServerErrorEvent
from .exceptions import (
    ClientClosed,
    ConnectFailed,
    ConnectionEnded,
    ConnectionFailure,
    NotConnectedError,
    SendAbandoned,
    SendExpired,
    TokenUnavailable,
)
from .machine import ConnectionSnapshot, ConnectionState, Listener, Record, StateChange
from .ping import build_health_check, default_ping_request
from .redaction import redact_url
from .settings import ClientOptions, ClientSettings
from .sources import DisconnectionSource, UserInitiated
from .stats import ClientStats
from .subscriptions import Fanout, Overflow, Subscription
from .timers import Timers
from .transition_log import TransitionLogger, emit, websockets_logger
from .waiters import Waiters

if TYPE_CHECKING:
    from typing_extensions import TypeForm

__all__ = ["ClientStats", "WebSocketClient"]  # ClientStats: see statesock.stats

T = TypeVar("T")
_CONTROL = (HealthCheckPongEvent, ConnectionAckEvent, ServerErrorEvent)
_labels = itertools.count(1)
# Set in the auth hook's task: its sends are part of the handshake.
_in_handshake: ContextVar[bool] = ContextVar("statesock_in_handshake", default=False)


class WebSocketClient:
    """A WebSocket connection whose lifecycle is an explicit state machine.

    ``event_decoder`` maps each message (str or bytes) to an event. Map the server's
    connection ack to :class:`ConnectionAckEvent`, its health-check answers to
    :class:`HealthCheckPongEvent` (which also counts as the ack when the server uses the
    same message for both), and in-band errors to :class:`ServerErrorEvent`. A decoder that
    raises is logged and counted and the connection stays up; None skips the message.

    ``on_connection_established(client)`` runs in authenticating (send the auth message
    there); the ack completes authentication. With ``ack_required=False`` the client is
    connected as soon as that hook has finished. ``on_connected(client)`` runs once
    connected. Hooks and ``on()`` callbacks may be sync or async; one that raises is logged
    and never kills the client. Every setting is checked here, at construction (see
    :class:`~statesock.settings.ClientSettings`).
    """

    def __init__(
        self,
        url: str,
        event_decoder: Callable[[str | bytes], Any],
        ping_request_builder: Callable[[HealthCheckInfo], Any] | None = default_ping_request,
        on_connection_established: Callable[[WebSocketClient], Any] | None = None,
        on_connected: Callable[[WebSocketClient], Any] | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        settings = ClientSettings.check(
            url, event_decoder, ping_request_builder, on_connection_established, on_connected,
            **options,
        )  # fmt: skip
        self.settings = settings
        self.label = settings.label or f"ws-{next(_labels)}"
        self.url = url
        self.event_decoder = event_decoder
        self.ping_request_builder = ping_request_builder
        self.on_connection_established = on_connection_established
        self.on_connected = on_connected
        self.token: str | None = None
        self.subprotocol: str | None = None
        self.stats = ClientStats(label=self.label)
        fetch_token = self._fetch_token if settings.token_provider else None
        self._engine = WebSocketEngine(
            settings.engine_config(url, fetch_token, websockets_logger(self.label)), self.label
        )
        try:
            created_at: float | None = asyncio.get_running_loop().time()
        except RuntimeError:  # made before the loop runs: its clock starts with the first use
            created_at = None
        self._core = c.ConnectionCore(
            settings.core_config(on_connection_established, on_connected),
            now=created_at,
            on_listener_error=self.stats.listener_failed,
        )
        self._core.machine.add_listener(TransitionLogger(self.label))
        self._core.machine.add_listener(self._feed_state_streams)
        self._fanout = Fanout(
            queue_size=settings.event_queue_size,
            on_drop=self.stats.dropped,
            on_callback_error=self.stats.callback_failed,
        )
        self._state_streams: list[Subscription[StateChange]] = []
        self._sockets: dict[int, SocketHandle] = {}
        self._timers = Timers(self._timer_fired)
        self._hooks: dict[c.Hook, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiters = Waiters()
        self._done_waiters: list[asyncio.Future[DisconnectionSource | None]] = []
        self._outgoing: dict[int, str | bytes] = {}  # buffered messages, by waiter number
        self._last_frame_at: float | None = None
        self._protocol_ping_sent = False
        self._clock: Callable[[], float] = time.monotonic
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- reading ---------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionSnapshot:
        """An immutable snapshot: state, disconnection source, health-check info."""
        return self._core.machine.snapshot()

    @property
    def health(self) -> HealthCheckInfo:
        return self._core.machine.health

    @property
    def closed(self) -> bool:
        return self._core.closed

    @property
    def done(self) -> bool:
        """Nothing will reconnect the client (closed, user disconnect, no or failed recovery)."""
        return self._core.done

    @property
    def final_source(self) -> DisconnectionSource | None:
        """Why the client is done (None while it is not)."""
        return self._core.final_source

    @property
    def unclaimed_events(self) -> int:
        """Events that arrived while no subscription or ``on()`` callback matched them."""
        return self._fanout.unclaimed

    def add_listener(self, listener: Listener) -> None:
        """Receive every record (changes and internal transitions) synchronously, in order."""
        self._core.machine.add_listener(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._core.machine.remove_listener(listener)

    async def wait_for(self, state: ConnectionState) -> ConnectionSnapshot:
        """Return as soon as the client is in ``state`` (at once if it is already there)."""
        if self._core.state is state:
            return self.state
        reached: asyncio.Future[ConnectionSnapshot] = asyncio.get_running_loop().create_future()

        def listen(record: Record) -> None:
            if isinstance(record, StateChange) and record.current is state and not reached.done():
                reached.set_result(self.state)

        self.add_listener(listen)
        try:
            return await reached
        finally:
            self.remove_listener(listen)

    async def wait_done(self) -> DisconnectionSource | None:
        """Wait until the client is done; return the final disconnection source."""
        if self._core.done:
            return self._core.final_source
        waiter: asyncio.Future[DisconnectionSource | None] = self._loop_now().create_future()
        self._done_waiters.append(waiter)
        try:
            return await waiter
        finally:
            if waiter in self._done_waiters:  # cancelled: leave nothing behind
                self._done_waiters.remove(waiter)

    async def run(self) -> None:
        """Connect and stay until the client is done; the whole life of an app's connection.

        Returns when the user ended it (``disconnect()`` or ``close()`` from another task);
        raises :class:`ConnectionEnded` with the final source when nothing will reconnect it
        (no recovery handler, or recovery gave up). A failed first attempt that recovery
        retries does not end it.
        """
        with contextlib.suppress(ConnectFailed):
            await self.connect()
        source = await self.wait_done()
        if source is not None and not isinstance(source, UserInitiated) and not self.closed:
            raise ConnectionEnded(source)

    def states(self) -> Subscription[StateChange]:
        """Every state change from now on; ends when the client is done.

        Records arrive synchronously and cannot wait for a reader: a stream that falls
        ``event_queue_size`` records behind loses its oldest (counted in ``dropped``).
        """
        sub: Subscription[StateChange] = Subscription(
            self.settings.event_queue_size,
            Overflow.DROP_OLDEST,
            on_drop=self.stats.dropped,
            on_close=self._state_streams_remove,
        )
        if self._core.closed:
            sub.end(self._core.final_source)
        else:
            self._state_streams.append(sub)
        return sub

    @overload
    def events(
        self, event_type: None = None, *, maxsize: int | None = ..., overflow: Overflow = ...
    ) -> Subscription[Any]: ...
    @overload
    def events(
        self, event_type: type[T], *, maxsize: int | None = ..., overflow: Overflow = ...
    ) -> Subscription[T]: ...
    @overload
    def events(
        self,
        event_type: tuple[type[Any], ...],
        *,
        maxsize: int | None = ...,
        overflow: Overflow = ...,
    ) -> Subscription[Any]: ...
    @overload
    def events(  # ``A | B``: Subscription[A | B]
        self, event_type: TypeForm[T], *, maxsize: int | None = ..., overflow: Overflow = ...
    ) -> Subscription[T]: ...
    def events(
        self,
        event_type: Any = None,
        *,
        maxsize: int | None = None,
        overflow: Overflow = Overflow.BLOCK,
    ) -> Subscription[Any]:
        """Every decoded event (matching ``event_type``: a class, tuple, ``A | B`` or None)
        from now on; ends when the client is done. Lossless unless ``overflow`` says to drop.
        Use ``async with client.events(...) as events:`` so that leaving the loop unsubscribes.
        """
        return self._fanout.subscribe(event_type, maxsize=maxsize, overflow=overflow)

    @overload
    def on(self, event_type: type[T], callback: Callable[[T], object]) -> Callable[[], None]: ...
    @overload
    def on(
        self, event_type: TypeForm[T], callback: Callable[[T], object]
    ) -> Callable[[], None]: ...
    @overload
    def on(self, event_type: Any, callback: Callable[[Any], object]) -> Callable[[], None]: ...
    def on(self, event_type: Any, callback: Callable[[Any], object]) -> Callable[[], None]:
        """Call ``callback`` for each event of ``event_type`` (None: all); returns an undo."""
        return self._fanout.on(event_type, callback)

    # -- commands ---------------------------------------------------------------------------

    async def connect(self) -> ConnectionSnapshot:
        """Connect (a no-op while already active) and wait until connected.

        Raises :class:`ConnectFailed` when the attempt ends in disconnected (with a
        recovery handler made with ``retry_first_connect=True``: when recovery gives up).
        Cancelling the caller does not cancel the attempt.
        """
        if self._core.closed:
            raise ClientClosed(f"client {self.label} is closed")
        self._loop_now()
        if self._core.done:
            self._fanout.reopen()  # connected again: new subscriptions are live
        self._fanout.start()  # async on() callbacks registered before the loop ran
        waiter = self._waiters.add()
        self._step(c.UserConnect(waiter))
        snapshot: ConnectionSnapshot = await self._waiters.wait(waiter)
        return snapshot

    async def disconnect(self) -> ConnectionSnapshot:
        """Close with 1000 and wait for disconnected (bounded by ``close_timeout`` + 1 s).

        A user disconnect sticks: nothing reconnects until the user connects again.
        """
        if self._core.state is not ConnectionState.INITIALIZED:
            # Nothing will reconnect the client now: its streams end (as they would once it
            # is disconnected), so a full subscriber cannot keep it from reading the close.
            self._fanout.end_all(UserInitiated())
        await self._wait_disconnect(c.UserDisconnect)
        return self.state

    async def close(self) -> None:
        """Disconnect (user), end every stream, and leave no task running.

        Streams end first: what they hold can still be read, nothing more is added, and a
        subscriber left full (a loop left with ``break``) no longer stops the client from
        reading the server's close frame.
        """
        if not self._core.closed:
            self._fanout.end_all(self._core.final_source if self._core.done else UserInitiated())
            await self._wait_disconnect(c.UserClose)
        self._timers.cancel_all()
        for hook in list(self._hooks.values()):
            hook.cancel()
        await self._engine.aclose()
        await self._fanout.aclose(self.settings.close_timeout)
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def send(self, message: Any, *, handshake: bool = False) -> None:
        """Send ``message`` (str or bytes as is, anything else through ``message_encoder``).

        Returns once it is written to the socket. Raises :class:`NotConnectedError` outside
        authenticating and connected unless a send buffer is attached (then it waits for the
        next connection and raises a :class:`~statesock.exceptions.SendBufferError` subclass
        if it is never written).
        """
        route, refusal = self._core.send_route(handshake or _in_handshake.get())
        if route is c.SendRoute.REFUSE:
            assert refusal is not None
            raise refusal
        data = message if isinstance(message, str | bytes) else self.settings.encoder(message)
        if route is c.SendRoute.DIRECT:
            send = self._sockets[self._core.socket or 0].raw_send
            if send is None:
                raise NotConnectedError(self._core.state.value)
            try:
                await send(data)
            except Exception as exc:  # mapped here, not in another coroutine layer
                failure = send_failure(exc)
                if failure is exc:
                    raise
                raise failure from exc
            return
        number = self._waiters.add()
        self._outgoing[number] = data
        self._step(c.BufferSend(number))
        try:
            await self._waiters.wait(number)
        except asyncio.CancelledError:
            self._step(c.SendCancelled(number))
            raise
        finally:
            self._outgoing.pop(number, None)

    async def __aenter__(self) -> WebSocketClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- socket reports (SocketListener) ----------------------------------------------------

    def socket_opened(self, handle: SocketHandle) -> None:
        self.subprotocol = handle.subprotocol
        self._step(c.SocketOpened(handle.id))

    def socket_alive(self, handle: SocketHandle, pong: bool) -> None:
        if handle.id != self._core.socket:
            return
        self._last_frame_at = self._clock()
        if pong and self._protocol_ping_sent:  # the answer to our protocol health check
            self._protocol_ping_sent = False
            self._step(c.HealthAnswered(handle.id, None, ack=False))

    def socket_message(self, handle: SocketHandle, data: str | bytes) -> Awaitable[None] | None:
        # The per-message hot path: a number compare, a clock read, the decoder, dispatch.
        if handle.id != self._core.socket:
            return None
        self._last_frame_at = self._clock()
        self.stats.messages_received += 1
        try:
            event = self.event_decoder(data)
        except Exception as exc:
            self.stats.decode_failed(exc, data)
            return None
        if event is None:
            self.stats.ignored_messages += 1
            return None
        if isinstance(event, _CONTROL):
            self._control(handle.id, event)
        pending = self._fanout.dispatch(event)
        return None if pending is None else self._backpressure(handle.id, pending)

    def socket_closed(
        self, handle: SocketHandle, code: int | None, reason: str, error: ConnectionFailure | None
    ) -> None:
        self._sockets.pop(handle.id, None)
        self._step(c.SocketClosed(handle.id, code, reason, error))

    def _control(self, socket: int, event: object) -> None:
        if isinstance(event, ServerErrorEvent):
            self._step(c.ServerErrorReceived(socket, event))
        elif isinstance(event, ConnectionAckEvent):
            self._step(c.HealthAnswered(socket, event.connection_id, ack=True))
        elif isinstance(event, HealthCheckPongEvent):
            self._step(c.HealthAnswered(socket, event.connection_id, ack=None))

    async def _backpressure(self, socket: int, pending: Awaitable[None]) -> None:
        self._step(c.ReadingPaused(socket))
        try:
            await pending
        finally:
            self._step(c.ReadingResumed(socket))

    # -- the core's effects -----------------------------------------------------------------

    def _step(self, event: c.Input) -> None:
        for effect in self._core.step(event, self._loop_time()):
            _EFFECTS[type(effect)](self, effect)

    def _open_socket(self, effect: c.OpenSocket) -> None:
        self._last_frame_at = None
        loop = self._loop_now()
        # The default loop's clock is time.monotonic: call it directly, once per message.
        default_clock = type(loop).time is asyncio.BaseEventLoop.time
        self._clock = time.monotonic if default_clock else loop.time
        self._sockets[effect.socket] = self._engine.open(self, effect.socket)

    def _close_socket(self, effect: c.CloseSocket) -> None:
        handle = self._sockets.get(effect.socket)
        if handle is not None:
            handle.close(effect.code, effect.reason, effect.timeout)

    def _abort_socket(self, effect: c.AbortSocket) -> None:
        handle = self._sockets.pop(effect.socket, None)
        if handle is not None:
            handle.abort()

    def _start_timer(self, effect: c.StartTimer) -> None:
        self._timers.start(self._loop_now(), effect.timer, effect.at)

    def _cancel_timer(self, effect: c.CancelTimer) -> None:
        self._timers.cancel(effect.timer)

    def _timer_fired(self, timer: c.TimerKind) -> None:
        self._step(c.TimerFired(timer, self._last_frame_at))

    def _send_health_check(self, effect: c.SendHealthCheck) -> None:
        handle = self._sockets.get(effect.socket)
        if handle is None:
            return
        data = build_health_check(
            self.ping_request_builder,
            self.settings.encoder,
            effect.health,
            self.stats.callback_failed,
        )
        # None is a protocol Ping: its Pong comes back through socket_alive().
        self._protocol_ping_sent = data is None
        if not handle.write_now(data) and data is not None:
            self._spawn(self._quietly(handle.send(data)), "health-check")

    def _run_hook(self, effect: c.RunHook) -> None:
        hook = effect.hook
        fn = self.on_connection_established
        if hook is c.Hook.ON_CONNECTED:
            fn = self.on_connected
        assert fn is not None
        self._hooks[hook] = self._spawn(self._hook(effect.socket, hook, fn), hook.value)

    async def _hook(self, socket: int, hook: c.Hook, fn: Callable[[WebSocketClient], Any]) -> None:
        _in_handshake.set(hook is c.Hook.ON_CONNECTION_ESTABLISHED)
        try:
            result = fn(self)
            if inspect.isawaitable(result):
                await result
        except (ConnectionFailure, NotConnectedError) as exc:
            # The socket went away under the hook: not a bug in the hook.
            emit("info", "hook_interrupted", client=self.label, hook=hook.value, error=str(exc))
        except Exception as exc:
            self.stats.callback_failed(exc, hook.value)
        if self._hooks.get(hook) is asyncio.current_task():
            del self._hooks[hook]
        self._step(c.HookFinished(socket, hook))

    def _cancel_hook(self, effect: c.CancelHook) -> None:
        task = self._hooks.pop(effect.hook, None)
        if task is not None:
            task.cancel("statesock: its socket went away")

    def _resolve_connect(self, effect: c.ResolveConnect) -> None:
        error: Exception | None = None
        if effect.closed:
            error = ClientClosed(f"client {self.label} is closed")
        elif effect.source is not None:
            error = ConnectFailed(effect.source)
        for waiter in effect.waiters:
            self._waiters.settle(waiter, self.state, error)

    def _resolve_disconnect(self, effect: c.ResolveDisconnect) -> None:
        for waiter in effect.waiters:
            self._waiters.settle(waiter)

    def _write_buffered(self, effect: c.WriteBuffered) -> None:
        data = self._outgoing[effect.message]
        handle = self._sockets[effect.socket]
        self._spawn(self._write(handle, effect.message, data), "flush")

    async def _write(self, handle: SocketHandle, message: int, data: str | bytes) -> None:
        try:
            await handle.send(data)
        except (ConnectionFailure, NotConnectedError):
            self._step(c.SendWritten(message, ok=False))
        else:
            self._step(c.SendWritten(message, ok=True))

    def _resolve_send(self, effect: c.ResolveSend) -> None:
        if isinstance(effect.error, SendExpired):
            self.stats.sends_expired += 1
        elif isinstance(effect.error, SendAbandoned):
            self.stats.sends_abandoned += 1
        self._waiters.settle(effect.message, None, effect.error)

    def _finished(self, effect: c.Finished) -> None:
        self._fanout.end_all(effect.source)
        streams, self._state_streams = self._state_streams, []
        for sub in streams:
            sub.end(effect.source)
        waiters, self._done_waiters = self._done_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(effect.source)

    def _log(self, effect: c.Log) -> None:
        emit(effect.level, effect.event, client=self.label, **dict(effect.fields))

    def _report_error(self, effect: c.ReportError) -> None:
        self.stats.callback_failed(effect.error, effect.where)

    # -- helpers ----------------------------------------------------------------------------

    async def _wait_disconnect(self, command: type[c.UserDisconnect] | type[c.UserClose]) -> None:
        self._loop_now()
        waiter = self._waiters.add()
        self._step(command(waiter))
        await self._waiters.wait(waiter)

    def _state_streams_remove(self, sub: Subscription[Any]) -> None:
        if sub in self._state_streams:
            self._state_streams.remove(sub)

    def _feed_state_streams(self, record: Record) -> None:
        if isinstance(record, StateChange):
            for sub in self._state_streams:
                sub.offer(record)

    async def _fetch_token(self) -> None:
        provider = self.settings.token_provider
        assert provider is not None
        try:
            token = provider()
            self.token = await token if inspect.isawaitable(token) else token
        except Exception as exc:
            raise TokenUnavailable(f"token provider failed: {type(exc).__name__}") from exc

    def _loop_now(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        self._loop = loop
        return loop

    def _loop_time(self) -> float:
        loop = self._loop
        if loop is None or loop.is_closed():
            try:
                loop = self._loop_now()
            except RuntimeError:  # set up before the loop runs: time has not started
                return self._core.now
        return loop.time()

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(f"statesock-{name}-{self.label}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _quietly(self, send: Awaitable[None]) -> None:
        with contextlib.suppress(ConnectionFailure, NotConnectedError):
            await send

    def __repr__(self) -> str:
        return f"<WebSocketClient {self.label} {redact_url(self.url)} {self._core.state.value}>"


_EFFECTS: dict[type, Callable[[WebSocketClient, Any], None]] = {
    c.OpenSocket: WebSocketClient._open_socket,
    c.CloseSocket: WebSocketClient._close_socket,
    c.AbortSocket: WebSocketClient._abort_socket,
    c.StartTimer: WebSocketClient._start_timer,
    c.CancelTimer: WebSocketClient._cancel_timer,
    c.SendHealthCheck: WebSocketClient._send_health_check,
    c.RunHook: WebSocketClient._run_hook,
    c.CancelHook: WebSocketClient._cancel_hook,
    c.ResolveConnect: WebSocketClient._resolve_connect,
    c.ResolveDisconnect: WebSocketClient._resolve_disconnect,
    c.WriteBuffered: WebSocketClient._write_buffered,
    c.ResolveSend: WebSocketClient._resolve_send,
    c.Finished: WebSocketClient._finished,
    c.Log: WebSocketClient._log,
    c.ReportError: WebSocketClient._report_error,
}
