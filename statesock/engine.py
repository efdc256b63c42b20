"""The engine seam: what the shell asks of a transport, and what every transport shares.

An engine owns the I/O and nothing else; what it needs to open a socket is an
:class:`EngineConfig`, built (with every default) by :mod:`statesock.settings`. The seam is
three protocols: an :class:`Engine` opens sockets, :meth:`Engine.open` returns a
:class:`SocketHandle` at once and starts the socket in a task of its own; the task reports,
in this order, ``socket_opened``, each ``socket_message``, and exactly one ``socket_closed``
(also when it never opened, and also when it was cancelled before its first step) to a
:class:`SocketListener`, each report carrying the handle. The handle's number is what the
connection core checks, so nothing from an old socket can reach a new one.
:func:`make_engine` builds the engine of a transport by name: ``"websockets"``
(:mod:`statesock.websockets_engine`) or ``"picows"`` (:mod:`statesock.picows_engine`): each is
loaded only when used, and a transport depends on this seam, never the reverse.

Every foreign exception (``websockets``, ``OSError``, ``ssl``) is mapped here, at the
boundary, to the ``ConnectionFailure`` tree of :mod:`statesock.exceptions`, with the
original kept as ``__cause__``. Protocol-level keepalive is off unless asked for: the ping
controller checks health.
"""

from __future__ import annotations

import email.utils
import importlib
import inspect
import socket
import ssl
import time
import unicodedata
from asyncio import Future, get_running_loop
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
    WebSocketException,
)

from .exceptions import (
    ConfigurationError,
    ConnectionFailure,
    ConnectionLost,
    ConnectionRefused,
    ConnectTimeout,
    HandshakeRejected,
    InvalidURL,
    NameResolutionFailed,
    ProtocolViolation,
    TLSFailure,
)
from .redaction import redact_text, redact_url

__all__ = [
    "ALREADY_DONE",
    "TRANSPORTS",
    "Engine",
    "EngineConfig",
    "HeadersSource",
    "QuerySource",
    "SocketHandle",
    "SocketListener",
    "attempt_url",
    "make_engine",
    "map_exception",
    "send_failure",
    "validate_url",
]

# The transports, by the name ``transport=`` takes: the module and class of each engine.
TRANSPORTS: dict[str, tuple[str, str]] = {
    "websockets": ("statesock.websockets_engine", "WebSocketEngine"),
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
    if url.isascii() and url.isprintable() and " " not in url:
        # The common case at once: in ASCII the forbidden characters are the controls (not
        # printable) and the space, which is printable.
        return None
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
    if type(url) is str and url in _valid_urls:
        return url
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
    if type(url) is str:  # a str subclass could compare equal to a valid URL and differ
        if len(_valid_urls) >= 256:
            _valid_urls.clear()
        _valid_urls.add(url)
    return url


# URLs that passed validate_url (str is immutable: one that passed always will).
_valid_urls: set[str] = set()


def numeric_address(host: str, port: int) -> list[tuple[Any, ...]] | None:
    """What ``getaddrinfo(host, port, type=SOCK_STREAM)`` answers for a numeric IPv4 or IPv6
    ``host`` (without a scope), found without a look-up; None for a name.

    ``loop.getaddrinfo`` runs in a thread, which costs an open to a numeric address more CPU
    than everything else statesock does for it; asyncio's own ``create_connection`` skips the
    look-up for such a host too.
    """
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        address = (host, port) if family == socket.AF_INET else (host, port, 0, 0)
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)]
    return None


async def connect_socket(sock: socket.socket, address: tuple[Any, ...]) -> None:
    """``loop.sock_connect(sock, address)`` for a non-blocking socket and a resolved address,
    done as asyncio's loop does it (connect; once writable, the outcome from ``SO_ERROR``),
    with the same errors. uvloop's own sock_connect costs an open about 20 us more.
    """
    try:
        sock.connect(address)
        return
    except (BlockingIOError, InterruptedError):
        pass
    loop = get_running_loop()
    fd = sock.fileno()
    while True:
        writable = loop.create_future()
        loop.add_writer(fd, _wake, writable)
        try:
            await writable
        finally:
            loop.remove_writer(fd)
        try:
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except (BlockingIOError, InterruptedError):  # as asyncio: not done yet
            continue
        if error != 0:
            raise OSError(error, f"Connect call failed {address}")
        return


async def connect_tcp(host: str, port: int, own: Callable[[socket.socket], None]) -> socket.socket:
    """A TCP connection to ``host``, each of its addresses tried in turn, as the picows
    engine's socket factory makes it: ``own`` is handed each socket before it connects (the
    engine shuts down the one a cancelled handshake leaves), a failed one is closed, and the
    first failure is raised when none connects. A numeric host skips the resolver's thread.
    """
    infos = numeric_address(host, port) or await get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    )
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        own(sock)
        try:
            sock.setblocking(False)
            await connect_socket(sock, sockaddr)
        except BaseException as exc:
            sock.close()
            if not isinstance(exc, OSError):
                raise
            error = error or exc
        else:
            return sock
    raise error or OSError(f"no address for {host}")


def _wake(future: Future[None]) -> None:
    if not future.done():
        future.set_result(None)


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
    engine = _engines.get(transport)
    if engine is None:
        try:
            module, name = TRANSPORTS[transport]
        except KeyError:
            known = ", ".join(repr(t) for t in TRANSPORTS)
            raise ConfigurationError(f"unknown transport {transport!r} (one of {known})") from None
        engine = _engines[transport] = getattr(importlib.import_module(module), name)
    return engine(config, label)


# Each transport's engine class, once imported (an import_module per client cost ~2 us).
_engines: dict[str, Callable[[EngineConfig, str], Engine]] = {}


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


# What awaiting _Done iterates: an iterator already exhausted (it stays so: one is shared),
# which costs less than the generator a ``yield from ()`` makes at every await.
_EXHAUSTED = cast("Generator[None, None, None]", iter(()))


class _Done:
    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return _EXHAUSTED


# An awaitable that is already done: what a transport's fast send returns when the message
# is written at once (no coroutine, no future per message).
ALREADY_DONE: Awaitable[None] = _Done()


def send_failure(exc: BaseException) -> BaseException:
    """The statesock exception for a failed ``ws.send()`` (others pass through)."""
    if isinstance(exc, ConnectionClosed):
        return ConnectionLost(f"the socket closed before the message was sent: {exc}")
    return exc
