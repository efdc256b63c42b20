"""ConnectionCore: every decision about one connection, and nothing else.

Theory of operation
-------------------
The core is sans-I/O, in the style of websockets' ``protocol.py``: the asyncio shell
(:mod:`statesock.client`) feeds it typed *inputs* with :meth:`ConnectionCore.step` (a user
command, something a socket did, a timer that fired, the network or the app changing) and
carries out the frozen *effects* it returns, in order (open or close a socket, start or
cancel a timer, send a health check, run or cancel a hook, resolve waiters, write or settle a
buffered message, finish). The core imports no asyncio and no websockets and has no clock:
every input comes with ``now``.

The state itself lives in :class:`~statesock.machine.ConnectionMachine`, and the core changes
it only by firing the machine's triggers. What lives here is what the table cannot say:

* which socket is current. Sockets are numbered; an input tagged with another number is from
  a socket that is already gone, and is dropped (logged at debug). This is the only place
  that knows it.
* timers. Each state owns its deadlines (connecting: ``connect_timeout``; authenticating:
  ``auth_timeout``; connected: the health check and the idle deadline; disconnecting:
  ``close_timeout``). Leaving the state cancels them, so no timer outlives its socket.
  Health checks keep a fixed cadence from the moment of connecting, whatever the round
  trips were. One timer serves them: it is due at the next check or, while a check waits
  for its answer, at the pong deadline if that comes first; a pong moves it to the next
  check. (Two timers per check, the next one and the deadline, cost a process with
  thousands of clients one more timer each.)
* liveness. Any inbound frame proves the peer is alive (the shell passes the time of the last
  one with each timer); a pong deadline or an idle deadline does not run while the shell
  has stopped reading because the app is slow.
* hooks. The auth hook runs in authenticating, ``on_connected`` in connected; both are
  cancelled when their socket goes away or the auth deadline passes.
* recovery, when a :class:`RecoveryConfig` is attached: the policy, the retry strategy,
  the flapping guard (``stable_after``), the network and pause state, the one retry with a
  fresh token after an auth rejection, and the send buffer (order, time to live, exactly one
  outcome per message).
* the end. The client is *done* when it is closed, or disconnected with nothing left to
  reconnect it (no recovery, recovery gave up, or a user disconnect); the core then says so
  once with :class:`Finished` and the final source. Streams end only then, and when the user
  disconnects or closes (:class:`EndStreams`, ahead of the close, so that a full subscriber
  cannot hold the close up); a user connect after the end says :class:`Reopened`.

The core calls nobody. :meth:`ConnectionCore.step` returns a :class:`~statesock.core_io.Step`:
the effects and the machine's records of that one input, which the shell carries out and
delivers *after* the step, so nothing can re-enter the core while it decides. (The one
re-entrancy rule that remains is the shell's: see :mod:`statesock.shell`.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, TypeVar, assert_never

from .core_io import (
    CLOSE_GRACE,
    SOCKET_TIMERS,
    AbortSocket,
    Answer,
    AppPaused,
    AppResumed,
    AttachRecovery,
    BufferSend,
    CancelHook,
    CancelTimer,
    CloseSocket,
    CoreConfig,
    DetachRecovery,
    Effect,
    EndStreams,
    Finished,
    HealthAnswered,
    Hook,
    HookFinished,
    Input,
    Log,
    NetworkChanged,
    OpenSocket,
    ProtocolPingSent,
    ProtocolPong,
    ReadingPaused,
    ReadingResumed,
    RecoveryConfig,
    Reopened,
    ReportError,
    ResolveConnect,
    ResolveDisconnect,
    ResolveSend,
    RunHook,
    SendCancelled,
    SendHealthCheck,
    SendRoute,
    SendWritten,
    ServerErrorReceived,
    SocketClosed,
    SocketOpened,
    StartTimer,
    Step,
    TimerFired,
    TimerKind,
    UserClose,
    UserConnect,
    UserDisconnect,
    WriteBuffered,
    truncate_close_reason,
)
from .events import HealthCheckInfo
from .exceptions import (
    ClientClosed,
    NotConnectedError,
    SendAbandoned,
    SendBufferError,
    SendBufferFull,
    SendExpired,
    StatesockError,
)
from .log_schema import LogEvent
from .machine import ConnectionMachine, ConnectionState, Record, StateChange
from .sources import (
    DisconnectionSource,
    NoPongReceived,
    ServerInitiated,
    SystemInitiated,
    Timeout,
    UserInitiated,
    is_auth_rejection,
)

# The vocabulary (inputs, effects, configuration) lives in statesock.core_io.
__all__ = ["ConnectionCore", "RecoveryState"]


S = ConnectionState


@dataclass(slots=True)
class _Buffered:
    message: int
    expires_at: float
    writing: bool = False


@dataclass(slots=True)
class RecoveryState:
    config: RecoveryConfig
    network_available: bool = True
    paused: bool = False
    attempt: int = 0
    reconnects: int = 0
    gave_up: bool = False
    # A reconnect will follow: once the backoff timer fires, the network is back or the app
    # resumes (``retry_in`` is set only while the timer runs).
    reconnect_pending: bool = False
    retry_in: float | None = None
    token_retry_used: bool = False
    # A list: an empty deque takes 760 B, and every client with recovery holds this buffer.
    buffer: list[_Buffered] = field(default_factory=list)


_T = TypeVar("_T")


def _without(items: tuple[_T, ...], item: _T) -> tuple[_T, ...]:
    """``items`` without ``item``, which it holds (the removal of a set kept as a tuple)."""
    index = items.index(item)
    return items[:index] + items[index + 1 :]


class ConnectionCore:
    """One connection's decisions (see the module docstring)."""

    # Slots: a process may hold thousands of clients, and a __dict__ is a kilobyte each.
    __slots__ = (
        "_clock_started",
        "_closing",
        "_connect_waiters",
        "_connected_at",
        "_disconnect_waiters",
        "_effects",
        "_health_check_at",
        "_hooks",
        "_next_check_at",
        "_next_socket",
        "_now",
        "_ping_sent_at",
        "_pong_deadline_at",
        "_protocol_ping_sent",
        "_reading_paused",
        "_records",
        "_recovery",
        "_socket",
        "_timers",
        "closed",
        "config",
        "done",
        "final_source",
        "machine",
    )

    def __init__(self, config: CoreConfig, *, now: float | None = None) -> None:
        """``now``: the owner's time at creation; None when its clock is not running yet
        (then the time in initialized counts from the first input)."""
        self.config = config
        self._now = 0.0 if now is None else now
        self.machine = ConnectionMachine(self._clock)
        # What the step being handled produced; handed over (and replaced) when it returns.
        self._effects: list[Effect] = []
        self._records: list[Record] = []
        self._clock_started = now is not None
        self._socket: int | None = None
        self._next_socket = 0
        # Sets of a few members, as tuples replaced on change: an empty set takes 216 B, and
        # a process may hold thousands of clients.
        self._timers: tuple[TimerKind, ...] = ()
        self._hooks: tuple[Hook, ...] = ()
        self._connect_waiters: dict[int, bool] = {}  # waiter -> armed (an attempt started)
        self._disconnect_waiters: list[int] = []
        self._connected_at: float | None = None
        self._ping_sent_at: float | None = None
        # The health check's times while connected: the next check is due at
        # ``_next_check_at``; the outstanding one's answer at ``_pong_deadline_at`` (None
        # when none is outstanding, or reading is paused); the timer at ``_health_check_at``,
        # the earlier of the two (None when it is not armed).
        self._next_check_at: float | None = None
        self._pong_deadline_at: float | None = None
        self._health_check_at: float | None = None
        # The outstanding health check went out as a protocol Ping: its Pong answers it.
        self._protocol_ping_sent = False
        self._reading_paused = False
        self._recovery: RecoveryState | None = None
        self._closing = False
        self.closed = False
        self.done = False
        self.final_source: DisconnectionSource | None = None

    # -- reading ---------------------------------------------------------------------------

    def _clock(self) -> float:
        return self._now

    @property
    def now(self) -> float:
        """The latest time an input came with."""
        return self._now

    @property
    def state(self) -> ConnectionState:
        return self.machine.state

    @property
    def socket(self) -> int | None:
        """The number of the current socket (None when there is none)."""
        return self._socket

    def is_current(self, socket: int) -> bool:
        """Whether ``socket`` is the current socket: what the shell asks before it decodes a
        message (a query, not a step, to keep the per-message path cheap). Only the core
        knows; anything from another socket is from one that is already gone."""
        return socket == self._socket

    @property
    def timers(self) -> frozenset[TimerKind]:
        return frozenset(self._timers)

    @property
    def hooks(self) -> frozenset[Hook]:
        return frozenset(self._hooks)

    @property
    def recovery(self) -> RecoveryState | None:
        return self._recovery

    @property
    def pending_sends(self) -> int:
        return len(self._recovery.buffer) if self._recovery is not None else 0

    def send_route(self, handshake: bool = False) -> tuple[SendRoute, StatesockError | None]:
        """Where a ``send()`` goes now: written at once, buffered, or refused (with why).

        A message waits behind buffered ones so that order is kept; the auth hook's messages
        (``handshake``) go straight out in authenticating.
        """
        state = self.machine.state
        recovery = self._recovery
        buffering = recovery is not None and recovery.config.buffer_size > 0
        if self.closed or self._closing:
            return SendRoute.REFUSE, ClientClosed("the client is closed")
        if state is S.CONNECTED and not (buffering and recovery and recovery.buffer):
            return SendRoute.DIRECT, None
        if state is S.AUTHENTICATING and (handshake or not buffering):
            return SendRoute.DIRECT, None
        if buffering and recovery is not None:
            if self.done or recovery.gave_up:
                why = self.final_source.close_reason if self.final_source else "client done"
                return SendRoute.REFUSE, SendAbandoned(f"message not sent: {why}")
            return SendRoute.BUFFER, None
        return SendRoute.REFUSE, NotConnectedError(state.value)

    # -- the one entry point ---------------------------------------------------------------

    def step(self, event: Input, now: float) -> Step:
        """Handle ``event`` at time ``now``; return the effects to carry out, in order, and
        the records the machine produced, for the shell to deliver after the step."""
        if math.isfinite(now) and now > self._now:
            self._now = now
        if not self._clock_started:
            # The first input brings the first real time: initialized lasted from there.
            self._clock_started = True
            self.machine.start_clock(self._now)
        self._handle(event)
        step = Step(self._effects, self._records)
        self._effects = []
        self._records = []
        return step

    def _handle(self, event: Input) -> None:
        # The inputs of every health check and of reading come first: a class pattern is an
        # isinstance check, tried in order.
        match event:
            case TimerFired():
                self._on_timer(event)
            case ProtocolPong():
                self._on_protocol_pong(event)
            case ProtocolPingSent():
                self._on_protocol_ping_sent(event)
            case HealthAnswered():
                self._on_health_answered(event)
            case ReadingPaused():
                self._on_reading_paused(event)
            case ReadingResumed():
                self._on_reading_resumed(event)
            case UserConnect():
                self._on_user_connect(event)
            case UserDisconnect():
                self._on_user_disconnect(event)
            case UserClose():
                self._on_user_close(event)
            case SocketOpened():
                self._on_socket_opened(event)
            case ServerErrorReceived():
                self._on_server_error(event)
            case SocketClosed():
                self._on_socket_closed(event)
            case HookFinished():
                self._on_hook_finished(event)
            case NetworkChanged():
                self._on_network(event)
            case AppPaused():
                self._on_app_paused()
            case AppResumed():
                self._on_app_resumed()
            case AttachRecovery():
                self._on_attach(event)
            case DetachRecovery():
                self._on_detach()
            case BufferSend():
                self._on_buffer_send(event)
            case SendWritten():
                self._on_send_written(event)
            case SendCancelled():
                self._on_send_cancelled(event)
            case _:
                assert_never(event)

    # -- firing triggers -------------------------------------------------------------------

    def _fire(self, records: list[Record]) -> None:
        """React to the records a trigger just returned, in order, and keep them for the
        shell. A reaction may fire the next trigger (authenticating without an ack step goes
        straight on to connected): its records are reacted to at once, depth first, which
        is the same order, since each reaction fires at most one trigger, as its last act."""
        self._records += records
        for record in records:
            if isinstance(record, StateChange):
                self._entered(record)

    def _entered(self, record: StateChange) -> None:
        state = record.current
        if state is S.CONNECTING:
            self._cancel_timer(TimerKind.RECONNECT)
            recovery = self._recovery
            if recovery is not None:
                recovery.reconnect_pending = False
                recovery.retry_in = None
                if record.reconnect:
                    recovery.reconnects += 1
                else:  # the user connected: start afresh
                    recovery.gave_up = False
                    recovery.attempt = 0
                    recovery.token_retry_used = False
            if self.done:  # the user connected again after the end
                self._emit(Reopened())
            self.done = False
            self.final_source = None
            self._next_socket += 1
            self._socket = self._next_socket
            self._reading_paused = False
            for waiter in self._connect_waiters:
                self._connect_waiters[waiter] = True
            self._emit(OpenSocket(self._socket))
            self._start_timer(TimerKind.CONNECT_DEADLINE, self.config.connect_timeout)
        elif state is S.AUTHENTICATING:
            self._cancel_timer(TimerKind.CONNECT_DEADLINE)
            self._start_timer(TimerKind.AUTH_DEADLINE, self.config.auth_timeout)
            assert self._socket is not None
            if self.config.has_auth_hook:
                self._run_hook(Hook.ON_CONNECTION_ESTABLISHED)
            elif not self.config.ack_required:
                self._fire(self.machine.authenticated())
        elif state is S.CONNECTED:
            self._entered_connected()
        elif state is S.DISCONNECTING:
            self._socket_going()
            assert record.source is not None and self._socket is not None
            # A dead link will not answer a close handshake: do not wait for one.
            wait = 0.0 if isinstance(record.source, NoPongReceived) else self.config.close_timeout
            reason = truncate_close_reason(record.source.close_reason)
            self._emit(CloseSocket(self._socket, 1000, reason, wait))
            self._start_timer(TimerKind.CLOSE_DEADLINE, wait + CLOSE_GRACE)
        elif state is S.DISCONNECTED:
            self._socket_going()
            self._cancel_timer(TimerKind.CLOSE_DEADLINE)
            self._socket = None
            self._disconnected(record)

    def _entered_connected(self) -> None:
        self._cancel_timer(TimerKind.AUTH_DEADLINE)
        self._connected_at = self._now
        config = self.config
        if config.ping_interval is not None:
            self._next_check_at = self._now + config.ping_interval
            self._arm_health_check()
        if config.idle_timeout is not None:
            self._start_timer(TimerKind.IDLE_DEADLINE, config.idle_timeout)
        if config.has_connected_hook:
            self._run_hook(Hook.ON_CONNECTED)
        waiters = tuple(self._connect_waiters)
        self._connect_waiters.clear()
        if waiters:
            self._emit(ResolveConnect(waiters))
        self._flush_buffer()

    def _socket_going(self) -> None:
        """The socket is closing or gone: its timers and hooks go with it."""
        for timer in sorted(t for t in self._timers if t in SOCKET_TIMERS):  # by name
            if timer is not TimerKind.CLOSE_DEADLINE:
                self._cancel_timer(timer)
        hooks, self._hooks = self._hooks, ()
        for hook in sorted(hooks, key=lambda h: h.value):
            self._emit(CancelHook(hook))
        self._ping_sent_at = None
        self._next_check_at = self._pong_deadline_at = self._health_check_at = None
        self._protocol_ping_sent = False
        self._reading_paused = False
        # A buffered message being written keeps waiting for its write's outcome: it may
        # be on the wire already, so it can neither expire nor be written again until then.

    # -- after a disconnection: recovery -----------------------------------------------------

    def _disconnected(self, record: StateChange) -> None:
        source = record.source
        assert source is not None
        recovery = self._recovery
        connected_at, self._connected_at = self._connected_at, None
        waiters = tuple(self._disconnect_waiters)
        self._disconnect_waiters.clear()
        if waiters:
            self._emit(ResolveDisconnect(waiters))
        if self.machine.state is not S.DISCONNECTED:
            return  # a connect remembered while disconnecting already followed
        if self._closing:
            self._finish(source)
            return
        if recovery is None or isinstance(source, UserInitiated):
            self._finish(source)
            return
        if connected_at is not None and record.at - connected_at >= recovery.config.stable_after:
            # It had been up long enough to count as a success: back off from the start.
            recovery.attempt = 0
            recovery.token_retry_used = False
        allowed = self._policy_allows(source)
        if allowed is None:
            return  # the policy raised: already gave up
        if not allowed and self._fresh_token_may_help(source):
            recovery.token_retry_used = True
            allowed = True
        if not allowed:
            self._give_up(source, "the policy does not reconnect after this source")
            return
        recovery.reconnect_pending = True
        if isinstance(source, SystemInitiated) and self._system_cause_gone():
            self._log(
                "info", LogEvent.RECONNECT_NOW, source, reason="the system cause is already gone"
            )
            self._reconnect()
            return
        if not self._system_cause_gone():
            self._log(
                "info", LogEvent.RECOVERY_WAITING, source, reason="network unavailable or paused"
            )
            self._fail_connect_waiters(source, keep_if_retrying=True)
            return
        recovery.attempt += 1
        try:
            delay = recovery.config.strategy.next_delay(recovery.attempt, source)
        except Exception as exc:
            self._emit(ReportError(exc, "retry strategy"))
            self._give_up(source, "the retry strategy raised")
            return
        if delay is None or not isinstance(delay, int | float) or math.isnan(delay):
            why = f"the retry strategy gave up after {recovery.attempt - 1} retries"
            self._give_up(source, why)
            return
        delay = max(0.0, float(delay))
        recovery.retry_in = delay
        self._start_timer(TimerKind.RECONNECT, delay)
        self._log("info", LogEvent.RECONNECT_SCHEDULED, source, retry_in=round(delay, 6))
        self._fail_connect_waiters(source, keep_if_retrying=True)

    def _policy_allows(self, source: DisconnectionSource) -> bool | None:
        assert self._recovery is not None
        try:
            return bool(self._recovery.config.policy(source))
        except Exception as exc:
            self._emit(ReportError(exc, "reconnect policy"))
            self._give_up(source, "the reconnect policy raised")
            return None

    def _fresh_token_may_help(self, source: DisconnectionSource) -> bool:
        assert self._recovery is not None
        return (
            is_auth_rejection(source)
            and self.config.has_token_provider
            and not self._recovery.token_retry_used
        )

    def _system_cause_gone(self) -> bool:
        recovery = self._recovery
        return recovery is not None and recovery.network_available and not recovery.paused

    def _give_up(self, source: DisconnectionSource, why: str) -> None:
        recovery = self._recovery
        assert recovery is not None
        recovery.gave_up = True
        recovery.reconnect_pending = False
        recovery.retry_in = None
        self._cancel_timer(TimerKind.RECONNECT)
        self._log("warning", LogEvent.RECOVERY_STOPPED, source, reason=why)
        self._finish(source, gave_up=True)

    def _finish(self, source: DisconnectionSource | None, gave_up: bool = False) -> None:
        """Nothing will reconnect the client: settle everything that waits on it."""
        if self._recovery is not None:
            self._recovery.reconnect_pending = False
            self._recovery.retry_in = None
        self._cancel_timer(TimerKind.RECONNECT)
        self._fail_connect_waiters(source, keep_if_retrying=False)
        if self._closing:
            why = "the client was closed"
        elif isinstance(source, UserInitiated):
            why = "the user disconnected"
        elif gave_up and source is not None:
            why = f"recovery stopped: {source.close_reason}"
        else:
            why = source.close_reason if source is not None else "the client is done"
        self._abandon_buffer(why)
        if self._closing:
            self.closed = True
        if not self.done:
            if not (
                gave_up or self._closing or source is None or isinstance(source, UserInitiated)
            ):
                # Done because of an error, with nothing to reconnect it: a production setup
                # that shows only warnings must see it (a give-up says recovery_stopped).
                self._log("warning", LogEvent.CLIENT_ENDED, source, reason=source.close_reason)
            self.done = True
            self.final_source = source
            self._emit(Finished(source, gave_up))

    def _fail_connect_waiters(
        self, source: DisconnectionSource | None, *, keep_if_retrying: bool
    ) -> None:
        recovery = self._recovery
        keep = (
            keep_if_retrying
            and recovery is not None
            and recovery.config.retry_first_connect
            and recovery.reconnect_pending
        )
        if keep:
            return
        failed = tuple(
            w for w, armed in self._connect_waiters.items() if armed or not keep_if_retrying
        )
        for waiter in failed:
            del self._connect_waiters[waiter]
        if failed:
            self._emit(ResolveConnect(failed, source, closed=self._closing))

    def _reconnect(self) -> None:
        """Fire the reconnect recovery asked for (the machine refuses it after a user
        disconnect, which recovery never asks for)."""
        if self.machine.state is not S.DISCONNECTED or self.closed or self._closing:
            return
        self._fire(self.machine.connect(reconnect=True))

    def _reconnect_now(self, why: str) -> None:
        """Skip the backoff: what recovery was waiting for is back."""
        recovery = self._recovery
        if recovery is None or not recovery.reconnect_pending or not self._system_cause_gone():
            return
        if self.machine.state is not S.DISCONNECTED:
            return
        self._cancel_timer(TimerKind.RECONNECT)
        self._log("info", LogEvent.RECONNECT_NOW, self.machine.source, reason=why)
        self._reconnect()

    def _system_disconnect(self, reason: str) -> None:
        self._cancel_timer(TimerKind.RECONNECT)
        if self.machine.state in (S.CONNECTING, S.AUTHENTICATING, S.CONNECTED):
            self._fire(self.machine.disconnect(SystemInitiated(reason)))

    # -- the send buffer --------------------------------------------------------------------

    def _flush_buffer(self) -> None:
        recovery = self._recovery
        if recovery is None or not recovery.buffer or self._socket is None:
            return
        if self.machine.state is not S.CONNECTED:
            return
        head = recovery.buffer[0]
        if not head.writing:
            head.writing = True  # from now on it cannot expire: it may be on the wire
            self._emit(WriteBuffered(self._socket, head.message))

    def _abandon_buffer(self, why: str) -> None:
        recovery = self._recovery
        if recovery is None:
            return
        kept: list[_Buffered] = []
        for item in recovery.buffer:
            if item.writing:
                kept.append(item)  # its write decides its outcome
            else:
                self._emit(ResolveSend(item.message, SendAbandoned(f"message not sent: {why}")))
        recovery.buffer = kept
        self._arm_expiry()

    def _arm_expiry(self) -> None:
        recovery = self._recovery
        waiting = [i.expires_at for i in recovery.buffer if not i.writing] if recovery else []
        if waiting:
            self._start_timer_at(TimerKind.SEND_EXPIRY, min(waiting))
        else:
            self._cancel_timer(TimerKind.SEND_EXPIRY)

    def _expire_sends(self) -> None:
        recovery = self._recovery
        if recovery is None:
            return
        kept: list[_Buffered] = []
        for item in recovery.buffer:
            if not item.writing and item.expires_at <= self._now:
                ttl = recovery.config.buffer_ttl
                error = SendExpired(f"message waited {ttl:g} s for a connection and expired")
                self._emit(ResolveSend(item.message, error))
            else:
                kept.append(item)
        recovery.buffer = kept
        self._arm_expiry()

    # -- timers, hooks, logs ----------------------------------------------------------------

    def _start_timer(self, timer: TimerKind, delay: float) -> None:
        self._start_timer_at(timer, self._now + delay)

    def _start_timer_at(self, timer: TimerKind, at: float) -> None:
        if timer not in self._timers:
            self._timers += (timer,)
        self._emit(StartTimer(timer, at))

    def _cancel_timer(self, timer: TimerKind) -> None:
        if timer in self._timers:
            self._timers = _without(self._timers, timer)
            self._emit(CancelTimer(timer))

    def _run_hook(self, hook: Hook) -> None:
        assert self._socket is not None
        if hook not in self._hooks:
            self._hooks += (hook,)
        self._emit(RunHook(self._socket, hook))

    def _emit(self, effect: Effect) -> None:
        self._effects.append(effect)

    def _log(
        self, level: str, event: LogEvent, source: DisconnectionSource | None, **fields: Any
    ) -> None:
        recovery = self._recovery
        base: dict[str, Any] = {
            "attempt": recovery.attempt if recovery is not None else 0,
            "source": source.kind if source is not None else None,
            "code": source.code if source is not None else None,
        }
        base.update(fields)
        self._emit(Log(level, event, tuple(base.items())))

    def _stale(self, what: str, socket: int) -> bool:
        if socket == self._socket and socket is not None:
            return False
        self._emit(
            Log(
                "debug",
                LogEvent.STALE_SOCKET_EVENT,
                (("what", what), ("socket", socket), ("current", self._socket)),
            )
        )
        return True

    # -- handlers, one per input -------------------------------------------------------------

    def _on_user_connect(self, event: UserConnect) -> None:
        if self.closed or self._closing:
            self._emit(ResolveConnect((event.waiter,), self.final_source, closed=True))
            return
        state = self.machine.state
        if state is S.CONNECTED:
            self._emit(ResolveConnect((event.waiter,)))
            return
        self._connect_waiters[event.waiter] = state in (S.CONNECTING, S.AUTHENTICATING)
        self._fire(self.machine.connect())

    def _on_user_disconnect(self, event: UserDisconnect) -> None:
        state = self.machine.state
        if state is S.INITIALIZED:
            if event.waiter is not None:
                self._emit(ResolveDisconnect((event.waiter,)))
            return
        if event.waiter is not None:
            self._disconnect_waiters.append(event.waiter)
        self._end_streams()
        self._fire(self.machine.disconnect(UserInitiated()))
        if self.machine.state is S.DISCONNECTED:
            # Already down: the user's source replaced the stored one; recovery stops.
            waiters = tuple(self._disconnect_waiters)
            self._disconnect_waiters.clear()
            if waiters:
                self._emit(ResolveDisconnect(waiters))
            self._finish(self.machine.source)
        else:
            self._abandon_buffer("the user disconnected")  # at once, not at the close

    def _on_user_close(self, event: UserClose) -> None:
        if self.closed:
            if event.waiter is not None:
                self._emit(ResolveDisconnect((event.waiter,)))
            return
        self._closing = True
        self._end_streams()
        if self.machine.state is not S.INITIALIZED:
            if event.waiter is not None:
                self._disconnect_waiters.append(event.waiter)
            # A close is the user's disconnect: it replaces a stored source too.
            self._fire(self.machine.disconnect(UserInitiated()))
        if self.machine.state in (S.INITIALIZED, S.DISCONNECTED):
            waiters = tuple(self._disconnect_waiters)
            if event.waiter is not None and self.machine.state is S.INITIALIZED:
                waiters += (event.waiter,)
            self._disconnect_waiters.clear()
            if waiters:
                self._emit(ResolveDisconnect(waiters))
            self._finish(self.machine.source)

    def _end_streams(self) -> None:
        """The user ends the connection: the streams end now, before the close, so that a
        full subscriber cannot keep the shell from reading the server's close frame."""
        if not self.done and self.machine.state is not S.INITIALIZED:
            self._emit(EndStreams(UserInitiated()))

    def _on_socket_opened(self, event: SocketOpened) -> None:
        if self._stale("opened", event.socket):
            return
        if self.machine.state is S.CONNECTING:
            self._fire(self.machine.opened())

    def _on_health_answered(self, event: HealthAnswered) -> None:
        if self._stale("health answer", event.socket):
            return
        state = self.machine.state
        answer = event.answer
        if state is S.AUTHENTICATING:
            if answer is Answer.PONG or (
                answer is Answer.ACK_OR_PONG and not self.config.ack_required
            ):
                return  # a pong before auth completed means nothing
            health = HealthCheckInfo(event.connection_id, None, self._now, 0)
            self._fire(self.machine.authenticated(health))
        elif state is S.CONNECTED and answer is not Answer.ACK:  # a second ack means nothing
            self._pong(event.connection_id)

    def _pong(self, connection_id: str | None) -> None:
        previous = self.machine.health
        sent_at, self._ping_sent_at = self._ping_sent_at, None
        round_trip = self._now - sent_at if sent_at is not None else previous.round_trip
        if sent_at is not None:
            self._pong_deadline_at = None
            self._arm_health_check()  # for the next check: the cadence does not move
        health = HealthCheckInfo(
            connection_id or previous.connection_id, round_trip, self._now, previous.pongs + 1
        )
        self._fire(self.machine.pong(health))

    def _on_protocol_ping_sent(self, event: ProtocolPingSent) -> None:
        if not self._stale("protocol ping sent", event.socket):
            self._protocol_ping_sent = True

    def _on_protocol_pong(self, event: ProtocolPong) -> None:
        # Only the answer to our own protocol health check is a pong; any other Pong frame
        # (an unsolicited one, websockets' keepalive) proved liveness in the shell already.
        if self._stale("protocol pong", event.socket) or not self._protocol_ping_sent:
            return
        self._protocol_ping_sent = False
        if self.machine.state is S.CONNECTED:
            self._pong(None)

    def _on_server_error(self, event: ServerErrorReceived) -> None:
        if self._stale("server error", event.socket):
            return
        if self.machine.state in (S.CONNECTING, S.AUTHENTICATING, S.CONNECTED):
            self._fire(self.machine.disconnect(ServerInitiated(error=event.error)))

    def _on_socket_closed(self, event: SocketClosed) -> None:
        if self._stale("closed", event.socket):
            return
        if self.machine.state is S.DISCONNECTING:
            self._fire(self.machine.closed())
        else:
            source = ServerInitiated(event.code, event.reason, event.error)
            self._fire(self.machine.closed(source))

    def _on_hook_finished(self, event: HookFinished) -> None:
        if self._stale("hook finished", event.socket):
            return
        if event.hook in self._hooks:
            self._hooks = _without(self._hooks, event.hook)
        if (
            event.hook is Hook.ON_CONNECTION_ESTABLISHED
            and not self.config.ack_required
            and self.machine.state is S.AUTHENTICATING
        ):
            self._fire(self.machine.authenticated())

    def _on_timer(self, event: TimerFired) -> None:
        timer = event.timer
        if timer not in self._timers:
            return  # cancelled in the same tick it fired
        self._timers = _without(self._timers, timer)
        state = self.machine.state
        if timer is TimerKind.CONNECT_DEADLINE and state is S.CONNECTING:
            self._fire(self.machine.disconnect(Timeout(S.CONNECTING)))
        elif timer is TimerKind.AUTH_DEADLINE and state is S.AUTHENTICATING:
            self._fire(self.machine.disconnect(Timeout(S.AUTHENTICATING)))
        elif timer is TimerKind.HEALTH_CHECK and state is S.CONNECTED:
            self._health_check_due(event.last_frame_at)
        elif timer is TimerKind.IDLE_DEADLINE and state is S.CONNECTED:
            self._idle_check(event.last_frame_at)
        elif timer is TimerKind.CLOSE_DEADLINE and state is S.DISCONNECTING:
            # The engine did not report the close in time: give the socket up ourselves.
            assert self._socket is not None
            self._emit(AbortSocket(self._socket))
            self._fire(self.machine.closed())
        elif timer is TimerKind.RECONNECT:
            recovery = self._recovery
            if recovery is not None:
                recovery.retry_in = None
            if self._system_cause_gone():
                self._reconnect()
        elif timer is TimerKind.SEND_EXPIRY:
            self._expire_sends()

    def _health_check_due(self, last_frame_at: float | None) -> None:
        """The health check's timer fired: the pong deadline, the next check, or both."""
        armed_at, self._health_check_at = self._health_check_at, None
        assert armed_at is not None
        # What the timer was armed for is due, even if the loop ran it a clock tick early.
        now = max(self._now, armed_at)
        deadline = self._pong_deadline_at
        if deadline is not None and deadline <= now:
            self._pong_deadline_at = None
            sent_at = self._ping_sent_at
            # Strictly later: frames read at the very instant reading resumes are the backlog
            # (the shell stamps frames at full resolution, so a real answer is always later).
            if sent_at is None or last_frame_at is None or last_frame_at <= sent_at:
                self._fire(self.machine.disconnect(NoPongReceived()))
                return
            self._ping_sent_at = None  # the peer spoke since the ping: alive
        check_at = self._next_check_at
        if check_at is not None and check_at <= now:
            self._ping()
        self._arm_health_check()

    def _arm_health_check(self) -> None:
        """Arm the health check's timer for the next check, or for the pong deadline if that
        comes first (connected, with health checks on: the next check is always known)."""
        at = self._next_check_at
        assert at is not None
        if self._pong_deadline_at is not None:
            at = min(at, self._pong_deadline_at)
        if at != self._health_check_at:  # else armed for it already
            self._health_check_at = at
            self._start_timer_at(TimerKind.HEALTH_CHECK, at)

    def _ping(self) -> None:
        interval = self.config.ping_interval
        assert interval is not None and self._socket is not None
        # Fixed cadence: the next check is due one interval after this one was due.
        connected_at = self._connected_at if self._connected_at is not None else self._now
        due = connected_at + (math.floor((self._now - connected_at) / interval) + 1) * interval
        if due - self._now < interval / 1000:
            # This check is the one due now: the division rounded a period that had just
            # ended down to one that is still running (an instant, or a float's last bit,
            # ahead; a clock of microseconds would fire it again at once, for ever).
            due += interval
        self._next_check_at = due
        if self._ping_sent_at is not None:
            return  # the previous check is still waiting for its deadline
        self._ping_sent_at = self._now
        self._protocol_ping_sent = False  # until the shell says it sent a protocol Ping
        self._emit(SendHealthCheck(self._socket, self.machine.health))
        if not self._reading_paused:
            self._pong_deadline_at = self._now + self.config.pong_timeout

    def _idle_check(self, last_frame_at: float | None) -> None:
        idle = self.config.idle_timeout
        assert idle is not None
        since = max(last_frame_at or 0.0, self._connected_at or 0.0)
        if self._reading_paused or self._now - since < idle:
            base = self._now if self._reading_paused else since
            self._start_timer_at(TimerKind.IDLE_DEADLINE, base + idle)
            return
        self._fire(self.machine.disconnect(NoPongReceived()))

    def _on_reading_paused(self, event: ReadingPaused) -> None:
        if self._stale("reading paused", event.socket):
            return
        self._reading_paused = True
        # Our own reader is stalled by the app: the peer's silence proves nothing now.
        if self._pong_deadline_at is not None:
            self._pong_deadline_at = None
            self._arm_health_check()

    def _on_reading_resumed(self, event: ReadingResumed) -> None:
        if self._stale("reading resumed", event.socket):
            return
        self._reading_paused = False
        if self.machine.state is not S.CONNECTED:
            return
        if self._ping_sent_at is not None:
            self._ping_sent_at = self._now
            self._pong_deadline_at = self._now + self.config.pong_timeout
            self._arm_health_check()
        if self.config.idle_timeout is not None:
            self._start_timer(TimerKind.IDLE_DEADLINE, self.config.idle_timeout)

    def _on_network(self, event: NetworkChanged) -> None:
        recovery = self._recovery
        if recovery is None or recovery.network_available == event.available:
            return
        recovery.network_available = event.available
        if event.available:
            self._reconnect_now("network available")
        else:
            self._system_disconnect("network unavailable")

    def _on_app_paused(self) -> None:
        recovery = self._recovery
        if recovery is None or recovery.paused:
            return
        recovery.paused = True
        self._system_disconnect("app paused")

    def _on_app_resumed(self) -> None:
        recovery = self._recovery
        if recovery is None or not recovery.paused:
            return
        recovery.paused = False
        self._reconnect_now("resumed")

    def _on_attach(self, event: AttachRecovery) -> None:
        if self._recovery is not None:
            self._emit(Log("warning", LogEvent.RECOVERY_ALREADY_ATTACHED))
            return
        self._recovery = RecoveryState(event.config, network_available=event.network_available)

    def _on_detach(self) -> None:
        recovery = self._recovery
        if recovery is None:
            return
        self._cancel_timer(TimerKind.RECONNECT)
        self._cancel_timer(TimerKind.SEND_EXPIRY)
        for item in recovery.buffer:
            if not item.writing:
                error = SendAbandoned("message not sent: the recovery handler was closed")
                self._emit(ResolveSend(item.message, error))
        self._recovery = None
        if self.machine.state is S.DISCONNECTED and not self.done:
            self._finish(self.machine.source)

    def _on_buffer_send(self, event: BufferSend) -> None:
        recovery = self._recovery
        # The shell buffers only what send_route() routed here; a DIRECT route now (it
        # connected meanwhile) still goes through the buffer, which keeps the order.
        route, error = self.send_route()
        if recovery is None or route is SendRoute.REFUSE:
            refusal = error if isinstance(error, SendBufferError) else SendAbandoned(str(error))
            self._emit(ResolveSend(event.message, refusal))
            return
        if len(recovery.buffer) >= recovery.config.buffer_size:
            size = recovery.config.buffer_size
            self._emit(
                ResolveSend(event.message, SendBufferFull(f"send buffer full ({size} waiting)"))
            )
            return
        recovery.buffer.append(_Buffered(event.message, self._now + recovery.config.buffer_ttl))
        self._arm_expiry()
        self._flush_buffer()

    def _on_send_written(self, event: SendWritten) -> None:
        recovery = self._recovery
        if recovery is None:
            return
        for item in recovery.buffer:
            if item.message == event.message:
                break
        else:
            return
        if event.ok:
            recovery.buffer.remove(item)
            self._emit(ResolveSend(item.message))
        elif self.done or self._closing:
            recovery.buffer.remove(item)  # nothing will connect again to carry it
            why = self.final_source.close_reason if self.final_source else "the client is done"
            self._emit(ResolveSend(item.message, SendAbandoned(f"message not sent: {why}")))
        else:
            item.writing = False  # the socket went: it waits for the next one
            if item.expires_at <= self._now:
                self._expire_sends()
            self._arm_expiry()
        self._flush_buffer()

    def _on_send_cancelled(self, event: SendCancelled) -> None:
        recovery = self._recovery
        if recovery is None:
            return
        for item in list(recovery.buffer):
            if item.message == event.message and not item.writing:
                recovery.buffer.remove(item)
                self._arm_expiry()
