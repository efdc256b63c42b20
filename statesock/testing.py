"""A loopback WebSocket server for statesock's tests, and for yours.

:class:`TestServer` is a real ``websockets`` server on 127.0.0.1 speaking a small,
realistic JSON protocol:

* client → server ``{"type": "auth", "token": T}``; the server answers
  ``{"type": "connection.ok", "connection_id": "c-N"}``, or closes with 4401 when ``token``
  is set and T differs;
* client → server ``{"type": "health.check", ...}``; the server answers
  ``{"type": "health.check", "connection_id": "c-N"}`` (unless ``silent``);
* server → client app events ``{"type": "event", "seq": n, ...}`` and errors
  ``{"type": "error", "message": ..., "code": ..., "retryable": ...}``.

Knobs are plain attributes that can change at any moment: ``silent`` (no pongs),
``pong_delay`` (seconds to wait before each health-check answer),
``reject_status`` / ``reject_headers`` (refuse the handshake with an HTTP status),
``require_header`` (a ``(name, value)`` the handshake must carry, else HTTP 401),
``close_on_open`` / ``close_on_auth`` (a ``(code, reason)`` to close with at that moment),
``garbage_on_open`` (send bytes that are not JSON first), ``ack`` (answer auth),
``require_auth`` (False: send the ack as soon as the socket opens). Methods inject faults:
:meth:`close_all`, :meth:`kill` (abort every socket, no close frame, and stop listening),
:meth:`restart` (listen again on the same port), :meth:`send_burst`, :meth:`broadcast`.

:func:`decode_message` is the matching ``event_decoder`` and :func:`auth_hook` the matching
``on_connection_established``. :class:`FaultProxy` sits between a client and a server and
injects network faults (blackhole, reset, delay). :class:`HTTPConnectProxy` is an HTTP
``CONNECT`` proxy (loopback targets only) that records the targets it tunnelled to.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from .events import HealthCheckPongEvent, ServerErrorEvent

__all__ = [
    "AppEvent",
    "FaultProxy",
    "HTTPConnectProxy",
    "TestServer",
    "auth_hook",
    "decode_message",
]


@dataclass(frozen=True, slots=True)
class AppEvent:
    """Any message of the test protocol that is not a health check or an error."""

    type: str
    payload: Mapping[str, Any] = field(default_factory=dict)


def decode_message(data: str | bytes) -> Any:
    """The test protocol's decoder; raises ValueError on anything that is not a JSON object."""
    message = json.loads(data)
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ValueError("not a typed JSON object")
    kind = message["type"]
    if kind in ("connection.ok", "health.check"):
        return HealthCheckPongEvent(message.get("connection_id"), message)
    if kind == "error":
        return ServerErrorEvent(
            str(message.get("message", "")), message.get("code"), bool(message.get("retryable"))
        )
    return AppEvent(kind, message)


def auth_hook(token: str | Callable[[], str]) -> Callable[[Any], Awaitable[None]]:
    """An ``on_connection_established`` hook that sends the test protocol's auth message."""

    async def authenticate(client: Any) -> None:
        value = token() if callable(token) else token
        await client.send({"type": "auth", "token": value})

    return authenticate


