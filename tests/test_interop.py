"""Interop: the same client scenarios against three real WebSocket server libraries.

Every scenario runs against

* ``websockets``: :class:`statesock.testing.TestServer` with the commands below added;
* ``aiohttp``: an ``aiohttp.web`` application with a ``WebSocketResponse``;
* ``node``: the node ``ws`` server of ``tests/interop/ws_server.mjs``, in its own process
  (``make interop`` installs ``ws`` into ``build/node``);

and on every transport (tests/conftest.py). All three speak TestServer's JSON protocol (auth
→ ``connection.ok`` ack, ``health.check`` → ``health.check``; a wrong token is closed with
4401) and obey the same commands from the client: ``burst`` (``count`` events
``{"type": "event", "seq": i}``, each padded with ``size`` bytes), ``fragments`` (one text
message sent as one frame per part), ``close`` (with ``code`` and ``reason``) and ``stats``
(``{"type": "stats", "health_checks": n}``: this connection's health checks so far). Each
library answers protocol Pings itself.

The in-loop servers (websockets, aiohttp) run in the test's own loop in virtual time; the node
server is another process, so its runs use real time with short intervals (DESIGN.md,
"Virtual time and I/O"). Without node or the ``ws`` package the node runs skip loudly, and
fail under ``CI=true``. aiohttp's server cannot send a fragmented message (every frame it
writes has FIN set), so the fragments scenario runs against websockets and node only.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import shutil
import subprocess
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from websockets.asyncio.server import ServerConnection

from statesock.exceptions import ConnectFailed, MessageTooLarge
from statesock.machine import ConnectionState
from statesock.recovery import ConnectionRecoveryHandler
from statesock.retry import DelayList
from statesock.sources import ServerInitiated, UserInitiated
from statesock.testing import AppEvent, TestServer, auth_hook
from tests.conftest import coming_up, make_client, run_virtual, transitions_of

S = ConnectionState
ROOT = Path(__file__).resolve().parent.parent
NODE_SERVER = ROOT / "tests" / "interop" / "ws_server.mjs"
TOKEN = "t"  # make_client's token
BIG = 2 * 1024 * 1024  # over the client's default max_size (1 MiB)
SERVERS = ("websockets", "aiohttp", "node")
FRAGMENTING = ("websockets", "node")  # aiohttp's server writes every frame with FIN set


@dataclass(frozen=True)
class Timing:
    """The client's health-check intervals and a slow reader's pace, per kind of clock."""

    virtual: bool
    ping_interval: float
    pong_timeout: float
    per_event: float  # what the slow reader spends on each event

    def options(self) -> dict[str, Any]:
        return {"ping_interval": self.ping_interval, "pong_timeout": self.pong_timeout}


VIRTUAL = Timing(virtual=True, ping_interval=25.0, pong_timeout=3.0, per_event=0.05)
REAL = Timing(virtual=False, ping_interval=0.3, pong_timeout=0.15, per_event=0.001)

Scenario = Callable[[str, Timing], Coroutine[Any, Any, None]]


# -- the Python servers ---------------------------------------------------------------------


COMMANDS = ("burst", "fragments", "close", "stats")


def _kind(data: str | bytes) -> tuple[str | None, dict[str, Any]]:
    """The ``type`` of the JSON object in ``data`` and the object (None, {}: not one)."""
    try:
        message = json.loads(data)
    except ValueError:
        return None, {}
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return None, {}
    return message["type"], message


class WebsocketsServer(TestServer):
    """TestServer (websockets) that also obeys the interop commands."""

    __test__ = False

    def __init__(self) -> None:
        super().__init__(token=TOKEN)
        self.checks: dict[str, int] = {}

    async def _on_message(self, ws: ServerConnection, connection_id: str, data: Any) -> None:
        kind, command = _kind(data)
        if kind not in COMMANDS:  # TestServer's own protocol
            if kind == "health.check":
                self.checks[connection_id] = self.checks.get(connection_id, 0) + 1
            await super()._on_message(ws, connection_id, data)
            return
        match command["type"]:
            case "burst":
                pad = "x" * command.get("size", 0)
                for seq in range(command["count"]):
                    await ws.send(json.dumps({"type": "event", "seq": seq, "pad": pad}))
            case "fragments":
                await ws.send(iter(command["parts"]))  # one frame per part
            case "close":
                await ws.close(command["code"], command.get("reason", ""))
            case "stats":
                stats = {"type": "stats", "health_checks": self.checks.get(connection_id, 0)}
                await ws.send(json.dumps(stats))
            case _:
                pass


class AiohttpServer:
    """An aiohttp.web server on 127.0.0.1 speaking the same protocol (``autoping``: aiohttp
    answers Pings itself)."""

    def __init__(self) -> None:
        self.url = ""
        self.connections = 0
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> AiohttpServer:
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}/"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        connection_id = f"c-{self.connections}"
        health_checks = 0
        async for received in ws:
            if received.type is not WSMsgType.TEXT:
                continue
            kind, message = _kind(received.data)
            match kind:
                case "auth" if message.get("token") != TOKEN:
                    await ws.close(code=4401, message=b"invalid token")
                case "auth":
                    await ws.send_json({"type": "connection.ok", "connection_id": connection_id})
                case "health.check":
                    health_checks += 1
                    await ws.send_json({"type": "health.check", "connection_id": connection_id})
                case "burst":
                    pad = "x" * message.get("size", 0)
                    for seq in range(message["count"]):
                        await ws.send_json({"type": "event", "seq": seq, "pad": pad})
                case "close":
                    reason = message.get("reason", "").encode()
                    await ws.close(code=message["code"], message=reason)
                case "stats":
                    await ws.send_json({"type": "stats", "health_checks": health_checks})
                case _:
                    pass
        return ws


async def _in_loop(kind: str, scenario: Scenario) -> None:
    server = WebsocketsServer() if kind == "websockets" else AiohttpServer()
    async with server:
        await scenario(server.url, VIRTUAL)


# -- the node server ------------------------------------------------------------------------


def _node_modules() -> Path | None:
    """The node_modules folder that holds ``ws``: $STATESOCK_NODE_MODULES, else the first
    ``build/node/node_modules`` at the project's root or above it (the sdist's own tests, run
    by ``make wheel-smoke`` under build/, find the repository's)."""
    named = os.environ.get("STATESOCK_NODE_MODULES")
    candidates = [Path(named)] if named else []
    candidates += [folder / "build" / "node" / "node_modules" for folder in (ROOT, *ROOT.parents)]
    return next((c for c in candidates if (c / "ws" / "package.json").is_file()), None)


