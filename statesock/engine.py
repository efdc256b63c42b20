"""The engine seam, and WebSocketEngine: sockets over ``websockets.asyncio.client``.

An engine owns the I/O and nothing else; what it needs to open a socket is an
:class:`EngineConfig`, built (with every default) by :mod:`statesock.settings`. The seam is
three protocols: an :class:`Engine` opens sockets, :meth:`Engine.open` returns a
:class:`SocketHandle` at once and starts the socket in a task of its own; the task reports,
in this order, ``socket_opened``, each ``socket_message``, and exactly one ``socket_closed``
(also when it never opened, and also when it was cancelled before its first step) to a
:class:`SocketListener`, each report carrying the handle. The handle's number is what the
connection core checks, so nothing from an old socket can reach a new one.
:func:`make_engine` builds the engine of a transport by name: ``"websockets"``
(:class:`WebSocketEngine`, here) or ``"picows"`` (:mod:`statesock.picows_engine`, loaded
only then: a transport depends on this seam, never the reverse).

Every foreign exception (``websockets``, ``OSError``, ``ssl``) is mapped here, at the
boundary, to the ``ConnectionFailure`` tree of :mod:`statesock.exceptions`, with the
original kept as ``__cause__``. Protocol-level keepalive is off unless asked for: the ping
controller checks health.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import importlib
import inspect
import os
import socket
import ssl
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
    WebSocketException,
)
from websockets.frames import Frame, Opcode
from websockets.typing import Subprotocol

from .exceptions import (
    ConfigurationError,
    ConnectionFailure,
    ConnectionLost,
    ConnectionRefused,
    ConnectTimeout,
    HandshakeRejected,
    InvalidURL,
    MessageTooLarge,
    NameResolutionFailed,
    NotConnectedError,
    ProtocolViolation,
    TLSFailure,
)
from .redaction import redact_text, redact_url

__all__ = [
    "TRANSPORTS",
    "Engine",
    "EngineConfig",
    "HeadersSource",
    "QuerySource",
    "SocketHandle",
    "SocketListener",
    "WebSocketEngine",
    "WebSocketsHandle",
    "attempt_url",
    "make_engine",
    "map_exception",
    "send_failure",
    "validate_url",
]

# The transports, by the name ``transport=`` takes: the module and class of each engine.
TRANSPORTS: dict[str, tuple[str, str]] = {
    "websockets": (__name__, "WebSocketEngine"),
    "picows": ("statesock.picows_engine", "PicowsEngine"),
}

Pairs = Mapping[str, str] | Iterable[tuple[str, str]]
# Static values, or a callable (sync or async) evaluated before every attempt so that a
# token in a header or the query string is always fresh.
HeadersSource = Pairs | Callable[[], Pairs | Awaitable[Pairs]] | None
QuerySource = HeadersSource


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """What the engine needs to open a socket. Built by
    :meth:`ClientSettings.engine_config <statesock.settings.ClientSettings.engine_config>`,
    which holds every default: no field here has one."""

    url: str
    subprotocols: Sequence[str]
    headers: HeadersSource
    query_params: QuerySource
    ssl: ssl.SSLContext | None
    max_size: int | None
    # permessage-deflate: True, False, or None for the transport's default (websockets: on;
    # picows has no compression, and the settings refuse True with it).
    compression: bool | None
    close_timeout: float
    protocol_keepalive: float | None
    # Awaited before every attempt (the client fetches a fresh token here).
    before_attempt: Callable[[], Awaitable[None]] | None
    # websockets' meaning: True = from the environment (HTTPS_PROXY...), a URL, or None = off.
    proxy: str | bool | None
    logger: Any


# Never valid in a URL: whitespace and controls would be stripped by urlsplit or sent raw
# (CR/LF split the request line: header injection); format characters (bidi overrides,
# zero-width) and line separators make the URL read differently in a log than it is.
_URL_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Zs"})


def _forbidden_url_character(url: str) -> str | None:
    for char in url:
        if char.isspace() or unicodedata.category(char) in _URL_FORBIDDEN_CATEGORIES:
            return char
    return None


def validate_url(url: str) -> str:
    """Return ``url`` if it can ever work as a WebSocket URL; raise :class:`InvalidURL`.

    A WebSocket URL is a str with scheme ws or wss, a host, a port other than 0, no
    fragment, and no whitespace or control character anywhere (percent-encode them:
    ``%20``). :class:`InvalidURL` is a ValueError; the URL it shows is redacted.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidURL(f"a WebSocket URL must be a non-empty string, not {url!r}")
    forbidden = _forbidden_url_character(url)
    if forbidden is not None:
        raise InvalidURL(
            f"url must not contain whitespace or control characters ({forbidden!r}; "
            f"percent-encode it), not {redact_text(repr(url))}"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"malformed URL {redact_url(url)!r}: {exc}") from None
    if parts.scheme not in ("ws", "wss"):
        raise InvalidURL(
            f"URL {redact_url(url)!r} must use ws:// or wss://, not {parts.scheme or 'nothing'!r}"
        )
    if not parts.hostname:
        raise InvalidURL(f"URL {redact_url(url)!r} has no host")
    if port == 0:
        raise InvalidURL(f"URL {redact_url(url)!r} has port 0")
    if parts.fragment:
        raise InvalidURL(f"URL {redact_url(url)!r} has a fragment, which WebSocket forbids")
    return url


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def map_exception(exc: BaseException) -> ConnectionFailure:
    """The statesock exception for a foreign one (already-mapped ones pass through)."""
    if isinstance(exc, ConnectionFailure):
        return exc
    mapped: ConnectionFailure
    if isinstance(exc, InvalidURI):
        mapped = InvalidURL(str(exc))
    elif isinstance(exc, InvalidStatus):
        response = exc.response
        body = response.body.decode("utf-8", "replace")[:200] if response.body else ""
        mapped = HandshakeRejected(
            response.status_code, _retry_after(response.headers.get("Retry-After")), body
        )
    elif isinstance(exc, InvalidMessage) and isinstance(exc.__cause__, EOFError | OSError):
        mapped = ConnectionLost(f"connection closed during the handshake: {exc}")
    elif isinstance(exc, InvalidHandshake | WebSocketException):
        mapped = ProtocolViolation(f"{type(exc).__name__}: {exc}")
    elif isinstance(exc, ssl.SSLCertVerificationError):
        mapped = TLSFailure(f"TLS certificate verification failed: {exc}", certificate=True)
    elif isinstance(exc, ssl.SSLError):
        mapped = TLSFailure(f"TLS handshake failed: {exc}", certificate=False)
    elif isinstance(exc, socket.gaierror):
        mapped = NameResolutionFailed(f"host name did not resolve: {exc}")
    elif isinstance(exc, ConnectionRefusedError):
        mapped = ConnectionRefused(f"connection refused: {exc}")
    elif isinstance(exc, TimeoutError):
        mapped = ConnectTimeout(str(exc) or "timed out")
    elif isinstance(exc, OSError | EOFError):
        mapped = ConnectionLost(f"{type(exc).__name__}: {exc}")
    elif isinstance(exc, ValueError | TypeError):
        # websockets validates its arguments before any I/O: a bad setting, not a fault.
        mapped = ConfigurationError(f"invalid connection settings: {type(exc).__name__}: {exc}")
    else:
        mapped = ConnectionLost(f"unexpected {type(exc).__name__}: {exc}")
    # The source keeps the cause for as long as the client is down; its traceback would keep
    # the failed attempt's frames alive too (about 70 objects a client for the garbage
    # collector to walk in a reconnect storm), and it says nothing the type and text don't.
    exc.__traceback__ = None
    mapped.__cause__ = exc
    return mapped


