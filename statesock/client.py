"""WebSocketClient: the public object, a thin asyncio shell around the connection core.

The client decides nothing about the connection. It turns what happens (a user call, a
socket's report, a timer, a hook finishing) into an input of its
:class:`~statesock.core.ConnectionCore`, and carries out the effects the core returns:
opening and closing sockets through the transport's :class:`~statesock.engine.Engine`, timers
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
import dataclasses
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, Unpack, overload

from . import core_io as io
from .engine import send_failure
from .events import HealthCheckInfo
from .exceptions import ClientClosed, ConnectFailed, ConnectionEnded, NotConnectedError
from .machine import ConnectionSnapshot, ConnectionState, Listener, Record, StateChange
from .option_docs import options_help
from .ping import default_ping_request
from .redaction import redact_url
from .settings import ClientOptions, ClientSettings
from .shell import RecoveryLink, Shell, in_handshake
from .sources import DisconnectionSource, UserInitiated
from .stats import ClientStats
from .subscriptions import Overflow, Subscription, without

if TYPE_CHECKING:
    from typing_extensions import TypeForm

__all__ = ["ClientStats", "WebSocketClient"]  # ClientStats: see statesock.stats

T = TypeVar("T")
_labels = itertools.count(1)


class WebSocketClient(Shell):
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

    # An instance dict only when something sets an attribute of its own (an app's tag, a
    # test's stand-in): the client's own attributes are slots (see Shell).
    __slots__ = ("__dict__", "__weakref__", "url")

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
        self._start_shell(url)

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
        """App events that arrived while no subscription or ``on()`` callback matched them
        (acks, pongs and server errors are the client's own and never count)."""
        return self._fanout.unclaimed

    def add_listener(self, listener: Listener) -> None:
        """Receive every record (changes and internal transitions) synchronously, in ``seq``
        order, once the step that made it is over. A listener may call the client; a listener
        that raises is logged and counted (``stats.callback_errors``)."""
        self._listeners += (listener,)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners = without(self._listeners, listener)

    def attach_recovery(
        self, config: io.RecoveryConfig, *, network_available: bool = True
    ) -> RecoveryLink:
        """Hand recovery decisions to the core with ``config``; the seam a recovery handler
        (:class:`~statesock.recovery.ConnectionRecoveryHandler`) attaches through.

        Returns the :class:`~statesock.shell.RecoveryLink` that feeds the core the network and
        the app's pause/resume. Raises RuntimeError when one is attached already.
        """
        if self._core.recovery is not None:
            raise RuntimeError(f"client {self.label} already has a recovery handler")
        self._step(io.AttachRecovery(config, network_available))
        return RecoveryLink(self)

    async def wait_for(self, state: ConnectionState) -> ConnectionSnapshot:
        """Return as soon as the client is in ``state`` (at once if it is already there).

        Raises :class:`ConnectionEnded` (with the final source) when the client is done, or
        becomes done, without being in ``state``: nothing would ever bring it there.
        """
        if self._core.state is state:
            return self.state
        if self._core.done:
            raise ConnectionEnded(self._core.final_source)
        # One future, resolved by whichever comes first: the listener, with the snapshot, or
        # the end (_finished resolves done-waiters with the final source). Records are
        # delivered before the step's effects, so reaching ``state`` in the step that ends
        # the client still counts as reached.
        reached: asyncio.Future[Any] = self._loop_now().create_future()

        def listen(record: Record) -> None:
            if isinstance(record, StateChange) and record.current is state and not reached.done():
                reached.set_result(self.state)

        self.add_listener(listen)
        self._done_waiters += (reached,)
        try:
            result = await reached
        finally:
            self.remove_listener(listen)
            self._done_waiters = without(self._done_waiters, reached)
        if isinstance(result, ConnectionSnapshot):
            return result
        raise ConnectionEnded(result)

    async def wait_done(self) -> DisconnectionSource | None:
        """Wait until the client is done; return the final disconnection source."""
        if self._core.done:
            return self._core.final_source
        waiter: asyncio.Future[DisconnectionSource | None] = self._loop_now().create_future()
        self._done_waiters += (waiter,)
        try:
            return await waiter
        finally:
            # Cancelled: leave nothing behind.
            self._done_waiters = without(self._done_waiters, waiter)

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
            self._state_streams += (sub,)
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
        self._fanout.start()  # async on() callbacks registered before the loop ran
        waiter = self._waiters.add()
        self._step(io.UserConnect(waiter))
        snapshot: ConnectionSnapshot = await self._waiters.wait(waiter)
        return snapshot

    async def disconnect(self) -> ConnectionSnapshot:
        """Close with 1000 and wait for disconnected (bounded by ``close_timeout`` + 1 s).

        A user disconnect sticks: nothing reconnects until the user connects again.
        """
        await self._wait_disconnect(io.UserDisconnect)
        return self.state

    async def close(self) -> None:
        """Disconnect (user), end every stream, and leave no task running.

        Streams end first: what they hold can still be read, nothing more is added, and a
        subscriber left full (a loop left with ``break``) no longer stops the client from
        reading the server's close frame.
        """
        if not self._core.closed:
            await self._wait_disconnect(io.UserClose)
        self._timers.cancel_all()
        for hook in list(self._hooks.values()):
            hook.cancel()
        await self._engine.aclose()
        await self._fanout.aclose(self.settings.close_timeout)
        tasks = [t for t in self._tasks or () if t is not asyncio.current_task()]
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
        route, refusal = self._core.send_route(handshake or in_handshake.get())
        if route is io.SendRoute.REFUSE:
            assert refusal is not None
            raise refusal
        data = message if isinstance(message, str | bytes) else self.settings.encode(message)
        if route is io.SendRoute.DIRECT:
            handle = self._socket(self._core.socket or 0)
            assert handle is not None  # the route is DIRECT only with a socket open
            send = handle.raw_send
            if send is None:
                raise NotConnectedError(self._core.state.value)
            try:
                await send(data)
            except Exception as exc:  # mapped here, not in another coroutine layer
                failure = send_failure(exc)
                if failure is exc:
                    raise
                raise failure from exc
            self.stats.message_sent(data)
            return
        number = self._waiters.add()
        self._outgoing[number] = data
        self._step(io.BufferSend(number))
        try:
            await self._waiters.wait(number)
        except asyncio.CancelledError:
            self._step(io.SendCancelled(number))
            raise
        finally:
            self._outgoing.pop(number, None)

    async def __aenter__(self) -> WebSocketClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- helpers ----------------------------------------------------------------------------

    async def _wait_disconnect(self, command: type[io.UserDisconnect] | type[io.UserClose]) -> None:
        self._loop_now()
        waiter = self._waiters.add()
        self._step(command(waiter))
        await self._waiters.wait(waiter)

    def _state_streams_remove(self, sub: Subscription[Any]) -> None:
        self._state_streams = without(self._state_streams, sub)

    def __repr__(self) -> str:
        return f"<WebSocketClient {self.label} {redact_url(self.url)} {self._core.state.value}>"


# help(WebSocketClient) lists every option with its default, unit and meaning.
WebSocketClient.__init__.__doc__ = (WebSocketClient.__init__.__doc__ or "") + options_help(
    "client", {field.name: field.default for field in dataclasses.fields(ClientSettings)}
)