class TestServer:
    """A real websockets server on 127.0.0.1 with fault-injection knobs (see module doc)."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        require_auth: bool = True,
        ack: bool = True,
        subprotocols: list[str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.require_auth = require_auth
        self.ack = ack
        self.subprotocols = subprotocols
        self.silent = False
        self.pong_delay = 0.0
        self.reject_status: int | None = None
        self.reject_headers: dict[str, str] = {}
        self.require_header: tuple[str, str] | None = None
        self.close_on_open: tuple[int, str] | None = None
        self.close_on_auth: tuple[int, str] | None = None
        self.garbage_on_open = False
        self.connections: dict[str, ServerConnection] = {}
        self.received: list[Any] = []
        self.handshakes = 0
        self.rejected = 0
        self.health_checks = 0
        self.request_headers: list[Headers] = []
        self.request_paths: list[str] = []
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._connected = asyncio.Condition()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/"

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> TestServer:
        self._server = await serve(
            self._handler,
            self.host,
            self.port,
            process_request=self._process_request,
            subprotocols=None
            if self.subprotocols is None
            else [Subprotocol(p) for p in self.subprotocols],
            ping_interval=None,
            close_timeout=1,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close every connection with 1001 (going away) and stop listening."""
        if self._server is not None:
            server, self._server = self._server, None
            server.close(close_connections=True)
            await server.wait_closed()

    async def kill(self) -> None:
        """Crash: abort every socket without a close frame and stop listening."""
        if self._server is not None:
            server, self._server = self._server, None
            server.close(close_connections=False)
            for ws in list(self.connections.values()):
                ws.transport.abort()
            await server.wait_closed()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def __aenter__(self) -> TestServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- faults and traffic ----------------------------------------------------------

    async def close_all(self, code: int = 1011, reason: str = "") -> None:
        for ws in list(self.connections.values()):
            with contextlib.suppress(ConnectionClosed):
                await ws.close(code, reason)

    async def broadcast(self, message: Any) -> None:
        data = message if isinstance(message, str | bytes) else json.dumps(message)
        for ws in list(self.connections.values()):
            with contextlib.suppress(ConnectionClosed):
                await ws.send(data)

    async def send_burst(self, count: int, *, start: int = 0, size: int = 0) -> None:
        """Send ``count`` app events with consecutive ``seq`` to every connection."""
        pad = "x" * size
        for ws in list(self.connections.values()):
            with contextlib.suppress(ConnectionClosed):
                for seq in range(start, start + count):
                    await ws.send(json.dumps({"type": "event", "seq": seq, "pad": pad}))

    async def send_error(self, message: str, *, code: int = 1, retryable: bool = True) -> None:
        await self.broadcast(
            {"type": "error", "message": message, "code": code, "retryable": retryable}
        )

    async def wait_for_connections(self, count: int = 1) -> None:
        async with self._connected:
            await self._connected.wait_for(lambda: len(self.connections) >= count)

    # -- the protocol ------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes += 1
        self.request_headers.append(request.headers)
        self.request_paths.append(request.path)
        required = self.require_header
        if required is not None and request.headers.get(required[0]) != required[1]:
            self.rejected += 1
            return connection.respond(401, "missing or wrong credentials\n")
        if self.reject_status is not None:
            self.rejected += 1
            response = connection.respond(self.reject_status, "rejected by TestServer\n")
            for name, value in self.reject_headers.items():
                response.headers[name] = value
            return response
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        connection_id = f"c-{next(self._ids)}"
        self.connections[connection_id] = ws
        async with self._connected:
            self._connected.notify_all()
        try:
            if self.close_on_open is not None:
                await ws.close(*self.close_on_open)
                return
            if self.garbage_on_open:
                await ws.send(b"\x00\xffnot json{")
            if not self.require_auth and self.ack:
                await self._ack(ws, connection_id)
            async for data in ws:
                await self._on_message(ws, connection_id, data)
        except ConnectionClosed:
            pass
        finally:
            self.connections.pop(connection_id, None)

    async def _ack(self, ws: ServerConnection, connection_id: str) -> None:
        await ws.send(json.dumps({"type": "connection.ok", "connection_id": connection_id}))

    async def _on_message(self, ws: ServerConnection, connection_id: str, data: Any) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            self.received.append(data)
            return
        self.received.append(message)
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "auth":
            if self.token is not None and message.get("token") != self.token:
                await ws.close(4401, "invalid token")
            elif self.close_on_auth is not None:
                await ws.close(*self.close_on_auth)
            elif self.ack:
                await self._ack(ws, connection_id)
        elif kind == "health.check":
            self.health_checks += 1
            if self.pong_delay:
                await asyncio.sleep(self.pong_delay)
            if not self.silent:
                await ws.send(json.dumps({"type": "health.check", "connection_id": connection_id}))


