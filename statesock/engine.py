"""WebSocketEngine: one socket at a time over ``websockets.asyncio.client``.

The engine owns the I/O and nothing else. :meth:`WebSocketEngine.start` opens a socket in a
task of its own (a new *generation*); the task reports, in this order, ``opened``, each
``message``, and exactly one ``closed`` (or ``failed`` when the socket never opened) to an
:class:`EngineListener`, which fires the machine's triggers. Reports from a generation that
is no longer current are dropped (and logged at debug), so a late event from an old socket
never touches a new one.

Every foreign exception (``websockets``, ``OSError``, ``ssl``) is mapped here, at the
boundary, to the ``ConnectionFailure`` tree of :mod:`statesock.exceptions`, with the
original kept as ``__cause__``. Protocol-level keepalive is off unless asked for: the ping
controller checks health.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import inspect
import socket
import ssl
import time
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
from websockets.typing import Subprotocol

from .exceptions import (
    ConfigurationError,
    ConnectionFailure,
    ConnectionLost,
    ConnectionRefused,
    ConnectTimeout,
    HandshakeRejected,
    InvalidURL,
    NameResolutionFailed,
    NotConnectedError,
    ProtocolViolation,
    TLSFailure,
)
from .redaction import redact_url
from .transition_log import emit

__all__ = [
    "EngineConfig",
    "EngineListener",
    "HeadersSource",
    "QuerySource",
    "WebSocketEngine",
    "map_exception",
    "validate_url",
]

Pairs = Mapping[str, str] | Iterable[tuple[str, str]]
# Static values, or a callable (sync or async) evaluated before every attempt so that a
# token in a header or the query string is always fresh.
HeadersSource = Pairs | Callable[[], Pairs | Awaitable[Pairs]] | None
QuerySource = HeadersSource

MAX_CLOSE_REASON_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes


def validate_url(url: str) -> str:
    """Return ``url`` if it can ever work as a WebSocket URL; raise :class:`InvalidURL`."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidURL(f"a WebSocket URL must be a non-empty string, not {url!r}")
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
    mapped.__cause__ = exc
    return mapped


class EngineListener(Protocol):
    """What the engine reports to; the client implements it and fires triggers."""

    def engine_opened(self, subprotocol: str | None) -> None: ...

    def engine_message(self, data: str | bytes) -> Awaitable[None] | None:
        """A message arrived; an awaitable return asks the engine to wait before reading on."""

    def engine_closed(self, code: int | None, reason: str, error: ConnectionFailure | None) -> None:
        """The socket closed; ``code`` is None when it never opened (``error`` says why)."""


@dataclass(frozen=True)
class EngineConfig:
    url: str
    subprotocols: Sequence[str] = ()
    headers: HeadersSource = None
    query_params: QuerySource = None
    ssl: ssl.SSLContext | None = None
    max_size: int | None = 2**20
    compression: bool = True
    close_timeout: float = 5.0
    protocol_keepalive: float | None = None
    # Awaited before every attempt (the client fetches a fresh token here).
    before_attempt: Callable[[], Awaitable[None]] | None = None
    # websockets' meaning: True = from the environment (HTTPS_PROXY...), a URL, or None = off.
    proxy: str | bool | None = True


async def _evaluate(source: HeadersSource) -> list[tuple[str, str]]:
    if source is None:
        return []
    value: Any = source() if callable(source) else source
    if inspect.isawaitable(value):
        value = await value
    items = value.items() if isinstance(value, Mapping) else value
    return [(str(k), str(v)) for k, v in items]


