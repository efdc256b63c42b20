"""The websockets transport (the default): an :class:`~statesock.engine.Engine` over
``websockets.asyncio.client``.

Theory of operation. websockets parses frames in its sans-I/O ``Protocol``; its asyncio
``ClientConnection`` feeds every data frame to an ``Assembler`` that ``recv()`` reads from,
which costs a future and a task switch per message. statesock does not read that way:
:class:`_Connection` (websockets' connection, subclassed) hands each data frame to the
socket's :class:`WebSocketsHandle` synchronously, in ``data_received``, as picows does. The
handle reassembles fragments, decodes text and reports the message to the listener at once.

- Frames that arrive with the handshake's response, before the handle takes over, wait on the
  connection in order and are read first.
- Backpressure: a listener that returns an awaitable (a lossless subscriber is full) stops the
  transport's reading. What websockets had already parsed queues in the handle's backlog, in
  order, and the socket's task delivers it when the app has room, then reads on.
- websockets itself answers Pings, runs the close handshake, enforces ``max_size`` (across
  fragments too) and the fragment order. Text that is not UTF-8 fails the connection with
  1007, as ``recv()`` would. Any frame proves the peer alive (``socket_alive``).
- A send is written at once while the transport is under its write limit; otherwise it is
  websockets' ``send``, with its flow control.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.typing import Subprotocol

try:  # websockets' own masking, in C as its frames use it (pure Python where it is not built)
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

from .engine import (
    ALREADY_DONE,
    EngineConfig,
    SocketListener,
    _evaluate,
    attempt_url,
    map_exception,
    send_failure,
    validate_url,
)
from .exceptions import (
    ConnectionFailure,
    ConnectionLost,
    MessageTooLarge,
    NotConnectedError,
    ProtocolViolation,
)

__all__ = ["WebSocketEngine", "WebSocketsHandle"]

_TEXT, _BINARY, _CONTINUATION = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
_PONG = Opcode.PONG
_DATA = frozenset({_TEXT, _BINARY, _CONTINUATION})


class _NoAssembler:
    """Stands in for websockets' ``Assembler`` (the queue behind ``recv()``) on a
    :class:`_Connection`: only its ``close()`` is ever called, when the connection is lost."""

    __slots__ = ()

    def close(self) -> None:
        pass


_NO_ASSEMBLER: Any = _NoAssembler()


class _Connection(ClientConnection):
    """websockets' connection, handing its frames to the socket's handle (module docstring).

    Control frames still go through websockets (a Pong settles its own keepalive Pings);
    data frames never reach its Assembler.
    """

    handle: WebSocketsHandle | None = None  # set when the socket has opened
    early: list[Frame] | None = None  # data frames that came before the handle took over
    gone = False  # the TCP connection is lost

    def process_event(self, event: Any) -> None:
        if self.response is None or not isinstance(event, Frame):
            super().process_event(event)  # the handshake's response
            return
        handle, opcode = self.handle, event.opcode
        if opcode is _PONG and handle is not None and _no_keepalive_ping(self):
            # A health check's Pong: websockets would only look it up among its own
            # keepalive Pings (protocol_keepalive), and none is waiting.
            handle._listener.socket_alive(handle, True)
            return
        if opcode in _DATA:
            if handle is not None:
                handle._frame(event)
            elif self.early is None:
                self.early = [event]
            else:
                self.early.append(event)
            return
        super().process_event(event)
        if handle is not None and opcode is not Opcode.CLOSE:
            handle._listener.socket_alive(handle, opcode is _PONG)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # recv() is never called and no data frame reaches the Assembler, which holds a
        # deque (about 1 KiB per idle client): one shared stand-in replaces it.
        self.recv_messages = _NO_ASSEMBLER

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.gone = True
        if self.handle is not None:
            self.handle._wake_up()


def _no_keepalive_ping(ws: ClientConnection) -> bool:
    """No Ping of websockets' own keepalive waits for its Pong (False when this version of
    websockets keeps them elsewhere: its own handling then runs, as always)."""
    pending = getattr(ws, "pending_pings", None)
    return pending is not None and not pending


class WebSocketsHandle:
    """One websockets socket's life: send, ping, close, abort (a
    :class:`~statesock.engine.SocketHandle`). Made only by :meth:`WebSocketEngine.open`."""

    __slots__ = (
        "_asked", "_backlog", "_engine", "_listener", "_parts", "_paused", "_pending",
        "_reported", "_task", "_text", "_wake", "_ws", "id", "subprotocol",
    )  # fmt: skip

    def __init__(self, engine: WebSocketEngine, listener: SocketListener, number: int) -> None:
        self.id = number
        self.subprotocol: str | None = None
        self._engine = engine
        self._listener = listener
        self._ws: _Connection | None = None
        self._asked = False  # we asked for the close: not the server's doing
        self._reported = False
        self._task: asyncio.Task[None] | None = None
        self._paused = False  # the app holds reading: messages queue in the backlog
        self._backlog: deque[str | bytes] | None = None
        self._pending: Awaitable[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._parts: list[bytes] | None = None  # a fragmented message so far
        self._text = False

    async def send(self, data: str | bytes) -> None:
        ws = self._ws
        if ws is None:
            raise NotConnectedError("no socket")
        try:
            await ws.send(data)
        except ConnectionClosed as exc:
            raise send_failure(exc) from exc

    @property
    def raw_send(self) -> Callable[[str | bytes], Awaitable[None]] | None:
        """The client's hot path (None when the socket is not open): a send that writes at
        once when it can, and maps a failure with :func:`send_failure` itself."""
        return self._send_now if self._ws is not None else None

    def _send_now(self, data: str | bytes) -> Awaitable[None]:
        """Write the message now when the socket is open and not over its write limit, as
        websockets' ``send`` would, without its coroutine and its send context; otherwise
        (closing, or waiting for the peer to read) it is websockets' ``send``, which waits
        or raises ``ConnectionClosed``. Only whole messages are ever sent here, so no
        fragmented send can be under way."""
        ws = self._ws
        if ws is None or ws.paused or ws.protocol.state is not State.OPEN:
            return self.send(data)
        if isinstance(data, str):
            ws.protocol.send_text(data.encode())
        else:
            ws.protocol.send_binary(data)
        ws.send_data()
        # Over the high-water mark now: wait until the transport is back under it.
        return ALREADY_DONE if not ws.paused else self._drained(ws)

    async def _drained(self, ws: _Connection) -> None:
        try:
            await ws.drain()
        except Exception as exc:
            raise ConnectionLost(f"the socket closed before the message was sent: {exc}") from exc

    def write_now(self, data: str | bytes | None) -> bool:
        """Write a small message (or, for None, a protocol Ping) at once, without a task.

        For health checks: no coroutine, no future, no flow control (the frame is tiny). The
        answer to a Ping comes back as ``socket_alive(handle, pong=True)``. False when the
        socket cannot take it now; the caller then falls back to :meth:`send`.
        """
        ws = self._ws
        if ws is None:
            return False
        try:
            protocol = ws.protocol
            payload = None if data is None else data.encode() if isinstance(data, str) else data
            if (
                protocol.state is State.OPEN
                and not protocol.debug  # websockets logs each frame it sends at DEBUG
                and not protocol.writes  # (always flushed at once: never seen)
                and (payload is None or _plain_frame(protocol, payload))
            ):
                # The frame websockets would write, written straight to the transport (see
                # _write_frame): a health check is sent often enough for its cost to show.
                _write_frame(ws, data, payload)
                return True
            if payload is None:
                protocol.send_ping(os.urandom(4))
            elif isinstance(data, str):
                protocol.send_text(payload)
            else:
                protocol.send_binary(payload)
            ws.send_data()
        except Exception:  # closing, or websockets refused it: the close is reported anyway
            return False
        return True

    def close(self, code: int, reason: str, timeout: float) -> None:
        """Close: a close frame when open (bounded by ``timeout``), cancel while opening."""
        self._asked = True
        ws, task = self._ws, self._task
        if ws is not None:
            ws.close_timeout = timeout
            if self._paused:  # the peer's close frame must get in while the app holds reading
                ws.transport.resume_reading()
            closer = asyncio.get_running_loop().create_task(
                ws.close(code, reason), name=f"statesock-close-{self._engine.label}-{self.id}"
            )
            closer.add_done_callback(_consume)
            closers = self._engine._closers
            if closers is None:  # made on the first close: a set is 216 bytes per client
                closers = self._engine._closers = set()
            closers.add(closer)
            closer.add_done_callback(closers.discard)
        elif task is not None and not task.done():
            task.cancel("statesock: close requested while connecting")

    def abort(self) -> None:
        """Drop the socket at once (the close handshake took too long)."""
        self._asked = True
        ws, task = self._ws, self._task
        if ws is not None:
            ws.transport.abort()
        if task is not None and not task.done():
            task.cancel("statesock: socket aborted")

    # -- frames, from _Connection.process_event (synchronous) -------------------------------

    def _frame(self, frame: Frame) -> None:
        parts, data = self._parts, frame.data
        message: str | bytes
        try:
            if parts is None and frame.fin:  # a whole message in one frame: the common case
                # bytes(data): the same object when websockets made bytes (it always does)
                message = str(data, "utf-8") if frame.opcode is _TEXT else bytes(data)
            else:
                if parts is None:  # websockets checked the order: this opens a message
                    parts, self._text = [], frame.opcode is _TEXT
                    self._parts = parts
                parts.append(bytes(data))
                if not frame.fin:
                    self._listener.socket_alive(self, False)  # any frame proves the peer alive
                    return
                self._parts = None
                whole = b"".join(parts)
                message = whole.decode() if self._text else whole
        except UnicodeDecodeError as exc:
            self._fail_invalid_text(exc)
            return
        if self._paused:
            backlog = self._backlog
            if backlog is None:
                backlog = self._backlog = deque()
            backlog.append(message)
            return
        pending = self._listener.socket_message(self, message)
        if pending is not None:
            # Stop reading until the app has room; what websockets already parsed queues.
            self._paused = True
            self._pending = pending
            ws = self._ws
            if ws is not None:
                ws.transport.pause_reading()
            self._wake_up()

    def _fail_invalid_text(self, exc: UnicodeDecodeError) -> None:
        """Fail the connection with 1007, as websockets' ``recv()`` does."""
        self._parts = None
        ws = self._ws
        if ws is None:
            return
        with contextlib.suppress(Exception):  # already closing: the close is reported anyway
            reason = f"invalid UTF-8 in a text message: {exc.reason} at position {exc.start}"
            ws.protocol.fail(CloseCode.INVALID_DATA, reason)
            ws.send_data()

    def _wake_up(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _drain(self) -> None:
        """Deliver what queued while reading was held, in order, then read on."""
        on_message = self._listener.socket_message
        while True:
            pending, self._pending = self._pending, None
            if pending is not None:
                await pending
            backlog = self._backlog
            if not backlog:
                break
            self._pending = on_message(self, backlog.popleft())
        self._paused = False
        ws = self._ws
        if ws is not None and not ws.gone:
            ws.transport.resume_reading()

    # -- the socket's task ------------------------------------------------------------------

    def _report_closed(
        self, code: int | None, reason: str, error: ConnectionFailure | None
    ) -> None:
        if not self._reported:
            self._reported = True
            self._listener.socket_closed(self, code, reason, error)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        # Runs even when the task was cancelled before its first step, when the coroutine's
        # own finally never ran: the socket still reports its one close.
        if not self._reported:
            error = None if self._asked else ConnectionLost("the socket task ended unexpectedly")
            self._report_closed(None, "", error)
        engine = self._engine
        engine._handles = tuple(handle for handle in engine._handles if handle is not self)

    async def _run(self) -> None:
        ws: _Connection | None = None
        error: ConnectionFailure | None = None
        code: int | None = None
        reason = ""
        try:
            try:
                ws = await self._engine._open()
            except asyncio.CancelledError:
                if not self._asked:  # somebody else's cancel: the socket is lost, not closed
                    error = ConnectionLost("the socket task was cancelled while connecting")
                    raise
                return
            except Exception as exc:
                error = map_exception(exc)
                return
            self._ws = ws
            self.subprotocol = ws.subprotocol
            if self._asked:  # closed while the handshake finished
                await ws.close(1000, "")
            else:
                self._listener.socket_opened(self)
                ws.handle = self
                early, ws.early = ws.early, None
                for frame in early or ():
                    self._frame(frame)
            try:
                while True:
                    if self._paused and not (ws.gone and self._asked):
                        await self._drain()
                    if ws.gone:
                        break
                    self._wake = asyncio.get_running_loop().create_future()
                    await self._wake
                    self._wake = None
            except asyncio.CancelledError:
                if not self._asked:
                    raise
        except GeneratorExit:
            # The loop is gone and the coroutine is being collected: nobody is left to
            # report to, and no loop to report on.
            self._reported = True
            raise
        finally:
            self._ws = None
            self._wake = None
            if ws is not None and not self._reported:
                if not ws.transport.is_closing():
                    ws.transport.abort()
                max_size = self._engine.config.max_size
                code, reason, error = _close_outcome(ws, self._asked, error, max_size)
            with contextlib.suppress(RuntimeError):  # no loop left to report on
                self._report_closed(code, reason, error)


def _close_outcome(
    ws: ClientConnection, asked: bool, error: ConnectionFailure | None, max_size: int | None
) -> tuple[int | None, str, ConnectionFailure | None]:
    rcvd, sent = ws.protocol.close_rcvd, ws.protocol.close_sent
    if rcvd is not None:
        return rcvd.code, rcvd.reason, error
    if sent is not None and not asked:
        if sent.code == 1009:
            # Our own max_size refused a message: the server did not close anything.
            too_large = MessageTooLarge(f"a message exceeded max_size ({max_size} bytes)")
            return None, "", error or too_large
        # websockets failed the connection itself (1002 for a bad frame, 1007 for text that
        # is not UTF-8...): the code it sent is the classification.
        return (
            sent.code,
            sent.reason,
            error or ProtocolViolation(f"closed with {sent.code}: {sent.reason}"),
        )
    if error is None and not asked:
        error = ConnectionLost("the socket closed without a close frame")
    return 1006, "", error


class WebSocketEngine:
    """The websockets transport's :class:`~statesock.engine.Engine`: one socket per
    :meth:`open` for one client; knows nothing about states."""

    __slots__ = ("_closers", "_handles", "_next", "config", "label")

    def __init__(self, config: EngineConfig, label: str) -> None:
        validate_url(config.url)
        self.config = config
        self.label = label
        self._handles: tuple[WebSocketsHandle, ...] = ()  # replaced on change: iterated as it is
        # Close handshakes under way: aclose() waits for them, so nothing is left running.
        self._closers: set[asyncio.Task[None]] | None = None
        self._next = 0

    def open(self, listener: SocketListener, number: int | None = None) -> WebSocketsHandle:
        """Start a socket in a task of its own; its reports go to ``listener``."""
        if number is None:
            self._next += 1
            number = self._next
        handle = WebSocketsHandle(self, listener, number)
        task = asyncio.get_running_loop().create_task(
            handle._run(), name=f"statesock-socket-{self.label}-{number}"
        )
        handle._task = task
        self._handles += (handle,)
        task.add_done_callback(handle._task_done)
        return handle

    @property
    def sockets(self) -> int:
        """How many socket tasks are still running."""
        return len(self._handles)

    async def aclose(self) -> None:
        """Stop every socket task whatever it is doing; used when the client closes."""
        current = asyncio.current_task()
        handles = self._handles
        for handle in handles:
            handle.abort()
        for handle in handles:
            task = handle._task
            if task is not None and task is not current:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                # Its done-callback may still be queued (a task that ended before we awaited
                # it): report its close now, once, so that nothing is left when we return.
                handle._task_done(task)
        # The sockets are aborted: a close handshake still under way ends at once.
        closers = [task for task in self._closers or () if task is not current]
        if closers:
            await asyncio.gather(*closers, return_exceptions=True)

    async def _open(self) -> _Connection:
        config = self.config
        if config.before_attempt is not None:
            await config.before_attempt()
        # Static settings (no query parameters, no headers) need no coroutine to evaluate.
        url = config.url if config.query_params is None else await attempt_url(config)
        headers = None if config.headers is None else await _evaluate(config.headers)
        extra: dict[str, Any] = {}
        if config.ssl is not None and url.startswith("wss:"):
            extra["ssl"] = config.ssl  # otherwise websockets uses create_default_context()
        if config.logger is not None:
            extra["logger"] = config.logger
        ws = await connect(
            url,
            additional_headers=headers or None,
            subprotocols=[Subprotocol(p) for p in config.subprotocols] or None,
            # None: websockets' default, permessage-deflate.
            compression=None if config.compression is False else "deflate",
            open_timeout=None,  # the client's connect_timeout bounds the whole attempt
            ping_interval=config.protocol_keepalive,
            ping_timeout=config.protocol_keepalive,
            close_timeout=config.close_timeout,
            max_size=config.max_size,
            proxy=None if config.proxy is False else config.proxy,
            create_connection=_Connection,
            **extra,
        )
        assert isinstance(ws, _Connection)
        return ws


# First bytes of a client's frames: FIN and the opcode, then MASK and the payload length.
_PING_HEAD = bytes((0x80 | Opcode.PING, 0x80 | 4))
_TEXT_FIN, _BINARY_FIN = 0x80 | Opcode.TEXT, 0x80 | Opcode.BINARY


def _plain_frame(protocol: Any, payload: bytes) -> bool:
    """Whether websockets would write ``payload`` as one plain frame: no extension to
    transform it (permessage-deflate), no fragmented message under way, a short length."""
    return not protocol.extensions and not protocol.expect_continuation_frame and len(payload) < 126


def _write_frame(ws: _Connection, data: str | bytes | None, payload: bytes | None) -> None:
    """Write one masked frame (a Ping when ``payload`` is None) as websockets serializes it
    (``Frame.serialize``: header, a random masking key, the masked payload), for
    :meth:`WebSocketsHandle.write_now` only, on an open connection with nothing queued.

    The Ping's payload is 4 random bytes, as before: 8 bytes from ``os.urandom``, the
    masking key then the payload as masked (random too), in one call.
    """
    if payload is None:
        ws.transport.write(_PING_HEAD + os.urandom(8))
        return
    mask = os.urandom(4)
    head = bytes((_TEXT_FIN if isinstance(data, str) else _BINARY_FIN, 0x80 | len(payload)))
    ws.transport.write(head + mask + apply_mask(payload, mask))


def _consume(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