class FaultProxy:
    """A TCP proxy on 127.0.0.1 between a client and ``upstream``, with a fault ``mode``.

    * ``"pass"``: forward both ways;
    * ``"blackhole"``: keep both sockets open, forward nothing (what a dead link looks like);
    * ``"reset"``: reset every open connection (RST) and every new one at once;
    * ``"delay"``: forward each chunk ``delay`` seconds after it arrived, in order.

    Set :attr:`mode` at any moment; :meth:`set_mode` applies ``"reset"`` to open connections.
    """

    __test__ = False

    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode = "pass"
        self.delay = 0.0
        self.port = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for client_writer, upstream_writer in list(self._pairs):
            _abort(client_writer)
            _abort(upstream_writer)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def set_mode(self, mode: str, *, delay: float = 0.0) -> None:
        if mode not in ("pass", "blackhole", "reset", "delay"):
            raise ValueError(f"unknown proxy mode {mode!r}")
        self.mode = mode
        self.delay = delay
        if mode == "reset":
            for client_writer, upstream_writer in list(self._pairs):
                _reset(client_writer)
                _reset(upstream_writer)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        # Tracked from the start: stop() must also end a handler still connecting upstream.
        this = asyncio.current_task()
        if this is not None:
            self._tasks.add(this)
            this.add_done_callback(self._tasks.discard)
        if self.mode == "reset":
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(writer)
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            async with asyncio.TaskGroup() as group:
                for source, sink in ((reader, up_writer), (up_reader, writer)):
                    task = group.create_task(self._pump(source, sink))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        except* (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._pairs.discard(pair)
            _abort(writer)
            _abort(up_writer)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while True:
            chunk = await source.read(65536)
            if not chunk:
                _abort(sink)
                return
            if self.mode == "blackhole":
                continue  # swallowed; both sockets stay open
            if self.mode == "delay" and self.delay > 0:
                arrived = loop.time()
                await asyncio.sleep(max(0.0, arrived + self.delay - loop.time()))
            sink.write(chunk)
            await sink.drain()


def _abort(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    if not transport.is_closing():
        transport.abort()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0, so the peer sees a connection reset."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _abort(writer)


class HTTPConnectProxy:
    """An HTTP ``CONNECT`` proxy on 127.0.0.1, for testing clients behind a corporate proxy.

    It tunnels to loopback targets only (anything else gets ``403``, so a test can never reach
    the network through it) and records what it served: :attr:`targets` lists each
    ``host:port`` it was asked to ``CONNECT`` to, :attr:`authorizations` the
    ``Proxy-Authorization`` header of each request (``None`` when absent). Set
    :attr:`require_auth` to a ``Proxy-Authorization`` value to answer ``407`` to any other.
    Anything but ``CONNECT`` gets ``405``.
    """

    __test__ = False

    _LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})

    def __init__(self) -> None:
        self.port = 0
        self.targets: list[str] = []
        self.authorizations: list[str | None] = []
        self.require_auth: str | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> HTTPConnectProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            _abort(writer)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def __aenter__(self) -> HTTPConnectProxy:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, _, rest = lines[0].partition(" ")
            target = rest.rpartition(" ")[0]
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines[1:] if line)
            }
            if method != "CONNECT":
                await self._answer(writer, "405 Method Not Allowed")
                return
            self.targets.append(target)
            self.authorizations.append(headers.get("proxy-authorization"))
            if self.require_auth is not None and (
                headers.get("proxy-authorization") != self.require_auth
            ):
                await self._answer(writer, "407 Proxy Authentication Required")
                return
            host, _, port = target.rpartition(":")
            if host not in self._LOOPBACK or not port.isdigit():
                await self._answer(writer, "403 Forbidden")
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
            except OSError:
                await self._answer(writer, "502 Bad Gateway")
                return
            self._writers.add(up_writer)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            async with asyncio.TaskGroup() as group:
                for source, sink in ((reader, up_writer), (up_reader, writer)):
                    task = group.create_task(_pipe(source, sink))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        except* (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            for stream in (writer, up_writer):
                if stream is not None:
                    self._writers.discard(stream)
                    _abort(stream)

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, status: str) -> None:
        """Refuse: send the status line, then close (which flushes it, unlike abort)."""
        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode("latin-1"))
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while chunk := await source.read(65536):
        sink.write(chunk)
        await sink.drain()
    _abort(sink)