class WebSocketEngine:
    """Opens, reads, writes and closes one WebSocket at a time for one listener."""

    def __init__(self, config: EngineConfig, listener: EngineListener, label: str) -> None:
        validate_url(config.url)
        self.config = config
        self._listener = listener
        self._label = label
        self._generation = 0
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ws: ClientConnection | None = None
        self._close_request: tuple[int, str, float] | None = None
        self._cancel_requested = False

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def is_open(self) -> bool:
        return self._ws is not None

    def start(self) -> int:
        """Open a new socket in a task of its own; return its generation.

        The machine guarantees one active socket; the previous task may still be finishing
        (it starts the next socket from inside its own ``closed`` report).
        """
        if self._ws is not None:
            raise RuntimeError("the previous socket is still open")
        self._generation += 1
        self._close_request = None
        self._cancel_requested = False
        task = asyncio.get_running_loop().create_task(
            self._run(self._generation), name=f"statesock-engine-{self._label}-{self._generation}"
        )
        self._task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return self._generation

    def request_close(self, code: int, reason: str, timeout: float | None = None) -> None:
        """Close the current socket: a close frame when open, cancelling when still opening."""
        if self._task is None or self._task.done():
            return
        encoded = reason.encode("utf-8")[:MAX_CLOSE_REASON_BYTES]
        reason = encoded.decode("utf-8", "ignore")
        wait = self.config.close_timeout if timeout is None else timeout
        self._close_request = (code, reason, wait)
        if self._ws is None:
            self._cancel_requested = True
            self._task.cancel("statesock: close requested while connecting")
        else:
            self._ws.close_timeout = wait
            # Wake the reader: ws.close() sends the close frame, waits for the peer's (bounded
            # by close_timeout), then aborts; the receive loop then ends and reports closed.
            self._spawn_close(self._ws, code, reason)

    def _spawn_close(self, ws: ClientConnection, code: int, reason: str) -> None:
        closer = asyncio.get_running_loop().create_task(
            ws.close(code, reason), name=f"statesock-close-{self._label}"
        )
        closer.add_done_callback(_consume)

    async def send(self, data: str | bytes) -> None:
        ws = self._ws
        if ws is None:
            raise NotConnectedError("no socket")
        try:
            await ws.send(data)
        except ConnectionClosed as exc:
            raise ConnectionLost(f"the socket closed before the message was sent: {exc}") from exc

    async def ping(self) -> float:
        """Send a protocol-level Ping; return the round trip in seconds once the Pong arrives."""
        ws = self._ws
        if ws is None:
            raise NotConnectedError("no socket")
        try:
            waiter = await ws.ping()
            return await waiter
        except ConnectionClosed as exc:
            raise ConnectionLost(f"the socket closed before the pong: {exc}") from exc

    async def aclose(self) -> None:
        """Stop every socket task whatever it is doing; used when the client closes."""
        if self._ws is not None:
            self._ws.close_timeout = 0
        self._cancel_requested = True
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current and not t.done()]
        for task in tasks:
            task.cancel("statesock: client closed")
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the socket's task -------------------------------------------------------------

    async def _url(self) -> str:
        extra = await _evaluate(self.config.query_params)
        if not extra:
            return self.config.url
        parts = urlsplit(self.config.url)
        query = parse_qsl(parts.query, keep_blank_values=True) + extra
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))

    async def _open(self) -> ClientConnection:
        config = self.config
        if config.before_attempt is not None:
            await config.before_attempt()
        url = await self._url()
        headers = await _evaluate(config.headers)
        tls: dict[str, Any] = {}
        if config.ssl is not None and url.startswith("wss:"):
            tls["ssl"] = config.ssl  # otherwise websockets uses create_default_context()
        return await connect(
            url,
            additional_headers=headers or None,
            subprotocols=[Subprotocol(p) for p in config.subprotocols] or None,
            compression="deflate" if config.compression else None,
            open_timeout=None,  # the client's connect_timeout bounds the whole attempt
            ping_interval=config.protocol_keepalive,
            ping_timeout=config.protocol_keepalive,
            close_timeout=config.close_timeout,
            max_size=config.max_size,
            proxy=None if config.proxy is False else config.proxy,
            **tls,
        )

    def _current(self, generation: int, what: str) -> bool:
        if generation == self._generation:
            return True
        emit(
            "debug",
            "stale_engine_event",
            client=self._label,
            what=what,
            generation=generation,
            current=self._generation,
        )
        return False

    async def _run(self, generation: int) -> None:
        # Whatever happens (failure, close, cancellation), the finally clause reports exactly
        # one ``closed`` for this generation, so the machine never stays in a state whose
        # socket is gone.
        ws: ClientConnection | None = None
        error: ConnectionFailure | None = None
        try:
            try:
                ws = await self._open()
            except asyncio.CancelledError:
                if not self._cancel_requested:
                    raise
                _uncancel()
                return
            except Exception as exc:
                error = map_exception(exc)
                return
            self._ws = ws
            if not self._current(generation, "opened"):
                return
            self._listener.engine_opened(ws.subprotocol)
            if self._close_request is not None:  # a listener asked to close at once
                self._spawn_close(ws, self._close_request[0], self._close_request[1])
            on_message = self._listener.engine_message
            try:
                async for message in ws:
                    # The generation cannot change while this loop runs (start() needs the
                    # socket gone), so the hot path skips the stale check.
                    backpressure = on_message(message)
                    if backpressure is not None:
                        await backpressure
            except ConnectionClosed:
                pass  # the close code and reason are read below
            except asyncio.CancelledError:
                if not self._cancel_requested:
                    raise
                _uncancel()
            self._ws = None
            await ws.wait_closed()
        except GeneratorExit:
            # The loop is gone and the coroutine is being collected: nobody is left to
            # report to, and no loop to report on.
            generation = -1
            raise
        finally:
            self._ws = None
            code: int | None = None
            reason = ""
            if ws is not None:
                if not ws.transport.is_closing() and generation != -1:
                    ws.transport.abort()
                rcvd, sent = ws.protocol.close_rcvd, ws.protocol.close_sent
                asked = self._close_request is not None or self._cancel_requested
                if rcvd is not None:
                    code, reason = rcvd.code, rcvd.reason
                elif sent is not None and not asked:
                    # websockets failed the connection itself (e.g. 1009 for a message over
                    # max_size, 1002 for a bad frame): the code it sent is the classification.
                    code, reason = sent.code, sent.reason
                    error = error or ProtocolViolation(f"closed with {code}: {reason}")
                else:
                    code = 1006
                    if error is None and not asked:
                        error = ConnectionLost("the socket closed without a close frame")
            if self._current(generation, "closed"):
                self._listener.engine_closed(code, reason, error)


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


def _consume(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