class SocketHandle(Protocol):
    """One socket's life, whatever the transport: made only by :meth:`Engine.open`.

    ``id`` is the number the core knows the socket by; ``subprotocol`` the one the server
    chose (None until open, or when it chose none).
    """

    id: int
    subprotocol: str | None

    async def send(self, data: str | bytes) -> None:
        """Send a message; it waits while the transport's write buffer is over its high-water
        mark. :class:`NotConnectedError` before the socket opened, :class:`ConnectionLost`
        once it is closing."""

    @property
    def raw_send(self) -> Callable[[str | bytes], Awaitable[None]] | None:
        """The cheapest way to :meth:`send` on the open socket (None when it is not open);
        what it raises goes through :func:`send_failure`."""

    def write_now(self, data: str | bytes | None) -> bool:
        """Write a small message (None: a protocol Ping) at once, without flow control;
        False when the socket cannot take it now."""

    def close(self, code: int, reason: str, timeout: float) -> None:
        """Close with a close frame when open (the handshake bounded by ``timeout``), or stop
        opening."""

    def abort(self) -> None:
        """Drop the socket at once."""


class Engine(Protocol):
    """Opens one socket per :meth:`open` for one client; knows nothing about states."""

    config: EngineConfig
    label: str

    def open(self, listener: SocketListener, number: int | None = None) -> SocketHandle:
        """Start a socket in a task of its own; its reports go to ``listener``."""

    @property
    def sockets(self) -> int:
        """How many sockets are still running."""

    async def aclose(self) -> None:
        """Stop every socket whatever it is doing, and wait for all the engine started."""