def _unavailable(why: str) -> None:
    message = f"the node ws interop server cannot run: {why}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI runs make test, which runs make interop)")
    pytest.skip(f"SKIPPED LOUDLY: {message}")


@pytest.fixture(scope="module")
def node_url() -> Iterator[str]:
    """Start ws_server.mjs once for the module; its URL (it prints its port)."""
    node = shutil.which("node")
    modules = _node_modules()
    if node is None:
        _unavailable("node is not on PATH (install Node.js and npm, then run make interop)")
    if modules is None:
        _unavailable("the ws package is not in build/node/node_modules (run make interop)")
    assert node is not None and modules is not None
    process = subprocess.Popen(
        [node, str(NODE_SERVER)],
        stdin=subprocess.PIPE,  # the server exits when this closes
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NODE_PATH": str(modules)},
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], 15)
        line = process.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            process.kill()
            _, errors = process.communicate(timeout=5)
            pytest.fail(f"the node ws server did not start: {line!r} {errors[-2000:]}")
        yield f"ws://127.0.0.1:{int(line)}/"
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()


def run_real(coro: Coroutine[Any, Any, None], *, timeout: float = 15.0) -> None:
    """Run ``coro`` on a new (real-time) event loop; fail if it leaves a task running."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(coro, timeout))
        for _ in range(3):
            loop.run_until_complete(asyncio.sleep(0))
        leftover = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
        assert not leftover, f"tasks left running: {[t.get_name() for t in leftover]}"
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


Run = Callable[[Scenario], None]


def _server_id(kind: object) -> str:
    return f"{kind}-server"


@pytest.fixture(params=SERVERS, ids=_server_id)
def server(request: pytest.FixtureRequest) -> Run:
    """Runs a scenario against this server: in virtual time in the test's own loop, or (node)
    in real time against the node process."""
    kind: str = request.param
    if kind == "node":
        url: str = request.getfixturevalue("node_url")
        return lambda scenario: run_real(scenario(url, REAL))
    return lambda scenario: run_virtual(_in_loop(kind, scenario), end=3_600)


async def _next_of_type(events: Any, kind: str) -> AppEvent:
    async for event in events:
        if event.type == kind:
            assert isinstance(event, AppEvent)
            return event
    raise AssertionError(f"the stream ended before a {kind!r} event: {events.cause!r}")


# -- the scenarios --------------------------------------------------------------------------


async def connect_auth_ack(url: str, t: Timing) -> None:
    client = make_client(url, **t.options())
    seen = transitions_of(client)
    snapshot = await client.connect()
    assert snapshot.state is S.CONNECTED
    assert re.fullmatch(r"c-\d+", snapshot.health.connection_id or "")  # from the ack
    assert seen == coming_up("initialized")
    impostor = make_client(url, on_connection_established=auth_hook("wrong"), **t.options())
    with pytest.raises(ConnectFailed) as info:
        await impostor.connect()
    assert info.value.source == ServerInitiated(4401, "invalid token")
    await impostor.close()
    assert (await client.disconnect()).source == UserInitiated()
    await client.close()


def test_connect_authenticate_and_ack(server: Run) -> None:
    server(connect_auth_ack)


async def slow_reader(url: str, t: Timing) -> None:
    count = 1000
    client = make_client(url, event_queue_size=16, **t.options())
    seen = transitions_of(client)
    events = client.events(AppEvent)
    await client.connect()
    await client.send({"type": "burst", "count": count})
    got: list[int] = []
    paused = 0.0
    async for event in events:
        got.append(event.payload["seq"])
        paused = max(paused, client.stats.reading_paused_for)
        if len(got) == count:
            break
        await asyncio.sleep(t.per_event)
    assert got == list(range(count))  # every event, in order
    assert events.dropped == 0 and client.stats.events_dropped == 0
    assert paused > 0  # the client stopped reading for the reader: TCP held the rest
    await asyncio.sleep(t.ping_interval + t.pong_timeout)
    assert client.health.pongs >= 1
    assert client.state.state is S.CONNECTED
    assert [change for change in seen if change[2] == "no_pong"] == []
    await client.close()


def test_a_thousand_events_in_order_to_a_slow_reader(server: Run) -> None:
    server(slow_reader)


async def _health(url: str, t: Timing, *, protocol_pings: bool) -> tuple[Any, int]:
    """Connect, let three health checks go by, return the client and the server's count."""
    options = t.options()
    if protocol_pings:
        options["ping_request_builder"] = lambda health: None
    client = make_client(url, **options)
    events = client.events(AppEvent)
    await client.connect()
    await asyncio.sleep(3 * t.ping_interval + t.ping_interval / 3)
    await client.send({"type": "stats"})
    stats = await _next_of_type(events, "stats")
    assert client.state.state is S.CONNECTED
    return client, stats.payload["health_checks"]


