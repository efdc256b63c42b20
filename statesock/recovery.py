"""ConnectionRecoveryHandler: brings a client back, for the right reasons, at the right pace.

The client only ever disconnects; this handler listens to its records and to a
:class:`~statesock.network.NetworkMonitor` and fires ``connect(reconnect=True)`` when the
policy allows it. It decides synchronously, inside the record listener, and does its waiting
with one timer on the event loop:

* disconnected, source allowed by the policy, network up, not paused: count a failed attempt
  (unless the connection had been stable for ``stable_after`` seconds: then start again at
  1), ask the strategy for a delay, arm the timer. None from the strategy: give up.
* connecting: disarm the timer. A user disconnect, at any moment (also while the timer is
  armed): disarm, and do nothing until the user connects again (the machine refuses a
  reconnect meanwhile anyway).
* network down: disconnect an active client with ``SystemInitiated`` and wait; network up:
  reconnect at once, skipping the backoff. ``pause()`` / ``resume()`` do the same for an app
  that goes idle.
* an auth rejection (HTTP 401/403, close 4401/4403) that the policy would stop on gets one
  retry when the client has a ``token_provider`` (a fresh token is fetched before every
  attempt).

Every decision is logged (``reconnect_scheduled``, ``recovery_stopped``, ...). Like the
client, the handler belongs to its event loop's thread: a monitor fed from another thread
must hand its status over with ``loop.call_soon_threadsafe(monitor.set_available, ...)``. With
``send_buffer_size`` > 0 the handler also attaches a :class:`SendBuffer`: ``client.send()``
then waits for the next connection instead of raising, up to ``send_ttl`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .client import WebSocketClient
from .exceptions import (
    ConnectionFailure,
    HandshakeRejected,
    InvalidTransition,
    NotConnectedError,
    SendAbandoned,
    SendBufferFull,
    SendExpired,
)
from .machine import RECONNECT_DETAIL, ConnectionState, InternalTransition, Record, StateChange
from .network import NetworkMonitor
from .retry import RetryStrategy, as_strategy
from .sources import (
    DisconnectionSource,
    ReconnectPolicy,
    ServerInitiated,
    SystemInitiated,
    UserInitiated,
    default_reconnect_policy,
)
from .transition_log import emit

__all__ = ["ConnectionRecoveryHandler", "SendBuffer", "is_auth_rejection"]

S = ConnectionState
_AUTH_CLOSE_CODES = frozenset({4401, 4403})
_AUTH_STATUSES = frozenset({401, 403})


def is_auth_rejection(source: DisconnectionSource | None) -> bool:
    """The server refused our credentials (HTTP 401/403 or close 4401/4403)."""
    if not isinstance(source, ServerInitiated):
        return False
    if isinstance(source.error, HandshakeRejected):
        return source.error.status in _AUTH_STATUSES
    return source.close_code in _AUTH_CLOSE_CODES


class ConnectionRecoveryHandler:
    """Reconnects ``client`` per ``policy`` and ``strategy`` (see the module docstring)."""

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
    ) -> None:
        self.client = client
        self.network_monitor = network_monitor
        self.policy = policy
        self.strategy = as_strategy(strategy)
        self.stable_after = stable_after
        self.attempt = 0
        self.reconnects = 0
        self.gave_up = False
        self.paused = False
        self.retry_in: float | None = None
        self._retry_at: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._connected_at: float | None = None
        self._token_retry_used = False
        self._closed = False
        self.send_buffer: SendBuffer | None = None
        if send_buffer_size > 0:
            self.send_buffer = SendBuffer(client, send_buffer_size, send_ttl)
            client.send_buffer = self.send_buffer
        self._unsubscribe = (
            network_monitor.subscribe(self._network_changed) if network_monitor else None
        )
        client.add_listener(self._on_record)

    @property
    def network_available(self) -> bool:
        return self.network_monitor is None or self.network_monitor.available

    @property
    def waiting(self) -> bool:
        """A reconnect is scheduled (``retry_in`` says after how long it was set for)."""
        return self._timer is not None

    # -- app lifecycle -------------------------------------------------------------------

    def pause(self) -> None:
        """The app goes idle: disconnect (SystemInitiated) and suspend reconnecting."""
        self.paused = True
        self._disarm()
        self._disconnect_system("app paused")

    def resume(self) -> None:
        """The app is back: reconnect at once if the last disconnection allows it."""
        self.paused = False
        self._reconnect_now("resumed")

    def close(self) -> None:
        """Stop recovering: no timer, no listener, no monitor subscription remain."""
        if self._closed:
            return
        self._closed = True
        self._disarm()
        self.client.remove_listener(self._on_record)
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.send_buffer is not None:
            self.send_buffer.abandon("the recovery handler was closed")
            if self.client.send_buffer is self.send_buffer:
                self.client.send_buffer = None

    # -- decisions ------------------------------------------------------------------------

    def _on_record(self, record: Record) -> None:
        if isinstance(record, InternalTransition):
            if isinstance(record.source, UserInitiated):
                self._user_disconnected()
            return
        assert isinstance(record, StateChange)
        state = record.current
        if state is S.CONNECTING:
            self._disarm()
            if record.detail != RECONNECT_DETAIL:  # the user connected: start afresh
                self.gave_up = False
                self.attempt = 0
                self._token_retry_used = False
        elif state is S.CONNECTED:
            self._connected_at = record.at
            if self.send_buffer is not None:
                self.send_buffer.flush()
        elif state is S.DISCONNECTING:
            if isinstance(record.source, UserInitiated):
                self._user_disconnected()
        elif state is S.DISCONNECTED:
            self._disconnected(record)

    def _disconnected(self, record: StateChange) -> None:
        source = record.source
        assert source is not None
        if self._connected_at is not None and record.at - self._connected_at >= self.stable_after:
            # It had been up long enough to count as a success: back off from the start.
            self.attempt = 0
            self._token_retry_used = False
        self._connected_at = None
        if isinstance(source, UserInitiated):
            self._user_disconnected()
            return
        try:
            allowed = self.policy(source)
        except Exception as exc:
            self.client.report_error(exc, "reconnect policy")
            self._give_up(source, "the reconnect policy raised")
            return
        if not allowed and self._may_retry_with_fresh_token(source):
            self._token_retry_used = True
            allowed = True
        if not allowed:
            self._give_up(source, "the policy does not reconnect after this source")
            return
        if isinstance(source, SystemInitiated) and not (self.paused or not self.network_available):
            # The network came back (or the app resumed) while the close was finishing.
            self._log("reconnect_now", source, reason="the system cause is already gone")
            self._fire_reconnect()
            return
        if self.paused or not self.network_available:
            self._log("recovery_waiting", source, reason="network unavailable or paused")
            return
        self.attempt += 1
        try:
            delay = self.strategy.next_delay(self.attempt, source)
        except Exception as exc:
            self.client.report_error(exc, "retry strategy")
            self._give_up(source, "the retry strategy raised")
            return
        if delay is None:
            self._give_up(source, f"the retry strategy gave up after {self.attempt - 1} retries")
            return
        self._arm(max(0.0, delay), source)

    def _may_retry_with_fresh_token(self, source: DisconnectionSource) -> bool:
        return (
            is_auth_rejection(source)
            and self.client.token_provider is not None
            and not self._token_retry_used
        )

    def _network_changed(self, available: bool) -> None:
        if self._closed:
            return
        if not available:
            self._disarm()
            self._disconnect_system("network unavailable")
        else:
            self._reconnect_now("network available")

    def _reconnect_now(self, why: str) -> None:
        """Skip the backoff: the reason we were waiting is gone."""
        if self._closed or self.paused or not self.network_available or self.gave_up:
            return
        snapshot = self.client.state
        if snapshot.state is not S.DISCONNECTED or snapshot.source is None:
            return
        if isinstance(snapshot.source, UserInitiated):
            return
        if not isinstance(snapshot.source, SystemInitiated) and not self.policy(snapshot.source):
            return
        self._disarm()
        self._log("reconnect_now", snapshot.source, reason=why)
        self._fire_reconnect()

    def _disconnect_system(self, reason: str) -> None:
        # The machine decides: a change from an active state, a no-op while going down,
        # a refusal before the first connect.
        with contextlib.suppress(InvalidTransition):
            self.client.machine.disconnect(SystemInitiated(reason))

    def _user_disconnected(self) -> None:
        self._disarm()
        if self.send_buffer is not None:
            self.send_buffer.abandon("the user disconnected")

    def _give_up(self, source: DisconnectionSource, why: str) -> None:
        self.gave_up = True
        self._disarm()
        self._log("recovery_stopped", source, reason=why)
        if self.send_buffer is not None:
            self.send_buffer.abandon(f"recovery stopped: {source.close_reason}")

    # -- the timer ------------------------------------------------------------------------

    def _arm(self, delay: float, source: DisconnectionSource) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self.retry_in = delay
        self._retry_at = loop.time() + delay
        self._timer = loop.call_later(delay, self._timer_fired)
        self._log("reconnect_scheduled", source, retry_in=round(delay, 6))

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.retry_in = None
        self._retry_at = None

    def _timer_fired(self) -> None:
        self._timer = None
        self.retry_in = None
        if self._closed or self.paused or not self.network_available:
            return
        self._fire_reconnect()

    def _fire_reconnect(self) -> None:
        machine = self.client.machine
        if machine.state is not S.DISCONNECTED or not machine.reconnect_allowed:
            return
        if self.client.closed:
            return
        self.reconnects += 1
        try:
            machine.connect(reconnect=True)
        except InvalidTransition as exc:  # a user disconnect got there first
            emit("debug", "reconnect_refused", client=self.client.label, error=str(exc))

    def _log(self, event: str, source: DisconnectionSource | None, **fields: object) -> None:
        emit(
            "info",
            event,
            client=self.client.label,
            attempt=self.attempt,
            source=source.kind if source is not None else None,
            code=source.code if source is not None else None,
            **fields,
        )


@dataclass
class _Pending:
    data: str | bytes
    future: asyncio.Future[None]
    expiry: asyncio.TimerHandle | None = field(default=None)


class SendBuffer:
    """Messages waiting for the next connection: bounded, each with a time to live.

    ``enqueue`` returns once the message is written, or raises :class:`SendBufferFull`,
    :class:`SendExpired` or :class:`SendAbandoned` (the user disconnected, the client gave up
    or closed). Messages are written in order once the client is connected (after auth).
    """

    def __init__(self, client: WebSocketClient, size: int, ttl: float) -> None:
        if size < 1 or ttl <= 0:
            raise ValueError("send buffer size must be >= 1 and ttl > 0")
        self._client = client
        self.size = size
        self.ttl = ttl
        self._items: deque[_Pending] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self.expired = 0
        self.abandoned = 0

    @property
    def pending(self) -> int:
        return len(self._items)

    async def enqueue(self, data: str | bytes) -> None:
        if len(self._items) >= self.size:
            raise SendBufferFull(f"send buffer full ({self.size} messages waiting)")
        loop = asyncio.get_running_loop()
        item = _Pending(data, loop.create_future())
        item.expiry = loop.call_later(self.ttl, self._expire, item)
        self._items.append(item)
        try:
            await item.future
        finally:
            # A cancelled sender takes its message back.
            if item in self._items:
                self._items.remove(item)
            if item.expiry is not None:
                item.expiry.cancel()

    def flush(self) -> None:
        if self._items and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush(), name=f"statesock-flush-{self._client.label}"
            )

    async def _flush(self) -> None:
        while self._items:
            item = self._items[0]
            if item.future.done():
                self._items.popleft()
                continue
            try:
                await self._client.send_now(item.data)
            except (NotConnectedError, ConnectionFailure):
                return  # the connection went; the next connected flushes again
            if self._items and self._items[0] is item:
                self._items.popleft()
            if not item.future.done():
                item.future.set_result(None)

    def _expire(self, item: _Pending) -> None:
        if item in self._items:
            self._items.remove(item)
        if not item.future.done():
            self.expired += 1
            item.future.set_exception(
                SendExpired(f"message waited {self.ttl:g} s for a connection and expired")
            )

    def abandon(self, reason: str) -> None:
        items, self._items = list(self._items), deque()
        for item in items:
            if item.expiry is not None:
                item.expiry.cancel()
            if not item.future.done():
                self.abandoned += 1
                item.future.set_exception(SendAbandoned(f"message not sent: {reason}"))
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
