"""The five clients the transports benchmark compares, each driven through its public API.

``statesock-websockets`` and ``statesock-picows`` (:class:`~statesock.WebSocketClient` with
``transport=``), ``raw-websockets`` (``websockets.asyncio.client.connect``), ``raw-picows``
(``picows.ws_connect`` with a :class:`picows.WSListener`) and ``aiohttp``
(``aiohttp.ClientSession.ws_connect``). Each does the same work the way its own users would
write it, and all are configured alike, so that a ratio compares the clients, nothing else:

* Every message received is decoded with ``json.loads``: statesock in its ``event_decoder``,
  raw websockets and aiohttp in their reading loop, raw picows in ``on_ws_frame`` from the
  frame's UTF-8 text (as statesock's picows engine reads a text frame).
* No compression anywhere (picows has none): statesock ``compression=False``, websockets
  ``compression=None``, aiohttp ``compress=0``. No proxy look-up: statesock ``proxy=False``,
  websockets ``proxy=None``; picows and aiohttp (``trust_env=False``) look none up.
* Keep-alive is off while messages are measured. When a figure wants it (:class:`Keepalive`),
  every client checks the link every ``interval`` and gives up ``interval / 2`` after an
  unanswered check: statesock's health check (a protocol Ping, or its default JSON check),
  websockets' keepalive Ping, picows's auto-ping (``PING_PERIODICALLY``), aiohttp's heartbeat.
* An idle raw websockets or aiohttp connection has the reading task every app runs (it is
  what takes Pongs and the close in); statesock and picows read in callbacks.
* A sender respects flow control: raw picows waits for ``resume_writing`` once its listener
  was told to pause, as statesock's picows engine does; the others await their ``send``.
* picows keeps its own defaults otherwise (a 16 KiB initial read buffer, where statesock's
  picows engine asks for 2 KiB): what a picows user gets.

A measurement returns a :class:`Span`: client CPU (``time.process_time()``) and wall time of
the measured part only; connecting and closing are outside it unless opening is measured
(:class:`Fleet`). ``run_on(loop, coro)`` runs a coroutine on a fresh ``asyncio`` or
``uvloop`` event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import uvloop
from picows import WSAutoPingStrategy, WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport
from picows import ws_connect as picows_connect
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as websockets_connect
from websockets.protocol import State

from statesock import HealthCheckPongEvent, WebSocketClient
from statesock.ping import default_ping_request
from statesock.recovery import ConnectionRecoveryHandler
from tests.bench.common import CLIENTS, make_client

T = TypeVar("T")
LOOPS = ("asyncio", "uvloop")
# Connections opened concurrently at a time when many are opened.
BATCH = 100
_TEXT, _CLOSE = WSMsgType.TEXT, WSMsgType.CLOSE


def run_on(loop: str, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh event loop of the kind named (see LOOPS)."""
    if loop == "uvloop":
        return uvloop.run(coro)
    if loop == "asyncio":
        return asyncio.run(coro)
    raise ValueError(f"unknown event loop {loop!r}")


@dataclass(frozen=True)
class Span:
    """Client CPU seconds and wall-clock seconds of one measured stretch."""

    cpu: float
    wall: float