async def json_health_checks(url: str, t: Timing) -> None:
    client, checks = await _health(url, t, protocol_pings=False)
    pongs = client.health.pongs
    if t.virtual:
        assert checks == pongs == 3
    else:  # a check may go out between the count and the question
        assert checks >= pongs >= 2
    assert client.health.round_trip is not None
    await client.close()


def test_json_health_checks_are_answered(server: Run) -> None:
    server(json_health_checks)


async def protocol_pings(url: str, t: Timing) -> None:
    client, checks = await _health(url, t, protocol_pings=True)
    assert checks == 0  # no JSON health check went out: Ping frames did
    assert client.health.pongs == 3 if t.virtual else client.health.pongs >= 2
    assert client.health.round_trip is not None
    await client.close()


def test_protocol_pings_are_answered_by_the_server_library(server: Run) -> None:
    server(protocol_pings)


async def close_1008(url: str, t: Timing) -> None:
    client = make_client(url, **t.options())
    seen = transitions_of(client)
    events = client.events(AppEvent)
    await client.connect()
    await client.send({"type": "close", "code": 1008, "reason": "policy violated"})
    source = await client.wait_done()
    assert source == ServerInitiated(1008, "policy violated")
    assert client.final_source == source and client.state.source == source
    assert seen[-1] == ("connected", "disconnected", "server")
    assert [event async for event in events] == []  # the stream ends, with the cause
    assert events.cause == source
    await client.close()