def make_engine(config: EngineConfig, label: str, transport: str = "websockets") -> Engine:
    """The :class:`Engine` of ``transport`` (a name of :data:`TRANSPORTS`) for one client.

    The picows module is imported here, on first use, so that neither picows nor its engine
    is loaded by a client that does not use it. The settings have already checked that the
    transport exists and is installed; this check repeats it for callers that skip them.
    """
    try:
        module, name = TRANSPORTS[transport]
    except KeyError:
        known = ", ".join(repr(t) for t in TRANSPORTS)
        raise ConfigurationError(f"unknown transport {transport!r} (one of {known})") from None
    engine: Callable[[EngineConfig, str], Engine] = getattr(importlib.import_module(module), name)
    return engine(config, label)


class SocketListener(Protocol):
    """What a socket reports to (the client); every report names its handle."""

    def socket_opened(self, handle: SocketHandle) -> None: ...

    def socket_alive(self, handle: SocketHandle, pong: bool) -> None:
        """A control frame arrived (a Ping from the server, or a Pong): the peer lives."""

    def socket_message(self, handle: SocketHandle, data: str | bytes) -> Awaitable[None] | None:
        """A message arrived; an awaitable return asks the socket to wait before reading on."""

    def socket_closed(
        self, handle: SocketHandle, code: int | None, reason: str, error: ConnectionFailure | None
    ) -> None:
        """The socket closed; ``code`` is None when it never opened (``error`` says why)."""


async def attempt_url(config: EngineConfig) -> str:
    """The URL of one attempt: ``config.url`` with the query parameters evaluated now."""
    extra = await _evaluate(config.query_params)
    if not extra:
        return config.url
    parts = urlsplit(config.url)
    query = parse_qsl(parts.query, keep_blank_values=True) + extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


async def _evaluate(source: HeadersSource) -> list[tuple[str, str]]:
    if source is None:
        return []
    value: Any = source() if callable(source) else source
    if inspect.isawaitable(value):
        value = await value
    items = value.items() if isinstance(value, Mapping) else value
    return [(str(k), str(v)) for k, v in items]


class _Connection(ClientConnection):
    """websockets' connection, telling us about control frames it handles on its own: any
    frame the peer sends proves it alive, and Ping and Pong frames never reach recv()."""

    on_control_frame: Callable[[bool], None] | None = None

    def process_event(self, event: Any) -> None:
        super().process_event(event)
        notify = self.on_control_frame
        if notify is not None and isinstance(event, Frame):
            if event.opcode is Opcode.PONG:
                notify(True)
            elif event.opcode is Opcode.PING:
                notify(False)