class Stopwatch:
    """Started at construction; ``stop()`` returns the :class:`Span` since."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def stop(self) -> Span:
        return Span(time.process_time() - self.cpu, time.perf_counter() - self.wall)


@dataclass(frozen=True)
class Keepalive:
    """A link check every ``interval`` s, given up on after ``interval / 2`` s.

    ``json``: statesock sends its default JSON health check (``ping_request_builder`` left
    at its default) instead of a protocol Ping; the server must answer it (``/health``).
    The other clients have only protocol Pings.
    """

    interval: float
    json: bool = False


# -- statesock ----------------------------------------------------------------------------

_PONG = HealthCheckPongEvent()


def decode_with_pong(message: str | bytes) -> Any:
    """``json.loads``, mapping the bench server's ``{"type":"health.pong"}`` to a pong event
    (only the JSON health-check runs use it: it costs a check per message)."""
    event = json.loads(message)
    if type(event) is dict and event.get("type") == "health.pong":
        return _PONG
    return event


def statesock_client(
    transport: str, url: str, keepalive: Keepalive | None = None
) -> WebSocketClient:
    """A client configured like the raw ones (``common.make_client``: no ack step, no
    compression, no proxy), on ``transport``, with ``keepalive`` or effectively none."""
    if keepalive is None:
        return make_client(url, transport=transport)
    if keepalive.json:
        return make_client(
            url,
            decode_with_pong,
            transport=transport,
            ping_request_builder=default_ping_request,
            ping_interval=keepalive.interval,
            pong_timeout=keepalive.interval / 2,
        )
    return make_client(
        url,
        transport=transport,
        ping_interval=keepalive.interval,
        pong_timeout=keepalive.interval / 2,
    )


class Statesock:
    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.name = f"statesock-{transport}"

    async def receive(self, url: str, count: int, callback: bool = False) -> Span:
        """``count`` events through ``client.events()``, or with ``callback`` through a
        synchronous ``client.on(None, ...)`` callback (no subscription at all then)."""
        client = statesock_client(self.transport, url)
        received = 0
        if callback:
            finished = asyncio.get_running_loop().create_future()

            def on_event(_event: Any) -> None:
                nonlocal received
                received += 1
                if received == count:
                    finished.set_result(None)

            client.on(None, on_event)
            await client.connect()
            # Should the connection end early, the callback is never called again: stop then.
            ended = asyncio.ensure_future(client.wait_done())
            await client.send("go")
            watch = Stopwatch()
            await asyncio.wait((finished, ended), return_when=asyncio.FIRST_COMPLETED)
            span = watch.stop()
            ended.cancel()
        else:
            events = client.events()
            await client.connect()
            await client.send("go")
            watch = Stopwatch()
            async for _event in events:
                received += 1
                if received == count:
                    break
            span = watch.stop()
        await client.close()
        _check(self.name, received, count)
        return span

    async def send(self, url: str, count: int, message: str) -> Span:
        client = statesock_client(self.transport, url)
        events = client.events()
        await client.connect()
        watch = Stopwatch()
        for _ in range(count):
            await client.send(message)
        answer = None
        async for answer in events:  # noqa: B007 - the first message is the answer
            break
        span = watch.stop()
        await client.close()
        _check_done(self.name, answer)
        return span

    def fleet(self, url: str, keepalive: Keepalive | None, recovery: bool = False) -> Fleet:
        return StatesockFleet(url, keepalive, self.transport, recovery)


# -- raw websockets -----------------------------------------------------------------------


def _websockets_options(keepalive: Keepalive | None) -> dict[str, Any]:
    if keepalive is None:
        return {"compression": None, "proxy": None, "ping_interval": None}
    return {
        "compression": None,
        "proxy": None,
        "ping_interval": keepalive.interval,
        "ping_timeout": keepalive.interval / 2,
    }


async def _read_websockets(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


class RawWebsockets:
    name = "raw-websockets"

    async def receive(self, url: str, count: int, callback: bool = False) -> Span:
        async with websockets_connect(url, **_websockets_options(None)) as ws:
            await ws.send("go")
            watch = Stopwatch()
            received = 0
            async for message in ws:
                json.loads(message)
                received += 1
                if received == count:
                    break
            span = watch.stop()
        _check(self.name, received, count)
        return span

    async def send(self, url: str, count: int, message: str) -> Span:
        async with websockets_connect(url, **_websockets_options(None)) as ws:
            watch = Stopwatch()
            for _ in range(count):
                await ws.send(message)
            answer = json.loads(await ws.recv())
            span = watch.stop()
        _check_done(self.name, answer)
        return span

    def fleet(self, url: str, keepalive: Keepalive | None, recovery: bool = False) -> Fleet:
        return RawWebsocketsFleet(url, keepalive)


# -- raw picows ---------------------------------------------------------------------------


class PicowsReader(WSListener):
    """What a picows app writes: decode each text frame, answer the close, honour flow
    control. ``until`` completes once ``count`` messages arrived (or a ``"done"`` answer)."""

    def __init__(self, count: int = 0) -> None:
        super().__init__()
        self.count = count
        self.received = 0
        self.answer: Any = None
        loop = asyncio.get_running_loop()
        self.until: asyncio.Future[None] = loop.create_future()
        self.writable: asyncio.Future[None] | None = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == _TEXT:
            self.answer = json.loads(frame.get_payload_as_utf8_text())
            self.received += 1
            if self.received == self.count and not self.until.done():
                self.until.set_result(None)
        elif kind == _CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.until.done():
            self.until.set_exception(ConnectionError("picows: disconnected"))
        self.resume_writing()

    def pause_writing(self) -> None:
        if self.writable is None:
            self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        writable, self.writable = self.writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)


def _picows_options(keepalive: Keepalive | None) -> dict[str, Any]:
    if keepalive is None:
        return {"enable_auto_ping": False}
    # picows's periodic auto-ping sleeps the idle timeout, pings, then sleeps the reply
    # timeout before the next round: both at interval / 2, it pings every interval, like
    # the others, and gives up interval / 2 after an unanswered Ping.
    return {
        "enable_auto_ping": True,
        "auto_ping_idle_timeout": keepalive.interval / 2,
        "auto_ping_reply_timeout": keepalive.interval / 2,
        "auto_ping_strategy": WSAutoPingStrategy.PING_PERIODICALLY,
    }


async def _picows_close(transport: WSTransport) -> None:
    if not transport.is_disconnected:
        if not transport.is_close_frame_sent:
            transport.send_close(WSCloseCode.OK)
        transport.disconnect()
    await transport.wait_disconnected()


class RawPicows:
    name = "raw-picows"

    async def receive(self, url: str, count: int, callback: bool = False) -> Span:
        transport, reader = await picows_connect(
            lambda: PicowsReader(count), url, **_picows_options(None)
        )
        assert isinstance(reader, PicowsReader)
        transport.send(_TEXT, b"go")
        watch = Stopwatch()
        await reader.until
        span = watch.stop()
        await _picows_close(transport)
        _check(self.name, reader.received, count)
        return span

    async def send(self, url: str, count: int, message: str) -> Span:
        transport, reader = await picows_connect(
            lambda: PicowsReader(1), url, **_picows_options(None)
        )
        assert isinstance(reader, PicowsReader)
        watch = Stopwatch()
        send = transport.send
        for _ in range(count):
            send(_TEXT, message)
            while (writable := reader.writable) is not None:
                await writable
        await reader.until
        span = watch.stop()
        await _picows_close(transport)
        _check_done(self.name, reader.answer)
        return span

    def fleet(self, url: str, keepalive: Keepalive | None, recovery: bool = False) -> Fleet:
        return RawPicowsFleet(url, keepalive)


# -- aiohttp ------------------------------------------------------------------------------


def _aiohttp_session() -> aiohttp.ClientSession:
    # No limit: a WebSocket holds its pooled connection for life, and the default pool of
    # 100 would make the 101st connection wait. trust_env=False (the default): no proxy.
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


async def _read_aiohttp(ws: aiohttp.ClientWebSocketResponse) -> None:
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


class Aiohttp:
    name = "aiohttp"

    async def receive(self, url: str, count: int, callback: bool = False) -> Span:
        async with _aiohttp_session() as session, session.ws_connect(url, compress=0) as ws:
            await ws.send_str("go")
            watch = Stopwatch()
            received = 0
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    json.loads(message.data)
                    received += 1
                    if received == count:
                        break
            span = watch.stop()
        _check(self.name, received, count)
        return span

    async def send(self, url: str, count: int, message: str) -> Span:
        async with _aiohttp_session() as session, session.ws_connect(url, compress=0) as ws:
            watch = Stopwatch()
            for _ in range(count):
                await ws.send_str(message)
            answer = json.loads((await ws.receive()).data)
            span = watch.stop()
        _check_done(self.name, answer)
        return span

    def fleet(self, url: str, keepalive: Keepalive | None, recovery: bool = False) -> Fleet:
        return AiohttpFleet(url, keepalive)


# -- many idle connections ----------------------------------------------------------------


class Fleet:
    """Idle connections of one client kind: ``setup()`` (not measured: an aiohttp session),
    ``open(count)`` in concurrent batches of BATCH (what the open figure measures),
    ``connected()``, ``close()``."""

    def __init__(self, url: str, keepalive: Keepalive | None) -> None:
        self.url = url
        self.keepalive = keepalive
        self.members: list[Any] = []

    async def setup(self) -> None:
        return None

    async def open(self, count: int, batch: int = BATCH) -> None:
        for start in range(0, count, batch):
            self.members.extend(await self._batch(min(batch, count - start)))

    async def _batch(self, size: int) -> list[Any]:
        raise NotImplementedError

    def connected(self) -> int:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class StatesockFleet(Fleet):
    def __init__(
        self, url: str, keepalive: Keepalive | None, transport: str, recovery: bool
    ) -> None:
        super().__init__(url, keepalive)
        self.transport = transport
        self.recovery = recovery  # a ConnectionRecoveryHandler on each client

    async def _batch(self, size: int) -> list[Any]:
        # Constructing the client is part of opening one (a raw connection has no object
        # before connect()).
        clients = [statesock_client(self.transport, self.url, self.keepalive) for _ in range(size)]
        handlers = [ConnectionRecoveryHandler(c) for c in clients] if self.recovery else []
        await asyncio.gather(*(client.connect() for client in clients))
        return [(client, handlers[i] if handlers else None) for i, client in enumerate(clients)]

    def connected(self) -> int:
        return sum(1 for client, _ in self.members if client.state.state.value == "connected")

    async def close(self) -> None:
        await asyncio.gather(
            *(client.close() for client, _ in self.members), return_exceptions=True
        )


class RawWebsocketsFleet(Fleet):
    async def _batch(self, size: int) -> list[Any]:
        options = _websockets_options(self.keepalive)
        sockets = await asyncio.gather(
            *(websockets_connect(self.url, **options) for _ in range(size))
        )
        return [(ws, asyncio.ensure_future(_read_websockets(ws))) for ws in sockets]

    def connected(self) -> int:
        return sum(1 for ws, _ in self.members if ws.state is State.OPEN)

    async def close(self) -> None:
        for ws, _ in self.members:
            ws.close_timeout = 0.5
        await asyncio.gather(*(ws.close() for ws, _ in self.members), return_exceptions=True)
        for _, task in self.members:
            task.cancel()


class PicowsIdle(WSListener):
    """An idle picows connection's listener: picows answers Pings and sends its own; the
    listener only answers the server's close."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == _CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