def test_a_server_close_with_1008_ends_the_client(server: Run) -> None:
    server(close_1008)


async def close_1011_recovered(url: str, t: Timing) -> None:
    client = make_client(url, **t.options())
    handler = ConnectionRecoveryHandler(client, strategy=DelayList([0.1]))
    changes = client.states()
    seen = transitions_of(client)
    await client.connect()
    first = client.health.connection_id
    await client.send({"type": "close", "code": 1011, "reason": "overloaded"})
    loop = asyncio.get_running_loop()
    down_at = delay = -1.0
    async for change in changes:
        if change.current is S.DISCONNECTED:
            assert change.source == ServerInitiated(1011, "overloaded")
            down_at = loop.time()
        elif change.current is S.CONNECTING and down_at >= 0:
            delay = loop.time() - down_at
        elif change.current is S.CONNECTED and down_at >= 0:
            break
    assert seen == [
        *coming_up("initialized"),
        ("connected", "disconnected", "server"),
        *coming_up("disconnected"),
    ]
    if t.virtual:
        assert delay == pytest.approx(0.1, abs=0.005)
    else:
        assert delay >= 0.09
    assert client.health.connection_id not in (None, first)  # a new connection's ack
    assert client.stats.reconnects == 1
    handler.close()
    await changes.aclose()
    await client.close()


def test_a_server_close_with_1011_is_recovered(server: Run) -> None:
    server(close_1011_recovered)


async def fragmented(url: str, t: Timing) -> None:
    client = make_client(url, **t.options())
    events = client.events(AppEvent)
    await client.connect()
    parts = ['{"type": "event", "seq": 7, ', '"pad": "' + "é" * 1000, "x" * 70_000, '"}']
    await client.send({"type": "fragments", "parts": parts})
    await client.send({"type": "burst", "count": 1})
    whole = await anext(events)
    assert whole.payload == json.loads("".join(parts))  # one event: the parts reassembled
    after = await anext(events)
    assert after.payload["seq"] == 0
    assert client.stats.decode_errors == 0
    await client.close()


@pytest.mark.parametrize("server", FRAGMENTING, indirect=True, ids=_server_id)
def test_a_fragmented_message_is_reassembled(server: Run) -> None:
    server(fragmented)


async def too_large(url: str, t: Timing) -> None:
    client = make_client(url, **t.options())
    await client.connect()
    await client.send({"type": "burst", "count": 1, "size": BIG})
    source = await client.wait_done()
    assert isinstance(source, ServerInitiated)
    assert source.close_code is None  # the server closed nothing: the client's limit did
    assert isinstance(source.error, MessageTooLarge)
    assert f"max_size ({2**20} bytes)" in source.close_reason
    await client.close()


def test_a_message_over_max_size_ends_with_message_too_large(server: Run) -> None:
    server(too_large)