class WebSocketsHandle:
    """One websockets socket's life: send, ping, close, abort (a :class:`SocketHandle`).
    Made only by :meth:`WebSocketEngine.open`."""

    __slots__ = ("_asked", "_engine", "_listener", "_reported", "_task", "_ws", "id", "subprotocol")

    def __init__(self, engine: WebSocketEngine, listener: SocketListener, number: int) -> None:
        self.id = number
        self.subprotocol: str | None = None
        self._engine = engine
        self._listener = listener
        self._ws: ClientConnection | None = None
        self._asked = False  # we asked for the close: not the server's doing
        self._reported = False
        self._task: asyncio.Task[None] | None = None

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
        """websockets' own ``send`` of the open socket (None when it is not open), for the
        client's hot path: it maps a failure with :func:`send_failure` itself, which saves a
        coroutine layer per message."""
        ws = self._ws
        return ws.send if ws is not None else None

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
            if data is None:
                protocol.send_ping(os.urandom(4))
            elif isinstance(data, str):
                protocol.send_text(data.encode())
            else:
                protocol.send_binary(data)
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
            closer = asyncio.get_running_loop().create_task(
                ws.close(code, reason), name=f"statesock-close-{self._engine.label}-{self.id}"
            )
            closer.add_done_callback(_consume)
            closers = self._engine._closers
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

    async def _run(self) -> None:
        ws: ClientConnection | None = None
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
            if isinstance(ws, _Connection):
                listener = self._listener
                ws.on_control_frame = lambda pong: listener.socket_alive(self, pong)
            if self._asked:  # closed while the handshake finished
                await ws.close(1000, "")
            else:
                self._listener.socket_opened(self)
            on_message = self._listener.socket_message
            try:
                async for message in ws:
                    backpressure = on_message(self, message)
                    if backpressure is not None:
                        await backpressure
            except ConnectionClosed:
                pass  # the close code and reason are read below
            except asyncio.CancelledError:
                if not self._asked:
                    raise
            self._ws = None
            await ws.wait_closed()
        except GeneratorExit:
            # The loop is gone and the coroutine is being collected: nobody is left to
            # report to, and no loop to report on.
            self._reported = True
            raise
        finally:
            self._ws = None
            if ws is not None and not self._reported:
                if not ws.transport.is_closing():
                    ws.transport.abort()
                max_size = self._engine.config.max_size
                code, reason, error = _close_outcome(ws, self._asked, error, max_size)
            with contextlib.suppress(RuntimeError):  # no loop left to report on
                self._report_closed(code, reason, error)


def send_failure(exc: BaseException) -> BaseException:
    """The statesock exception for a failed ``ws.send()`` (others pass through)."""
    if isinstance(exc, ConnectionClosed):
        return ConnectionLost(f"the socket closed before the message was sent: {exc}")
    return exc


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
        # websockets failed the connection itself (1002 for a bad frame, ...): the code it
        # sent is the classification.
        return (
            sent.code,
            sent.reason,
            error or ProtocolViolation(f"closed with {sent.code}: {sent.reason}"),
        )
    if error is None and not asked:
        error = ConnectionLost("the socket closed without a close frame")
    return 1006, "", error


class WebSocketEngine:
    """The websockets transport's :class:`Engine`: one socket per :meth:`open` for one
    client; knows nothing about states."""

    __slots__ = ("_closers", "_handles", "_next", "config", "label")

    def __init__(self, config: EngineConfig, label: str) -> None:
        validate_url(config.url)
        self.config = config
        self.label = label
        self._handles: set[WebSocketsHandle] = set()
        # Close handshakes under way: aclose() waits for them, so nothing is left running.
        self._closers: set[asyncio.Task[None]] = set()
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
        self._handles.add(handle)
        task.add_done_callback(handle._task_done)
        task.add_done_callback(lambda _: self._handles.discard(handle))
        return handle

    @property
    def sockets(self) -> int:
        """How many socket tasks are still running."""
        return len(self._handles)

    async def aclose(self) -> None:
        """Stop every socket task whatever it is doing; used when the client closes."""
        current = asyncio.current_task()
        tasks = []
        for handle in list(self._handles):
            handle.abort()
            if handle._task is not None and handle._task is not current:
                tasks.append(handle._task)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # The sockets are aborted: a close handshake still under way ends at once.
        closers = [task for task in self._closers if task is not current]
        if closers:
            await asyncio.gather(*closers, return_exceptions=True)

    async def _open(self) -> ClientConnection:
        config = self.config
        if config.before_attempt is not None:
            await config.before_attempt()
        url = await attempt_url(config)
        headers = await _evaluate(config.headers)
        extra: dict[str, Any] = {}
        if config.ssl is not None and url.startswith("wss:"):
            extra["ssl"] = config.ssl  # otherwise websockets uses create_default_context()
        if config.logger is not None:
            extra["logger"] = config.logger
        return await connect(
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


def _consume(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