class RawPicowsFleet(Fleet):
    async def _batch(self, size: int) -> list[Any]:
        options = _picows_options(self.keepalive)
        pairs = await asyncio.gather(
            *(picows_connect(PicowsIdle, self.url, **options) for _ in range(size))
        )
        return list(pairs)

    def connected(self) -> int:
        return sum(1 for transport, _ in self.members if not transport.is_disconnected)

    async def close(self) -> None:
        await asyncio.gather(
            *(_picows_close(transport) for transport, _ in self.members), return_exceptions=True
        )


class AiohttpFleet(Fleet):
    def __init__(self, url: str, keepalive: Keepalive | None) -> None:
        super().__init__(url, keepalive)
        self.session: aiohttp.ClientSession | None = None

    async def setup(self) -> None:
        self.session = _aiohttp_session()

    async def _batch(self, size: int) -> list[Any]:
        session = self.session
        assert session is not None, "setup() first"
        heartbeat = self.keepalive.interval if self.keepalive is not None else None
        sockets = await asyncio.gather(
            *(session.ws_connect(self.url, compress=0, heartbeat=heartbeat) for _ in range(size))
        )
        return [(ws, asyncio.ensure_future(_read_aiohttp(ws))) for ws in sockets]

    def connected(self) -> int:
        return sum(1 for ws, _ in self.members if not ws.closed)

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws, _ in self.members), return_exceptions=True)
        for _, task in self.members:
            task.cancel()
        if self.session is not None:
            await self.session.close()


Client = Statesock | RawWebsockets | RawPicows | Aiohttp


def client(name: str) -> Client:
    """The client kind of that name (one of common.CLIENTS)."""
    kinds: dict[str, Client] = {
        "statesock-websockets": Statesock("websockets"),
        "statesock-picows": Statesock("picows"),
        "raw-websockets": RawWebsockets(),
        "raw-picows": RawPicows(),
        "aiohttp": Aiohttp(),
    }
    assert set(kinds) == set(CLIENTS)
    return kinds[name]


def _check(name: str, received: int, count: int) -> None:
    if received != count:
        raise RuntimeError(f"{name} received {received} of {count} messages")


def _check_done(name: str, answer: Any) -> None:
    if answer != "done":
        raise RuntimeError(f"{name}: the sink answered {answer!r}, not 'done'")
