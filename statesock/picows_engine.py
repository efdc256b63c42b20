"""PicowsEngine: the picows transport behind the engine seam (``transport="picows"``, from
the ``statesock[fast]`` extra), with the contract of :mod:`statesock.engine` and the same
exceptions, HTTP statuses and close codes as the websockets engine. How:

* Frames come to :meth:`PicowsHandle.on_ws_frame` in picows's buffer, valid only during the
  call: what is kept is copied. Fragments are reassembled here, ``max_size`` bounds the whole
  message (1009), bad UTF-8 fails with 1007, reserved bits or a stray continuation with 1002.
* Backpressure: while an awaitable from ``socket_message`` runs, reading pauses and what
  picows already read queues, in order, for the socket's task. A send waits while the write
  buffer is over its high-water mark. Pings and the close handshake are answered here.
* Our socket factory makes the TCP connection, so that a socket cancelled during its
  WebSocket handshake (which picows leaves running) is shut down, not leaked.

Refused at construction (:mod:`statesock.settings`): ``compression=True``, ``socks4a://``.
The read buffer starts at picows's 2 KiB minimum. Log lines are redacted, and at DEBUG.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSError,
    WSFrame,
    WSInvalidStatusError,
    WSInvalidURL,
    WSListener,
    WSMsgType,
    WSParsedURL,
    WSTransport,
    WSUpgradeResponse,
    ws_connect,
)
from websockets.uri import parse_uri

try:  # where websockets picks the environment's proxy (websockets.uri up to 15.0)
    from websockets.proxy import get_proxy
except ImportError:  # pragma: no cover - websockets 15.0
    from websockets.uri import get_proxy  # type: ignore[attr-defined,no-redef]

from .engine import (
    ALREADY_DONE,
    EngineConfig,
    SocketListener,
    _evaluate,
    _retry_after,
    attempt_url,
    connect_tcp,
    map_exception,
    validate_url,
)
from .exceptions import (
    ConfigurationError,
    ConnectionFailure,
    ConnectionLost,
    HandshakeRejected,
    InvalidURL,
    MessageTooLarge,
    NotConnectedError,
    ProtocolViolation,
)
from .transition_log import _RedactingAdapter

__all__ = ["PicowsEngine", "PicowsHandle", "map_picows_exception"]

_TEXT, _BINARY, _CONTINUATION = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION
_PING, _PONG, _CLOSE = WSMsgType.PING, WSMsgType.PONG, WSMsgType.CLOSE
# picows's smallest read buffer (it doubles when a message needs more): memory per idle client.
_READ_BUFFER = 2048
_NO_LIMIT = 2**62  # max_size=None: picows wants a number


class _PicowsLogger(_RedactingAdapter):  # redacted (the upgrade has headers), INFO as DEBUG
    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        super().log(logging.DEBUG if level == logging.INFO else level, msg, *args, **kwargs)


def map_picows_exception(exc: BaseException) -> ConnectionFailure:
    """The statesock exception for one picows raised; others as :func:`map_exception`."""
    if isinstance(exc, ConnectionFailure):
        return exc
    mapped: ConnectionFailure
    if isinstance(exc, WSInvalidStatusError) and exc.response is not None:
        response = exc.response
        body = (exc.raw_body or response.body or b"").decode("utf-8", "replace")[:200]
        retry_after = _retry_after(response.headers.get("Retry-After"))
        mapped = HandshakeRejected(int(response.status), retry_after, body)
    elif isinstance(exc, WSInvalidURL):
        mapped = InvalidURL(str(exc))
    elif isinstance(exc, WSError) or type(exc).__name__ == "ProxyError":
        # A handshake picows refused, a protocol error, or a proxy that refused the tunnel
        # (python-socks' ProxyError; websockets maps its own likewise).
        mapped = ProtocolViolation(f"{type(exc).__name__}: {exc}")
    else:
        return map_exception(exc)
    exc.__traceback__ = None
    mapped.__cause__ = exc
    return mapped


class PicowsHandle(WSListener):
    """One picows socket's life (a :class:`~statesock.engine.SocketHandle`), and picows's
    listener for it. Made only by :meth:`PicowsEngine.open`."""

    __slots__ = (
        "_asked", "_backlog", "_close_timer", "_engine", "_failure", "_gone", "_listener",
        "_opened", "_parts", "_paused", "_pending", "_reported", "_size", "_sock", "_task",
        "_text", "_transport", "_wake", "_writable", "id", "subprotocol",
    )  # fmt: skip

    def __init__(self, engine: PicowsEngine, listener: SocketListener, number: int) -> None:
        self.id = number
        self.subprotocol: str | None = None
        self._engine = engine
        self._listener = listener
        self._task: asyncio.Task[None] | None = None
        self._transport: WSTransport | None = None
        self._sock: socket.socket | None = None  # ours until the handshake is done
        self._asked = False  # we asked for the close: not the server's doing
        self._reported = self._opened = self._gone = False  # gone: picows saw it disconnect
        self._paused = True  # messages queue until opened, and while the app holds reading
        self._backlog: deque[str | bytes] | None = None
        self._pending: Awaitable[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None  # set while writing is paused
        self._parts: list[bytes] | None = None  # a fragmented message so far
        self._text = False
        self._size = 0
        self._failure: tuple[int, str, ConnectionFailure] | None = None
        self._close_timer: asyncio.TimerHandle | None = None

    # -- SocketHandle -----------------------------------------------------------------------

    async def send(self, data: str | bytes) -> None:
        """As websockets sends: wait while the write buffer is over its high-water mark, write,
        wait until it is back under; not sent (ConnectionLost) if the socket goes first."""
        while (writable := self._writable) is not None and not self._gone:
            await asyncio.shield(writable)  # one sender cancelled must not wake the others
        transport = self._transport
        if transport is None:
            raise NotConnectedError("no socket")
        if self._gone or transport.is_close_frame_sent:
            raise ConnectionLost("the socket closed before the message was sent")
        transport.send(_TEXT if isinstance(data, str) else _BINARY, data)
        await self._written()

    async def _written(self) -> None:
        while (writable := self._writable) is not None:
            await asyncio.shield(writable)
        if self._gone:
            raise ConnectionLost("the socket closed before the message was sent")

    @property
    def raw_send(self) -> Callable[[str | bytes], Awaitable[None]] | None:
        """A send without a coroutine when the socket can take the message now (the hot
        path); otherwise it is :meth:`send`'s coroutine."""
        return self._send_now if self._transport is not None else None

    def _send_now(self, data: str | bytes) -> Awaitable[None]:
        transport = self._transport
        if transport is None or self._writable or self._gone or transport.is_close_frame_sent:
            return self.send(data)
        transport.send(_TEXT if isinstance(data, str) else _BINARY, data)
        return ALREADY_DONE if self._writable is None else self._written()

    def write_now(self, data: str | bytes | None) -> bool:
        """Write a small message (or, for None, a protocol Ping) at once, without flow
        control; False when the socket cannot take it now."""
        transport = self._transport
        if transport is None or self._gone or transport.is_close_frame_sent:
            return False
        try:
            if data is None:
                # 4 bytes the peer echoes back, nothing secret: picows masks the frame with its
                # own random key, and a getrandom() system call per Ping would cost more.
                transport.send_ping(random.randbytes(4))
            else:
                transport.send(_TEXT if isinstance(data, str) else _BINARY, data)
        except Exception:  # closing: the close is reported anyway
            return False
        return True

    def close(self, code: int, reason: str, timeout: float) -> None:
        """Close: a close frame when open (bounded by ``timeout``), cancel while opening."""
        self._asked = True
        transport, task = self._transport, self._task
        if transport is not None and not self._gone:
            if not transport.is_close_frame_sent:
                with contextlib.suppress(Exception):
                    transport.send_close(WSCloseCode(code), reason.encode())
            # The peer's close frame must get in even while the app holds reading.
            with contextlib.suppress(Exception):
                transport.underlying_transport.resume_reading()
            if self._close_timer is None:
                self._close_timer = asyncio.get_running_loop().call_later(timeout, self.abort)
        elif transport is None and task is not None and not task.done():
            task.cancel("statesock: close requested while connecting")

    def abort(self) -> None:
        """Drop the socket at once (the close handshake took too long)."""
        self._asked = True
        transport, task = self._transport, self._task
        if transport is not None and not self._gone:
            transport.disconnect(False)
        if task is not None and not task.done():
            task.cancel("statesock: socket aborted")

    # -- picows's listener (synchronous; frames are valid only during the call) ------------

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self._failure is not None or self._reported:
            return  # we failed the connection: the rest is discarded
        kind = frame.msg_type
        if kind is _TEXT or kind is _BINARY or kind is _CONTINUATION:
            message: str | bytes | None
            parts = self._parts
            if (kind is _TEXT and parts is None and frame.fin) and not (
                frame.rsv1 or frame.rsv2 or frame.rsv3
            ):
                try:  # the hot path: a whole text message in one frame
                    message = frame.get_payload_as_utf8_text()
                except UnicodeDecodeError as exc:
                    self._bad_utf8(transport, exc)
                    return
            elif (message := self._data(transport, frame, kind, parts)) is None:
                return  # failed, or more to come
            if self._paused:  # queued for the socket's task, in order
                if self._backlog is None:
                    self._backlog = deque()
                self._backlog.append(message)
            elif (pending := self._listener.socket_message(self, message)) is not None:
                self._paused = True  # no reading until the app has room; what picows read queues
                self._pending = pending
                if (own := self._transport) is not None:
                    own.underlying_transport.pause_reading()
                self._wake_up()
        elif kind == _PING:
            transport.send_pong(frame.get_payload_as_bytes())
            if self._opened:
                self._listener.socket_alive(self, False)
        elif kind == _PONG:
            if self._opened:
                self._listener.socket_alive(self, True)
        elif kind == _CLOSE:
            if not transport.is_close_frame_sent:  # the peer's close: answer it
                received = transport.close_handshake.recv
                if received is None or not received.code.value:
                    transport.send(_CLOSE, b"")  # it had no code: neither has the answer
                else:
                    transport.send_close(received.code, (received.reason or "").encode())
            transport.disconnect()

    def is_user_specific_pong(self, frame: WSFrame) -> bool:  # while protocol_keepalive waits
        pong = frame.msg_type == _PONG
        if pong and self._opened:
            self._listener.socket_alive(self, True)
        return pong

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._gone = True
        asyncio.get_running_loop().call_soon(_settle, transport)
        self._wake_up()
        self.resume_writing()  # the waiting senders find the socket gone

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def _data(
        self, transport: WSTransport, frame: WSFrame, kind: WSMsgType, parts: list[bytes] | None
    ) -> str | bytes | None:
        """The message a data frame completes (None: not yet, or the frame failed it)."""
        if frame.rsv1 or frame.rsv2 or frame.rsv3 or (parts is None) == (kind is _CONTINUATION):
            why = "reserved bits set" if frame.rsv1 or frame.rsv2 or frame.rsv3 else "bad fragment"
            self._fail(transport, 1002, f"{why}: no extension, a message at a time")
            return None
        if parts is None and frame.fin:  # a whole binary one (on_ws_frame takes text)
            return frame.get_payload_as_bytes()
        if parts is None:
            parts, self._text, self._size = [], kind is _TEXT, 0
            self._parts = parts
        chunk = frame.get_payload_as_bytes()  # a copy: the frame's buffer is picows's
        self._size += len(chunk)  # (each frame is already bounded by max_frame_size)
        limit = self._engine.config.max_size
        if limit is not None and self._size > limit:
            self._fail(transport, 1009, f"message over size limit ({self._size} > {limit})")
            return None
        parts.append(chunk)
        if not frame.fin:
            if self._opened:  # any frame proves the peer alive
                self._listener.socket_alive(self, False)
            return None
        self._parts = None
        data = b"".join(parts)
        try:
            return data.decode() if self._text else data
        except UnicodeDecodeError as exc:
            self._bad_utf8(transport, exc)
            return None

    def _bad_utf8(self, transport: WSTransport, exc: UnicodeDecodeError) -> None:
        why = f"{exc.reason} at position {exc.start}"  # the words the websockets transport uses
        self._fail(transport, 1007, f"invalid UTF-8 in a text message: {why}")

    def _fail(self, transport: WSTransport, code: int, reason: str) -> None:
        """Fail the connection for a frame the peer should not have sent (RFC 6455 7.1.7)."""
        self._parts = None
        self._failure = _failure(code, reason, self._engine.config.max_size)
        if not transport.is_close_frame_sent:
            transport.send_close(WSCloseCode(code), reason.encode())
        transport.disconnect()

    def _wake_up(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    # -- the socket's task ------------------------------------------------------------------

    def _accept(self, request: object, response: WSUpgradeResponse) -> PicowsHandle:
        """picows's listener factory, called with the server's 101: check what it chose."""
        chosen = response.headers.get("Sec-WebSocket-Protocol")
        if chosen is not None and chosen not in self._engine.config.subprotocols:
            raise ProtocolViolation(f"the server chose subprotocol {chosen!r}, not one offered")
        extensions = response.headers.get("Sec-WebSocket-Extensions")
        if extensions:
            raise ProtocolViolation(f"the server chose extensions {extensions!r}, none offered")
        self.subprotocol = chosen
        return self

    async def _connect(self, address: WSParsedURL) -> socket.socket:
        """picows's socket factory: a TCP connection we own until the handshake is done."""
        return await connect_tcp(address.host, address.port, self._own)

    def _own(self, sock: socket.socket) -> None:
        self._sock = sock  # the socket being connected: _shut_down's, should it be cancelled

    def _shut_down(self) -> None:
        """Stop a socket whose handshake was cancelled (picows leaves it running)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

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
        transport = self._transport
        if transport is not None and not self._gone:
            transport.underlying_transport.resume_reading()

    def _report_closed(
        self, code: int | None, reason: str, error: ConnectionFailure | None
    ) -> None:
        if not self._reported:
            self._reported = True
            self._listener.socket_closed(self, code, reason, error)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        # Also when the task was cancelled before its first step: still one close report.
        if not self._reported:
            error = None if self._asked else ConnectionLost("the socket task ended unexpectedly")
            self._report_closed(None, "", error)
        engine = self._engine
        engine._handles = tuple(handle for handle in engine._handles if handle is not self)

    async def _run(self) -> None:
        transport: WSTransport | None = None
        error: ConnectionFailure | None = None
        code: int | None
        code, reason = None, ""
        try:
            try:
                transport = await self._engine._open(self)
            except asyncio.CancelledError:
                self._shut_down()
                if not self._asked:  # somebody else's cancel: the socket is lost, not closed
                    error = ConnectionLost("the socket task was cancelled while connecting")
                    raise
                return
            except Exception as exc:
                self._shut_down()
                error = map_picows_exception(exc)
                return
            self._sock = None  # picows's transport owns it now
            self._transport = transport
            if self._asked:  # closed while the handshake finished
                self.close(1000, "", self._engine.config.close_timeout)
            else:
                self._opened = True
                self._listener.socket_opened(self)
            try:
                while True:
                    if self._paused and self._opened and not (self._gone and self._asked):
                        await self._drain()
                    if self._gone:
                        break
                    self._wake = asyncio.get_running_loop().create_future()
                    await self._wake
                    self._wake = None
            except asyncio.CancelledError:
                if not self._asked:
                    raise
        except GeneratorExit:  # the loop is gone, the coroutine collected: nobody to tell
            self._reported = True
            raise
        finally:
            self._wake = None
            if self._close_timer is not None:
                self._close_timer.cancel()
                self._close_timer = None
            if transport is not None and not self._reported:
                if not self._gone:
                    transport.disconnect(False)
                code, reason, error = self._outcome(transport, error)
            self._transport = None
            with contextlib.suppress(RuntimeError):  # no loop left to report on
                self._report_closed(code, reason, error)

    def _outcome(
        self, transport: WSTransport, error: ConnectionFailure | None
    ) -> tuple[int | None, str, ConnectionFailure | None]:
        """The close code, reason and error to report, as the websockets engine reports them."""
        asked, failure, handshake = self._asked, self._failure, transport.close_handshake
        sent = handshake.sent if handshake is not None else None
        if failure is None and sent is not None and not handshake.recv_then_sent:
            # picows failed the connection (1002: a bad frame, 1009: a frame over max_size,
            # 1001: no Pong for its keepalive, which websockets says with 1011): its verdict.
            code, reason = sent.code.value, sent.reason or ""
            if code == 1001:
                code, reason = 1011, "keepalive ping timeout"
            failure = _failure(code, reason, self._engine.config.max_size)
        if failure is not None and not asked:
            code, reason, failed = failure
            if code == 1009:  # our max_size refused a message: the server closed nothing
                return None, "", error or failed
            return code, reason, error or failed
        received = handshake.recv if handshake is not None else None
        if received is not None:
            return received.code.value or 1005, received.reason or "", error
        if error is None and not asked:
            error = ConnectionLost("the socket closed without a close frame")
        return 1006, "", error


class PicowsEngine:
    """The picows :class:`~statesock.engine.Engine`: a socket per :meth:`open`, one client."""

    __slots__ = ("_handles", "_logger", "_next", "config", "label")

    def __init__(self, config: EngineConfig, label: str) -> None:
        validate_url(config.url)
        if config.compression:
            raise ConfigurationError("transport='picows' has no permessage-deflate compression")
        self.config = config
        self.label = label
        self._handles: tuple[PicowsHandle, ...] = ()  # replaced on change: iterated as it is
        self._next = 0
        extra = getattr(config.logger, "extra", None) or {"statesock_client": label}
        self._logger = _PicowsLogger(logging.getLogger("picows.client"), extra)

    def open(self, listener: SocketListener, number: int | None = None) -> PicowsHandle:
        """Start a socket in a task of its own; its reports go to ``listener``."""
        if number is None:
            self._next += 1
            number = self._next
        handle = PicowsHandle(self, listener, number)
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
        handles, current = self._handles, asyncio.current_task()
        for handle in handles:
            handle.abort()
        for handle in handles:
            if handle._task is not None and handle._task is not current:
                with contextlib.suppress(asyncio.CancelledError):
                    await handle._task
                handle._task_done(handle._task)  # its callback may still be queued: now, once

    async def _open(self, handle: PicowsHandle) -> WSTransport:
        config = self.config
        if config.before_attempt is not None:
            await config.before_attempt()
        url, headers = _basic_auth(await attempt_url(config), await _evaluate(config.headers))
        if config.subprotocols:
            headers.append(("Sec-WebSocket-Protocol", ", ".join(config.subprotocols)))
        keepalive = config.protocol_keepalive
        transport, listener = await ws_connect(
            handle._accept,
            url,
            ssl_context=config.ssl if url.startswith("wss:") else None,
            websocket_handshake_timeout=None,  # the client's connect_timeout bounds it
            logger_name=self._logger,
            enable_auto_ping=keepalive is not None,
            auto_ping_idle_timeout=keepalive or 10,
            auto_ping_reply_timeout=keepalive or 10,
            auto_ping_strategy=WSAutoPingStrategy.PING_PERIODICALLY,
            enable_auto_pong=False,  # answered in on_ws_frame, where the Ping is reported
            max_frame_size=config.max_size or _NO_LIMIT,
            extra_headers=headers or None,
            proxy=self._proxy(url),
            read_buffer_init_size=_READ_BUFFER,
            socket_factory=handle._connect,
            use_aiofastnet=None if url.startswith("wss:") else False,  # ws://: 4 KiB less a client
        )
        if listener is None:  # the peer hung up before the handshake was done
            raise ConnectionLost("connection closed during the handshake")
        return transport

    def _proxy(self, url: str) -> str | None:
        """The proxy URL for ``url``, picked as websockets picks it, in picows's terms."""
        proxy = self.config.proxy
        if proxy is True:
            proxy = get_proxy(parse_uri(url))
        if not proxy:
            return None
        scheme = urlsplit(proxy).scheme.lower()
        if scheme == "socks5h":  # python-socks resolves names at the proxy for SOCKS5
            return "socks5" + proxy[len(scheme) :]
        if scheme == "socks4a":
            raise ConfigurationError("transport='picows' cannot use a socks4a:// proxy")
        return proxy


def _failure(code: int, reason: str, max_size: int | None) -> tuple[int, str, ConnectionFailure]:
    if code == 1009:
        return code, reason, MessageTooLarge(f"a message exceeded max_size ({max_size} bytes)")
    return code, reason, ProtocolViolation(f"closed with {code}: {reason}")


def _settle(transport: WSTransport) -> None:
    """Retrieve the error picows leaves on a transport it failed, lest asyncio log it."""
    waiting = transport.wait_disconnected()
    try:
        waiting.send(None)
    except Exception:  # StopIteration, or the error: either way retrieved
        return
    waiting.close()


def _basic_auth(url: str, headers: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
    """URL credentials go in ``Authorization: Basic`` as websockets sends them, not ``Host``."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, headers
    netloc = parts.netloc.rpartition("@")[2]
    url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    if not any(name.lower() == "authorization" for name, _ in headers):
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers = [*headers, ("Authorization", f"Basic {token}")]
    return url, headers
