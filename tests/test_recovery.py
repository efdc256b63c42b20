"""ConnectionRecoveryHandler against real loopback servers and a fault proxy, virtual time.

Each case asserts the exact state sequence and sources.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from statesock.client import WebSocketClient
from statesock.exceptions import (
    ConnectFailed,
    NameResolutionFailed,
    SendAbandoned,
    SendBufferFull,
    SendExpired,
)
from statesock.machine import ConnectionState, StateChange
from statesock.network import ManualNetworkMonitor
from statesock.recovery import ConnectionRecoveryHandler
from statesock.retry import DelayList, ExponentialBackoff, RetryStrategy
from statesock.settings import MAX_QUEUE_SIZE as MAX_QUEUE
from statesock.sources import (
    NoPongReceived,
    ServerInitiated,
    SystemInitiated,
    Timeout,
    UserInitiated,
    is_auth_rejection,
)
from statesock.testing import FaultProxy, TestServer, auth_hook
from tests.conftest import (
    coming_up,
    make_client,
    run_virtual,
    swap_socket,
    transitions_of,
    virtual_time,
    wait_for_state,
)

S = ConnectionState
CONNECT_UP = coming_up("disconnected")


def connect_times(client: WebSocketClient) -> list[float]:
    times: list[float] = []

    def listen(record: object) -> None:
        if isinstance(record, StateChange) and record.current is S.CONNECTING:
            times.append(record.at)

    client.add_listener(listen)
    return times


@contextlib.asynccontextmanager
async def proxied_server(**kwargs: Any) -> AsyncIterator[tuple[TestServer, FaultProxy]]:
    async with TestServer(**kwargs) as server, FaultProxy(server.port) as proxy:
        yield server, proxy


@virtual_time
async def test_server_killed_and_restarted_on_the_same_port() -> None:
    server = await TestServer().start()
    client = make_client(server.url)
    handler = ConnectionRecoveryHandler(client)
    seen = transitions_of(client)
    await client.connect()
    await server.kill()
    await asyncio.sleep(5)
    assert client.state.state is S.DISCONNECTED
    loop = asyncio.get_running_loop()
    restarted = loop.time()
    await server.start()
    await wait_for_state(client, S.CONNECTED)
    back_after = loop.time() - restarted
    assert back_after <= 8.0  # bounded by the backoff delay pending at the restart
    assert seen[3] == ("connected", "disconnected", "server")
    assert seen[-3:] == CONNECT_UP
    # Between the crash and the restart every attempt was refused: server sources only.
    assert {kind for _, dst, kind in seen[3:-3] if dst == "disconnected"} == {"server"}
    handler.close()
    await client.close()
    await server.stop()


@virtual_time
async def test_blackhole_while_connected_is_detected_by_ping_and_recovered() -> None:
    async with proxied_server() as (_server, proxy):
        client = make_client(proxy.url, ping_interval=25, pong_timeout=3, connect_timeout=10)
        handler = ConnectionRecoveryHandler(client, strategy=DelayList([1.0]))
        seen = transitions_of(client)
        await client.connect()
        loop = asyncio.get_running_loop()
        proxy.set_mode("blackhole")
        await wait_for_state(client, S.DISCONNECTED)
        assert loop.time() == pytest.approx(28.0, abs=0.01)  # ping_interval + pong_timeout
        assert client.state.source == NoPongReceived()
        await asyncio.sleep(15)  # one attempt into the hole: connect timeout
        assert ("connecting", "disconnecting", "timeout") in seen
        proxy.set_mode("pass")
        await wait_for_state(client, S.CONNECTED)
        assert seen[3:5] == [
            ("connected", "disconnecting", "no_pong"),
            ("disconnecting", "disconnected", "no_pong"),
        ]
        assert seen[-3:] == CONNECT_UP
        handler.close()
        await client.close()


@virtual_time
async def test_blackhole_during_the_handshake_is_a_connect_timeout() -> None:
    async with proxied_server() as (_server, proxy):
        proxy.set_mode("blackhole")
        client = make_client(proxy.url, connect_timeout=10)
        seen = transitions_of(client)
        with pytest.raises(ConnectFailed) as info:
            await client.connect()
        assert info.value.source == Timeout(S.CONNECTING)
        assert asyncio.get_running_loop().time() == pytest.approx(10, abs=0.01)
        assert seen == [
            ("initialized", "connecting", ""),
            ("connecting", "disconnecting", "timeout"),
            ("disconnecting", "disconnected", "timeout"),
        ]
        await client.close()


@virtual_time
async def test_blackhole_during_auth_is_an_auth_timeout() -> None:
    async with proxied_server() as (_server, proxy):
        client = make_client(proxy.url, auth_timeout=10)

        def hole_on_open(record: object) -> None:
            if isinstance(record, StateChange) and record.current is S.AUTHENTICATING:
                proxy.set_mode("blackhole")

        client.add_listener(hole_on_open)
        seen = transitions_of(client)
        with pytest.raises(ConnectFailed) as info:
            await client.connect()
        assert info.value.source == Timeout(S.AUTHENTICATING)
        assert seen[-3:] == [
            ("connecting", "authenticating", ""),
            ("authenticating", "disconnecting", "timeout"),
            ("disconnecting", "disconnected", "timeout"),
        ]
        await client.close()


def _attempts_in_ten_seconds(
    code: int, *, after_auth: bool, strategy: RetryStrategy | None = None
) -> tuple[int, bool]:
    async def scenario() -> tuple[int, bool]:
        async with TestServer() as server:
            if after_auth:
                server.close_on_auth = (code, "bye")
            else:
                server.close_on_open = (code, "bye")
            client = make_client(server.url)
            # Exponential backoff, so that the count shows whether the backoff was reset.
            handler = ConnectionRecoveryHandler(client, strategy=strategy or ExponentialBackoff())
            times = connect_times(client)
            with contextlib.suppress(ConnectFailed):
                await client.connect()
            await asyncio.sleep(10 - asyncio.get_running_loop().time())
            attempts = len(times)
            gave_up = handler.gave_up
            handler.close()
            await client.close()
            return attempts, gave_up

    return run_virtual(scenario())


def test_accept_then_close_1011_backs_off() -> None:
    attempts, gave_up = _attempts_in_ten_seconds(1011, after_auth=False)
    assert 3 <= attempts <= 6, attempts
    assert not gave_up


def test_flapping_after_auth_does_not_reset_the_backoff() -> None:
    attempts, gave_up = _attempts_in_ten_seconds(1011, after_auth=True)
    assert 3 <= attempts <= 6, attempts
    assert not gave_up


def test_the_default_strategy_never_loops_tightly_on_an_accept_then_close_server() -> None:
    # The default paces retries 1-2 s apart while a fleet may be coming back.
    from statesock.retry import as_strategy

    attempts, gave_up = _attempts_in_ten_seconds(1011, after_auth=True, strategy=as_strategy(None))
    assert 5 <= attempts <= 11, attempts
    assert not gave_up


def test_accept_then_close_1008_stops() -> None:
    attempts, gave_up = _attempts_in_ten_seconds(1008, after_auth=False)
    assert attempts == 1
    assert gave_up


@virtual_time
async def test_stable_connection_resets_the_attempt_count() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        handler = ConnectionRecoveryHandler(client, stable_after=10)
        await client.connect()
        for _ in range(3):
            await asyncio.sleep(30)
            await server.close_all(1011)
            await wait_for_state(client, S.CONNECTED)
            assert handler.attempt == 1
        handler.close()
        await client.close()


@virtual_time
async def test_http_503_retry_after_is_honoured() -> None:
    async with TestServer() as server:
        server.reject_status = 503
        server.reject_headers = {"Retry-After": "7"}
        client = make_client(server.url)
        handler = ConnectionRecoveryHandler(client)
        times = connect_times(client)
        with capture_logs() as logs:
            with pytest.raises(ConnectFailed):
                await client.connect()
            scheduled = [e for e in logs if e["event"] == "reconnect_scheduled"]
        assert scheduled[0]["retry_in"] >= 7.0
        server.reject_status = None
        await wait_for_state(client, S.CONNECTED)
        assert times[1] - times[0] >= 7.0
        handler.close()
        await client.close()


@virtual_time
async def test_401_gets_one_retry_with_a_fresh_token() -> None:
    tokens = iter(["stale", "fresh"])

    async def provider() -> str:
        return next(tokens)

    async with TestServer() as server:
        server.require_header = ("Authorization", "Bearer fresh")
        client: WebSocketClient = make_client(
            server.url,
            token_provider=provider,
            headers=lambda: {"Authorization": f"Bearer {client.token}"},
        )
        handler = ConnectionRecoveryHandler(client)
        seen = transitions_of(client)
        with pytest.raises(ConnectFailed, match="401"):
            await client.connect()
        await wait_for_state(client, S.CONNECTED)
        assert client.token == "fresh"
        assert seen[:2] == [
            ("initialized", "connecting", ""),
            ("connecting", "disconnected", "server"),
        ]
        assert seen[-3:] == CONNECT_UP
        handler.close()
        await client.close()


@virtual_time
async def test_401_with_a_token_that_stays_wrong_stops_after_one_retry() -> None:
    async with TestServer() as server:
        server.require_header = ("Authorization", "Bearer fresh")
        client: WebSocketClient = make_client(
            server.url,
            token_provider=lambda: "stale",
            headers=lambda: {"Authorization": f"Bearer {client.token}"},
        )
        handler = ConnectionRecoveryHandler(client)
        times = connect_times(client)
        with pytest.raises(ConnectFailed):
            await client.connect()
        await asyncio.sleep(60)
        assert len(times) == 2
        assert handler.gave_up
        handler.close()
        await client.close()


@virtual_time
async def test_401_without_a_token_provider_stops_at_once() -> None:
    async with TestServer() as server:
        server.reject_status = 401
        client = make_client(server.url)
        handler = ConnectionRecoveryHandler(client)
        times = connect_times(client)
        with pytest.raises(ConnectFailed):
            await client.connect()
        await asyncio.sleep(60)
        assert len(times) == 1
        assert handler.gave_up
        handler.close()
        await client.close()


@virtual_time
async def test_4401_close_gets_one_retry_with_a_fresh_token() -> None:
    tokens = iter(["stale", "fresh", "fresh"])
    async with TestServer(token="fresh") as server:
        client: WebSocketClient = make_client(
            server.url,
            token_provider=lambda: next(tokens),
            on_connection_established=auth_hook(lambda: client.token or ""),
        )
        handler = ConnectionRecoveryHandler(client)
        with pytest.raises(ConnectFailed) as info:
            await client.connect()
        assert is_auth_rejection(info.value.source)
        await wait_for_state(client, S.CONNECTED)
        handler.close()
        await client.close()


@virtual_time
async def test_unresolvable_host_is_retried() -> None:
    loop = asyncio.get_running_loop()
    real_getaddrinfo = loop.getaddrinfo

    async def no_dns(host: Any, *args: Any, **kwargs: Any) -> Any:
        # Never ask a real resolver: .invalid must not leave this machine.
        if isinstance(host, str) and host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return await real_getaddrinfo(host, *args, **kwargs)

    loop.getaddrinfo = no_dns  # type: ignore[method-assign]
    try:
        client = make_client("ws://statesock-test.invalid:9/")
        handler = ConnectionRecoveryHandler(client, strategy=DelayList([5.0], repeat=False))
        times = connect_times(client)
        with pytest.raises(ConnectFailed) as info:
            await client.connect()
        source = info.value.source
        assert isinstance(source, ServerInitiated)
        assert isinstance(source.error, NameResolutionFailed)
        await asyncio.sleep(30)
        assert times == [0.0, 5.0]
        assert handler.gave_up
        handler.close()
        await client.close()
    finally:
        loop.getaddrinfo = real_getaddrinfo  # type: ignore[method-assign]


@virtual_time
async def test_network_down_and_up() -> None:
    async with TestServer() as server:
        monitor = ManualNetworkMonitor()
        client = make_client(server.url)
        handler = ConnectionRecoveryHandler(client, monitor)
        seen = transitions_of(client)
        await client.connect()
        monitor.set_available(False)
        await wait_for_state(client, S.DISCONNECTED)
        assert client.state.source == SystemInitiated("network unavailable")
        await asyncio.sleep(100)
        assert server.handshakes == 1  # no attempt while offline
        loop = asyncio.get_running_loop()
        back = loop.time()
        monitor.set_available(True)
        await wait_for_state(client, S.CONNECTED)
        assert loop.time() - back == pytest.approx(0, abs=0.01)  # no backoff
        assert seen[3:5] == [
            ("connected", "disconnecting", "system"),
            ("disconnecting", "disconnected", "system"),
        ]
        assert seen[-3:] == CONNECT_UP
        handler.close()
        await client.close()


@virtual_time
async def test_pause_and_resume() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        handler = ConnectionRecoveryHandler(client)
        await client.connect()
        handler.pause()
        await wait_for_state(client, S.DISCONNECTED)
        assert client.state.source == SystemInitiated("app paused")
        await asyncio.sleep(300)
        assert server.handshakes == 1
        handler.resume()
        await wait_for_state(client, S.CONNECTED)
        assert server.handshakes == 2
        handler.close()
        await client.close()


@pytest.mark.parametrize("when", ["connecting", "authenticating", "connected", "backoff"])
def test_user_disconnect_at_any_moment_means_no_reconnect(when: str) -> None:
    async def scenario() -> None:
        async with TestServer() as server:
            client = make_client(server.url)
            handler = ConnectionRecoveryHandler(client, strategy=DelayList([5.0]))
            times = connect_times(client)
            if when == "backoff":
                await client.connect()
                await server.close_all(1011)
                await wait_for_state(client, S.DISCONNECTED)
                assert handler.waiting
            elif when == "authenticating":
                server.ack = False
                asyncio.ensure_future(client.connect()).add_done_callback(_ignore)
                await wait_for_state(client, S.AUTHENTICATING)
            elif when == "connecting":
                asyncio.ensure_future(client.connect()).add_done_callback(_ignore)
                await wait_for_state(client, S.CONNECTING)
            else:
                await client.connect()
            attempts = len(times)
            await client.disconnect()
            await asyncio.sleep(300)
            assert len(times) == attempts
            assert client.state.state is S.DISCONNECTED
            assert client.state.source == UserInitiated()
            assert not handler.waiting
            handler.close()
            await client.close()

    run_virtual(scenario())


def _ignore(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


@virtual_time
async def test_send_buffer_flushes_in_order_after_reconnect() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        handler = ConnectionRecoveryHandler(
            client, strategy=DelayList([5.0]), send_buffer_size=10, send_ttl=30
        )
        await client.connect()
        await server.close_all(1011)
        await wait_for_state(client, S.DISCONNECTED)
        sends = [asyncio.ensure_future(client.send({"type": "n", "i": i})) for i in range(5)]
        await asyncio.sleep(0.1)
        assert not any(s.done() for s in sends)
        await asyncio.gather(*sends)
        assert client.state.state is S.CONNECTED
        received = [m["i"] for m in server.received if isinstance(m, dict) and m.get("type") == "n"]
        assert received == [0, 1, 2, 3, 4]
        handler.close()
        await client.close()


@virtual_time
async def test_send_buffer_expiry_full_and_abandon_are_clear_errors() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        handler = ConnectionRecoveryHandler(
            client, strategy=DelayList([100.0]), send_buffer_size=2, send_ttl=10
        )
        await client.connect()
        await server.close_all(1011)
        await wait_for_state(client, S.DISCONNECTED)
        with pytest.raises(SendExpired):
            await client.send("late")
        first = asyncio.ensure_future(client.send("a"))
        second = asyncio.ensure_future(client.send("b"))
        await asyncio.sleep(0)
        with pytest.raises(SendBufferFull):
            await client.send("c")
        await client.disconnect()
        for waiting in (first, second):
            with pytest.raises(SendAbandoned, match="user disconnected"):
                await waiting
        assert handler.send_buffer is not None
        assert (handler.send_buffer.expired, handler.send_buffer.abandoned) == (1, 2)
        handler.close()
        await client.close()


@virtual_time
async def test_giving_up_abandons_waiting_senders() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        handler = ConnectionRecoveryHandler(
            client, strategy=DelayList([1.0], repeat=False), send_buffer_size=5
        )
        await client.connect()
        await server.stop()
        await wait_for_state(client, S.DISCONNECTED)
        waiting = asyncio.ensure_future(client.send("x"))
        with pytest.raises(SendAbandoned, match="recovery stopped"):
            await waiting
        assert handler.gave_up
        handler.close()
        await client.close()


@virtual_time
async def test_close_leaves_no_timer_and_stops_listening() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        handler = ConnectionRecoveryHandler(client, strategy=DelayList([50.0]))
        await client.connect()
        await server.close_all(1011)
        await wait_for_state(client, S.DISCONNECTED)
        assert handler.waiting
        handler.close()
        assert not handler.waiting
        await asyncio.sleep(100)
        assert server.handshakes == 1
        await client.close()


@pytest.mark.parametrize("broken", ["policy", "strategy"])
def test_a_raising_policy_or_strategy_gives_up_loudly(broken: str) -> None:
    def explode(*args: object) -> Any:
        raise RuntimeError("user bug")

    async def scenario() -> None:
        async with TestServer() as server:
            client = make_client(server.url)
            options: dict[str, Any] = {broken: explode}
            handler = ConnectionRecoveryHandler(client, **options)
            await client.connect()
            with capture_logs() as logs:
                await server.close_all(1011)
                await wait_for_state(client, S.DISCONNECTED)
            assert handler.gave_up
            assert client.stats.callback_errors == 1
            assert any(e["event"] == "recovery_stopped" for e in logs)
            handler.close()
            await client.close()

    run_virtual(scenario())


# -- faults that once left a client stuck or leaking -----------------------------------------


@virtual_time
async def test_connect_and_disconnect_in_the_same_tick_never_sticks_in_disconnecting() -> None:
    # The socket task used to be cancelled before its first step, so it never reported its
    # close: the client stayed in disconnecting and every later connect() hung.
    async with TestServer() as server:
        client = make_client(server.url)
        attempt = asyncio.ensure_future(client.connect())
        await asyncio.sleep(0)
        snapshot = await asyncio.wait_for(client.disconnect(), 2)
        assert snapshot.state is S.DISCONNECTED
        with pytest.raises(ConnectFailed):
            await attempt
        assert (await asyncio.wait_for(client.connect(), 5)).state is S.CONNECTED
        await client.close()


@virtual_time
async def test_a_hung_auth_hook_is_cancelled_with_its_socket_and_never_piles_up() -> None:
    hooks_alive = 0
    sockets_seen: list[int] = []

    async def never_returns(client: WebSocketClient) -> None:
        nonlocal hooks_alive
        hooks_alive += 1
        sockets_seen.append(id(client._socket(client._core.socket or 0)))
        try:
            await asyncio.Event().wait()
        finally:
            hooks_alive -= 1

    async with TestServer() as server:
        client = make_client(server.url, on_connection_established=never_returns, auth_timeout=2)
        handler = ConnectionRecoveryHandler(client, strategy=DelayList([0.5]))
        with contextlib.suppress(ConnectFailed):
            await client.connect()
        await asyncio.sleep(30)
        assert len(sockets_seen) >= 9  # it kept trying, one hook per attempt...
        assert hooks_alive <= 1  # ...and the previous attempts' hooks were all cancelled
        handler.close()
        started = asyncio.get_running_loop().time()
        await client.close()
        assert hooks_alive == 0
        assert asyncio.get_running_loop().time() - started < 1.0  # close() did not wait


@virtual_time
async def test_the_network_flapping_within_one_tick_ends_connected() -> None:
    async with TestServer() as server:
        monitor = ManualNetworkMonitor()
        client = make_client(server.url)
        handler = ConnectionRecoveryHandler(client, monitor)
        await client.connect()
        monitor.set_available(False)
        monitor.set_available(True)
        await asyncio.wait_for(wait_for_state(client, S.DISCONNECTED), 5)
        await asyncio.wait_for(wait_for_state(client, S.CONNECTED), 5)
        assert not handler.gave_up
        handler.pause()
        handler.resume()
        await asyncio.wait_for(wait_for_state(client, S.CONNECTED), 5)
        assert client.state.state is S.CONNECTED
        handler.close()
        await client.close()


@virtual_time
async def test_engine_only_triggers_have_no_back_door() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        await client.connect()
        assert not hasattr(client, "machine")
        assert not hasattr(client.state, "closed")  # the snapshot is data, not a machine
        await client.close()


@virtual_time
async def test_a_network_already_down_when_recovery_attaches_is_waited_for() -> None:
    async with TestServer() as server:
        monitor = ManualNetworkMonitor(available=False)
        client = make_client(server.url)
        handler = ConnectionRecoveryHandler(client, monitor, strategy=DelayList([1.0]))
        assert not handler.network_available
        await client.connect()  # the user's own connect is tried whatever the monitor says
        await server.close_all(1011, "")
        await wait_for_state(client, S.DISCONNECTED)
        await asyncio.sleep(60)
        assert server.handshakes == 1  # offline: no attempt, no backoff
        assert handler.retry_in is None and not handler.gave_up and not client.done
        loop = asyncio.get_running_loop()
        back = loop.time()
        monitor.set_available(True)
        await asyncio.wait_for(wait_for_state(client, S.CONNECTED), 5)
        assert loop.time() - back == pytest.approx(0, abs=0.01)  # at once
        assert server.handshakes == 2
        handler.close()
        await client.close()


# -- what the handler refuses at construction, and its defaults ---------------------------------


class Thing:
    """An object that is no network monitor, with a stable repr."""

    def __repr__(self) -> str:
        return "<thing>"


class HalfMonitor(Thing):
    available = True
    subscribe = 5  # not callable


class NoSubscribe(Thing):
    available = True


class VagueMonitor(Thing):
    available = "yes"

    def subscribe(self, callback: object) -> object:
        return lambda: None


MONITOR_MESSAGE = (
    "network_monitor must be a NetworkMonitor (a bool 'available' and a callable 'subscribe'), "
    "not <thing>"
)
HANDLER_REFUSALS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"network_monitor": Thing()}, TypeError, MONITOR_MESSAGE),
    ({"network_monitor": HalfMonitor()}, TypeError, MONITOR_MESSAGE),
    ({"network_monitor": NoSubscribe()}, TypeError, MONITOR_MESSAGE),
    (
        {"network_monitor": VagueMonitor()},
        TypeError,
        "network_monitor.available must be True or False, not 'yes' (from <thing>)",
    ),
    ({"policy": 5}, TypeError, "policy must be callable (source) -> bool, not 5"),
    ({"stable_after": "10"}, TypeError, "stable_after must be a number of seconds, not '10'"),
    ({"stable_after": True}, TypeError, "stable_after must be a number of seconds, not True"),
    ({"stable_after": -1}, ValueError, "stable_after must be >= 0 and finite, not -1"),
    ({"stable_after": float("nan")}, ValueError, "stable_after must be >= 0 and finite, not nan"),
    ({"send_buffer_size": 1.5}, TypeError, "send_buffer_size must be an int, not 1.5"),
    ({"send_buffer_size": True}, TypeError, "send_buffer_size must be an int, not True"),
    ({"send_buffer_size": -1}, ValueError, f"send_buffer_size must be in 0..{MAX_QUEUE}, not -1"),
    (
        {"send_buffer_size": MAX_QUEUE + 1},
        ValueError,
        f"send_buffer_size must be in 0..{MAX_QUEUE}, not {MAX_QUEUE + 1}",
    ),
    ({"send_ttl": "30"}, TypeError, "send_ttl must be a number of seconds, not '30'"),
    ({"send_ttl": True}, TypeError, "send_ttl must be a number of seconds, not True"),
    ({"send_ttl": 0}, ValueError, "send_ttl must be a positive, finite number, not 0"),
    ({"send_ttl": float("inf")}, ValueError, "send_ttl must be a positive, finite number, not inf"),
    (
        {"retry_first_connect": "no"},
        TypeError,
        "retry_first_connect must be True or False, not 'no'",
    ),
]


@pytest.mark.parametrize(
    ("arguments", "kind", "message"), HANDLER_REFUSALS, ids=[m for _, _, m in HANDLER_REFUSALS]
)
def test_a_bad_recovery_argument_is_refused_naming_it(
    arguments: dict[str, Any], kind: type[Exception], message: str
) -> None:
    client = make_client("ws://127.0.0.1:9/")
    with pytest.raises(kind) as refused:
        ConnectionRecoveryHandler(client, **arguments)
    assert str(refused.value) == message
    ConnectionRecoveryHandler(client).close()  # nothing was attached by the refusal


def test_a_recovery_handler_needs_a_client() -> None:
    with pytest.raises(TypeError) as refused:
        ConnectionRecoveryHandler("ws://x/")  # type: ignore[arg-type]
    assert str(refused.value) == "client must be a WebSocketClient, not 'ws://x/'"


def test_the_edges_of_the_accepted_recovery_ranges_are_accepted() -> None:
    edges: list[dict[str, Any]] = [
        {"stable_after": 0, "send_buffer_size": 0, "send_ttl": 0.001},
        {"stable_after": 0.5, "send_buffer_size": MAX_QUEUE, "send_ttl": 0.5},
    ]
    for arguments in edges:
        handler = ConnectionRecoveryHandler(make_client("ws://127.0.0.1:9/"), **arguments)
        assert handler.stable_after == float(arguments["stable_after"])
        handler.close()


def test_the_recovery_defaults() -> None:
    from statesock.sources import default_reconnect_policy

    client = make_client("ws://127.0.0.1:9/")
    handler = ConnectionRecoveryHandler(client)
    assert handler.policy is default_reconnect_policy
    assert handler.stable_after == 10.0
    assert handler.send_buffer is None  # no buffer unless asked for
    assert handler.network_monitor is None and handler.network_available
    handler.close()
    buffered = ConnectionRecoveryHandler(make_client("ws://127.0.0.1:9/"), send_buffer_size=1)
    assert buffered.send_buffer is not None
    assert (buffered.send_buffer.size, buffered.send_buffer.ttl) == (1, 30.0)
    buffered.close()


def test_closing_twice_unsubscribes_once() -> None:
    unsubscribed: list[int] = []

    class CountingMonitor:
        available = True

        def subscribe(self, callback: object) -> Any:
            return lambda: unsubscribed.append(1)

    handler = ConnectionRecoveryHandler(make_client("ws://127.0.0.1:9/"), CountingMonitor())
    handler.close()
    handler.close()
    assert unsubscribed == [1]


# -- bounded in virtual time: a broken flush or resume fails here at once, not by hanging --------


@virtual_time
async def test_buffered_messages_are_written_right_after_the_reconnect() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        handler = ConnectionRecoveryHandler(
            client, strategy=DelayList([5.0]), send_buffer_size=10, send_ttl=30
        )
        await client.connect()
        await server.close_all(1011)
        await asyncio.wait_for(wait_for_state(client, S.DISCONNECTED), 5)
        loop = asyncio.get_running_loop()
        dropped_at = loop.time()
        sends = [asyncio.ensure_future(client.send({"type": "n", "i": i})) for i in range(3)]
        await asyncio.wait_for(asyncio.gather(*sends), 10)
        assert loop.time() - dropped_at == pytest.approx(5.0, abs=0.5)  # the backoff, no more
        assert client.stats.sends_expired == client.stats.sends_abandoned == 0
        handler.close()
        await client.close()


@virtual_time
async def test_resume_reconnects_at_once() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        handler = ConnectionRecoveryHandler(client)
        await client.connect()
        handler.pause()
        await asyncio.wait_for(wait_for_state(client, S.DISCONNECTED), 5)
        assert handler.paused
        handler.resume()
        await asyncio.wait_for(wait_for_state(client, S.CONNECTED), 1)
        assert not handler.paused
        handler.close()
        handler.resume()  # after close: nothing
        await client.close()


@virtual_time
async def test_expired_buffered_messages_are_each_counted() -> None:
    from statesock.exceptions import SendExpired

    client = make_client("ws://127.0.0.1:9/")  # nothing listens: it never connects
    handler = ConnectionRecoveryHandler(
        client, strategy=DelayList([100.0]), send_buffer_size=5, send_ttl=2
    )
    with contextlib.suppress(ConnectFailed):
        await client.connect()
    sends = [asyncio.ensure_future(client.send(f"m{i}")) for i in range(2)]
    results = await asyncio.wait_for(asyncio.gather(*sends, return_exceptions=True), 10)
    assert all(isinstance(r, SendExpired) for r in results)
    assert client.stats.sends_expired == 2
    handler.close()
    await client.close()


class FailingOnce:
    """A socket handle whose first send fails as if the socket broke under it."""

    def __init__(self, handle: Any) -> None:
        self.handle, self.failed = handle, False
        self.tasks: list[str] = []

    async def send(self, data: str | bytes) -> None:
        from statesock.exceptions import ConnectionLost

        task = asyncio.current_task()
        self.tasks.append(task.get_name() if task is not None else "")
        if not self.failed:
            self.failed = True
            raise ConnectionLost("broke under the write")
        await self.handle.send(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)


@virtual_time
async def test_a_buffered_write_that_fails_is_written_again_once() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        handler = ConnectionRecoveryHandler(
            client, strategy=DelayList([1.0]), send_buffer_size=10, send_ttl=30
        )
        await client.connect()
        wrapped: list[int] = []

        def break_the_next_socket(record: object) -> None:
            if isinstance(record, StateChange) and record.current is S.AUTHENTICATING:
                socket = client._core.socket or 0
                if not wrapped:  # only the first socket after the drop
                    wrapped.append(socket)
                    swap_socket(client, socket, FailingOnce(client._socket(socket)))

        await server.close_all(1011)
        await asyncio.wait_for(wait_for_state(client, S.DISCONNECTED), 5)
        client.add_listener(break_the_next_socket)
        sending = asyncio.ensure_future(client.send({"type": "n", "i": 1}))
        await asyncio.wait_for(sending, 10)  # its first write failed: it was written again
        broken = client._socket(wrapped[0])
        assert isinstance(broken, FailingOnce) and broken.failed
        assert set(broken.tasks) == {f"statesock-flush-{client.label}"}
        await asyncio.sleep(0.5)
        received = [m for m in server.received if isinstance(m, dict) and m.get("type") == "n"]
        assert received == [{"type": "n", "i": 1}]  # once
        handler.close()
        await client.close()


@virtual_time
async def test_a_cancelled_buffered_send_is_never_written() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        handler = ConnectionRecoveryHandler(
            client, strategy=DelayList([2.0]), send_buffer_size=10, send_ttl=30
        )
        await client.connect()
        await server.close_all(1011)
        await asyncio.wait_for(wait_for_state(client, S.DISCONNECTED), 5)
        kept = asyncio.ensure_future(client.send({"type": "n", "i": 1}))
        dropped = asyncio.ensure_future(client.send({"type": "n", "i": 2}))
        await asyncio.sleep(0.1)
        dropped.cancel()
        await asyncio.wait_for(kept, 10)
        await asyncio.sleep(0.5)
        received = [m["i"] for m in server.received if isinstance(m, dict) and m.get("type") == "n"]
        assert received == [1]
        assert handler.send_buffer is not None and handler.send_buffer.pending == 0
        assert client._outgoing == {}
        handler.close()
        await client.close()
