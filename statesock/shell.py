"""The asyncio shell under :class:`~statesock.client.WebSocketClient`: it carries out what the
core decided and turns what happened into the core's inputs. It decides nothing.

The shell owns the I/O of one client: the transport's :class:`~statesock.engine.Engine` and a
handle per socket, the timers (``loop.call_at``), the hooks' tasks, the waiters of
``connect()``, ``disconnect()`` and buffered sends, the event fan-out and the record
listeners. Each input goes through :meth:`Shell._step`, which hands it to
:meth:`ConnectionCore.step <statesock.core.ConnectionCore.step>`, delivers the records that
step produced, then carries out its effects, in order.

Re-entrancy, the one rule: an input that arrives while a step is being delivered or carried
out (a listener that calls ``recovery.pause()``, a hook that finishes at once, a protocol Ping
reported as sent) is queued and stepped right after the current one, by the same call. So
every listener sees the records in ``seq`` order, and the effects of two steps never
interleave.

:class:`RecoveryLink` is the seam through which a recovery handler feeds the core.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, assert_never

from . import core_io as io
from .core import ConnectionCore, RecoveryState
from .engine import SocketHandle, make_engine
from .events import ConnectionAckEvent, HealthCheckPongEvent, ServerErrorEvent
from .exceptions import (
    ClientClosed,
    ConnectFailed,
    ConnectionFailure,
    NotConnectedError,
    SendAbandoned,
    SendExpired,
    TokenUnavailable,
)
from .log_schema import LogEvent
from .machine import Listener, Record, StateChange
from .metrics import client_metrics
from .ping import build_health_check
from .settings import ClientSettings
from .sources import DisconnectionSource
from .stats import ClientStats
from .subscriptions import Fanout, Subscription
from .timers import Timers
from .transition_log import TransitionLogger, emit, websockets_logger
from .waiters import Waiters

# A hook takes the client (a WebSocketClient: named loosely here, which is the shell's base
# class, so that this module need not import the client's).
HookFn = Callable[[Any], Any]

__all__ = ["RecoveryLink", "Shell"]

_CONTROL = (HealthCheckPongEvent, ConnectionAckEvent, ServerErrorEvent)
# Set in the auth hook's task: its sends are part of the handshake.
in_handshake: ContextVar[bool] = ContextVar("statesock_in_handshake", default=False)


class RecoveryLink:
    """A recovery handler's seam into one client (from ``client.attach_recovery()``).

    It feeds the core what the handler watches (the network, the app's pause and resume)
    and reads back what the core decided (:attr:`state`). ``detach()`` ends it; afterwards
    every call does nothing.
    """

    __slots__ = ("_shell",)

    def __init__(self, shell: Shell) -> None:
        self._shell: Shell | None = shell

    @property
    def state(self) -> RecoveryState | None:
        """The core's recovery state (attempt, reconnects, gave_up, ...), None once detached."""
        return self._shell._core.recovery if self._shell is not None else None

    def network_changed(self, available: bool) -> None:
        if self._shell is not None:
            self._shell._step(io.NetworkChanged(bool(available)))

    def pause(self) -> None:
        if self._shell is not None:
            self._shell._step(io.AppPaused())

    def resume(self) -> None:
        if self._shell is not None:
            self._shell._step(io.AppResumed())

    def detach(self) -> None:
        """Stop recovering: the core cancels its timers and settles the send buffer."""
        shell, self._shell = self._shell, None
        if shell is not None:
            shell._step(io.DetachRecovery())


class Shell:
    """The I/O half of a client (see the module docstring); ``WebSocketClient`` is the rest."""

    # A client's attributes in slots: an instance dict of thirty keys cost about 1.5 KiB per
    # client, more than half of what statesock adds to the socket it wraps.
    __slots__ = (
        "_clock", "_core", "_done_waiters", "_engine", "_fanout", "_handle", "_hooks",
        "_last_frame_at", "_listeners", "_log_record", "_loop", "_metrics", "_outgoing",
        "_paused_at", "_queued", "_state_streams", "_stepping", "_tasks", "_timers", "_waiters",
        "event_decoder", "label", "on_connected", "on_connection_established",
        "ping_request_builder", "settings", "stats", "subprotocol", "token",
    )  # fmt: skip

    settings: ClientSettings
    label: str
    stats: ClientStats
    event_decoder: Callable[[str | bytes], Any]
    ping_request_builder: Callable[..., Any] | None
    on_connection_established: HookFn | None
    on_connected: HookFn | None
    token: str | None
    subprotocol: str | None

    def _start_shell(self, url: str) -> None:
        settings = self.settings
        fetch_token = self._fetch_token if settings.token_provider else None
        self._engine = make_engine(
            settings.engine_config(url, fetch_token, websockets_logger(self.label)),
            self.label,
            settings.transport,
        )
        try:
            created_at: float | None = asyncio.get_running_loop().time()
        except RuntimeError:  # made before the loop runs: its clock starts with the first use
            created_at = None
        self._core = ConnectionCore(
            settings.core_config(self.on_connection_established, self.on_connected),
            now=created_at,
        )
        self._log_record = TransitionLogger(self.label)
        # Per-client containers cost memory on every idle client: those that are rarely
        # changed are tuples, replaced on change (and iterated without a copy), and the task
        # set is made by the first task.
        self._listeners: tuple[Listener, ...] = ()
        self._fanout = Fanout(
            queue_size=settings.event_queue_size,
            on_drop=self.stats.dropped,
            on_callback_error=self.stats.callback_failed,
            stall_timeout=settings.stall_timeout,
            on_stall=self.stats.subscriber_stalled,
            clock=self._frame_time,
        )
        self.stats.probe = self._waiting_for_subscribers
        self._fanout.uncounted = _CONTROL
        self._state_streams: tuple[Subscription[StateChange], ...] = ()
        # The core's current socket: it has one at a time, and it addresses no other (one it
        # gave up is aborted and forgotten here at once).
        self._handle: SocketHandle | None = None
        self._timers = Timers(self._timer_fired)
        self._hooks: dict[io.Hook, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] | None = None
        self._waiters = Waiters()
        self._done_waiters: tuple[asyncio.Future[DisconnectionSource | None], ...] = ()
        self._outgoing: dict[int, str | bytes] = {}  # buffered messages, by waiter number
        self._queued: list[io.Input] = []
        self._stepping = False
        self._last_frame_at: float | None = None
        self._paused_at: float | None = None  # when reading stopped for a full subscriber
        self._clock: Callable[[], float] = time.monotonic
        self._loop: asyncio.AbstractEventLoop | None = None
        # OpenTelemetry metrics (statesock.metrics): None without the statesock[otel] extra.
        self._metrics = client_metrics(
            self.label, self.stats, self._core.machine, settings.meter_provider
        )

    # -- socket reports (engine.SocketListener) ---------------------------------------------

    def socket_opened(self, handle: SocketHandle) -> None:
        self.subprotocol = handle.subprotocol
        self._step(io.SocketOpened(handle.id))

    def socket_alive(self, handle: SocketHandle, pong: bool) -> None:
        if not self._core.is_current(handle.id):
            return
        self._last_frame_at = self._clock()
        if pong:  # the core knows whether it answers a health check
            self._step(io.ProtocolPong(handle.id))

    def socket_message(self, handle: SocketHandle, data: str | bytes) -> Awaitable[None] | None:
        # The per-message hot path: a socket check, a clock read, the decoder, dispatch.
        if not self._core.is_current(handle.id):
            return None
        self._last_frame_at = self._clock()
        stats = self.stats
        stats.messages_received += 1
        if isinstance(data, bytes) or data.isascii():
            stats.bytes_received += len(data)
        else:
            stats.bytes_received += len(data.encode())
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
        if self._handle is handle:
            self._handle = None
        self._step(io.SocketClosed(handle.id, code, reason, error))

    def _control(self, socket: int, event: object) -> None:
        # The three types share no instance (their slots conflict): a pong, the usual, first.
        if isinstance(event, HealthCheckPongEvent):
            self._step(io.HealthAnswered(socket, event.connection_id, io.Answer.ACK_OR_PONG))
        elif isinstance(event, ServerErrorEvent):
            self._step(io.ServerErrorReceived(socket, event))
        elif isinstance(event, ConnectionAckEvent):
            self._step(io.HealthAnswered(socket, event.connection_id, io.Answer.ACK))

    async def _backpressure(self, socket: int, pending: Awaitable[None]) -> None:
        self._paused_at = self._clock()
        self._step(io.ReadingPaused(socket))
        try:
            await pending
        finally:
            self._paused_at = None
            self._step(io.ReadingResumed(socket))

    def _waiting_for_subscribers(self) -> tuple[float, float]:
        """(seconds reading has been paused, age of the oldest undelivered event)."""
        now = self._clock()
        paused_at, oldest = self._paused_at, self._fanout.oldest_undelivered()
        return (
            now - paused_at if paused_at is not None else 0.0,
            now - oldest if oldest is not None else 0.0,
        )

    # -- stepping ---------------------------------------------------------------------------

    def _step(self, event: io.Input) -> None:
        """Step the core, deliver its records, carry out its effects (the re-entrancy rule:
        see the module docstring)."""
        queued = self._queued
        if self._stepping:
            queued.append(event)
            return
        if queued:  # left by a step that raised: they go first, in order
            queued.append(event)
            event = queued.pop(0)
        self._stepping = True
        try:
            core = self._core
            while True:
                step = core.step(event, self._loop_time())
                if step.records:
                    self._deliver(step.records)
                for effect in step.effects:
                    self._carry_out(effect)
                if not queued:
                    break
                event = queued.pop(0)
        finally:
            self._stepping = False

    def _deliver(self, records: list[Record]) -> None:
        """The transition log first (never user code), then state streams, then listeners;
        a listener that raises is logged and counted, and the others still get the record."""
        metrics = self._metrics
        for record in records:
            self._log_record(record)
            if metrics is not None:
                metrics.record(record)
            if isinstance(record, StateChange):
                if record.reconnect:
                    self.stats.reconnects += 1
                for sub in self._state_streams:
                    sub.offer(record)
            for listener in self._listeners:
                try:
                    listener(record)
                except Exception as exc:
                    self.stats.listener_failed(exc, record, listener)

    def _carry_out(self, effect: io.Effect) -> None:
        # A health check's effects first: a class pattern is an isinstance check, in order.
        match effect:
            case io.StartTimer():
                loop = self._loop = asyncio.get_running_loop()  # as _loop_now(), inline
                self._timers.start(loop, effect.timer, effect.at)
            case io.CancelTimer():
                self._timers.cancel(effect.timer)
            case io.SendHealthCheck():
                self._send_health_check(effect)
            case io.OpenSocket():
                self._open_socket(effect)
            case io.CloseSocket():
                handle = self._socket(effect.socket)
                if handle is not None:
                    handle.close(effect.code, effect.reason, effect.timeout)
            case io.AbortSocket():
                aborted = self._socket(effect.socket)
                if aborted is not None:
                    self._handle = None
                    aborted.abort()
            case io.RunHook():
                self._run_hook(effect)
            case io.CancelHook():
                task = self._hooks.pop(effect.hook, None)
                if task is not None:
                    task.cancel("statesock: its socket went away")
            case io.ResolveConnect():
                self._resolve_connect(effect)
            case io.ResolveDisconnect():
                for waiter in effect.waiters:
                    self._waiters.settle(waiter)
            case io.WriteBuffered():
                data = self._outgoing[effect.message]
                handle = self._socket(effect.socket)
                assert handle is not None  # the core writes only to the current socket
                self._spawn(self._write(handle, effect.message, data), "flush")
            case io.ResolveSend():
                self._resolve_send(effect)
            case io.EndStreams():
                self._fanout.end_streams(effect.source)
            case io.Finished():
                self._finished(effect)
            case io.Reopened():
                self._fanout.reopen()
            case io.Log():
                emit(effect.level, effect.event, client=self.label, **dict(effect.fields))
            case io.ReportError():
                self.stats.callback_failed(effect.error, effect.where)
            case _:
                assert_never(effect)

    # -- effects ----------------------------------------------------------------------------

    def _open_socket(self, effect: io.OpenSocket) -> None:
        self._last_frame_at = None
        self._clock = _frame_clock(self._loop_now())
        self._handle = self._engine.open(self, effect.socket)

    def _timer_fired(self, timer: io.TimerKind) -> None:
        self._step(io.TimerFired(timer, self._last_frame_at))

    def _send_health_check(self, effect: io.SendHealthCheck) -> None:
        handle = self._handle
        if handle is None or handle.id != effect.socket:
            return
        builder = self.ping_request_builder
        data: str | bytes | None = None  # no builder: a protocol Ping
        if builder is not None:
            data = build_health_check(
                builder, self.settings.encode, effect.health, self.stats.callback_failed
            )
        if self._metrics is not None:
            self._metrics.health_check_sent()
        if data is None:  # a protocol Ping: its Pong comes back through socket_alive()
            if handle.write_now(None):
                self._step(io.ProtocolPingSent(effect.socket))
        elif not handle.write_now(data):
            self._spawn(self._quietly(handle.send(data)), "health-check")

    def _run_hook(self, effect: io.RunHook) -> None:
        hook = effect.hook
        fn = self.on_connection_established
        if hook is io.Hook.ON_CONNECTED:
            fn = self.on_connected
        assert fn is not None
        self._hooks[hook] = self._spawn(self._hook(effect.socket, hook, fn), hook.value)

    async def _hook(self, socket: int, hook: io.Hook, fn: HookFn) -> None:
        in_handshake.set(hook is io.Hook.ON_CONNECTION_ESTABLISHED)
        try:
            result = fn(self)  # self is the WebSocketClient
            if inspect.isawaitable(result):
                await result
        except (ConnectionFailure, NotConnectedError) as exc:
            # The socket went away under the hook: not a bug in the hook.
            emit(
                "info", LogEvent.HOOK_INTERRUPTED, client=self.label, hook=hook.value,
                error=str(exc),
            )  # fmt: skip
        except Exception as exc:
            self.stats.callback_failed(exc, hook.value)
        if self._hooks.get(hook) is asyncio.current_task():
            del self._hooks[hook]
        self._step(io.HookFinished(socket, hook))

    def _resolve_connect(self, effect: io.ResolveConnect) -> None:
        error: Exception | None = None
        if effect.closed:
            error = ClientClosed(f"client {self.label} is closed")
        elif effect.source is not None:
            error = ConnectFailed(effect.source)
        snapshot = self._core.machine.snapshot()
        for waiter in effect.waiters:
            self._waiters.settle(waiter, snapshot, error)

    async def _write(self, handle: SocketHandle, message: int, data: str | bytes) -> None:
        try:
            await handle.send(data)
        except (ConnectionFailure, NotConnectedError):
            self._step(io.SendWritten(message, ok=False))
        else:
            self.stats.message_sent(data)
            self._step(io.SendWritten(message, ok=True))

    def _resolve_send(self, effect: io.ResolveSend) -> None:
        if isinstance(effect.error, SendExpired):
            self.stats.sends_expired += 1
        elif isinstance(effect.error, SendAbandoned):
            self.stats.sends_abandoned += 1
        if self._metrics is not None:
            self._metrics.send_resolved(effect.error)
        self._waiters.settle(effect.message, None, effect.error)

    def _finished(self, effect: io.Finished) -> None:
        self._fanout.end_all(effect.source)
        streams, self._state_streams = self._state_streams, ()
        for sub in streams:
            sub.end(effect.source)
        waiters, self._done_waiters = self._done_waiters, ()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(effect.source)

    # -- helpers ----------------------------------------------------------------------------

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

    def _socket(self, number: int) -> SocketHandle | None:
        handle = self._handle
        return handle if handle is not None and handle.id == number else None

    def _frame_time(self) -> float:
        # The fan-out's clock: a bound method (smaller than a closure), calling _clock, which
        # is replaced per socket.
        return self._clock()

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
        tasks = self._tasks
        if tasks is None:
            tasks = self._tasks = set()
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    async def _quietly(self, send: Awaitable[None]) -> None:
        with contextlib.suppress(ConnectionFailure, NotConnectedError):
            await send


def _frame_clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """The clock that stamps each frame's arrival (read once per message).

    A loop whose clock is the monotonic clock (asyncio's default loop; uvloop's, which ticks
    in milliseconds and is read once per iteration) gets ``time.monotonic``: full resolution,
    so an answer that comes back within the millisecond of its ping is still later than it.
    A loop with a clock of its own (virtual time) stamps frames with that clock.
    """
    if type(loop).time is asyncio.BaseEventLoop.time:
        return time.monotonic
    if abs(loop.time() - time.monotonic()) < 1.0:
        return time.monotonic
    return loop.time
