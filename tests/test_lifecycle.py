"""Lifecycle a user can trust (issue 10): streams that end, an awaitable end, a first connect
that keeps trying, liveness that measures the peer, and labels that say what happened.

Each test is one fault from the issue, against a real loopback server in virtual time, and
fails on the behaviour the issue reported (noted per test as "Before:").
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from statesock import HealthCheckPongEvent, ServerErrorEvent, WebSocketClient
from statesock.events import ConnectionAckEvent
from statesock.exceptions import (
    ClientClosed,
    ConnectFailed,
    ConnectionEnded,
    ConnectionRefused,
    MessageTooLarge,
)
from statesock.machine import ConnectionState, StateChange
from statesock.recovery import ConnectionRecoveryHandler
from statesock.retry import DelayList
from statesock.sources import (
    NoPongReceived,
    ServerInitiated,
    UserInitiated,
    default_reconnect_policy,
)
from statesock.testing import AppEvent, TestServer
from tests.conftest import make_client, swap_socket, transitions_of, virtual_time

S = ConnectionState
# Every wait below is bounded: a stream that never ends fails the test instead of hanging it.
BOUND = 600.0


# -- the README's Quick start, literally ----------------------------------------------------


def readme_decode(data: str | bytes) -> Any:
    msg = json.loads(data)
    if msg["type"] in ("connection.ok", "health.check"):
        return HealthCheckPongEvent(msg.get("connection_id"))  # ack and pongs
    if msg["type"] == "error":
        return ServerErrorEvent(msg["message"], msg.get("code"), msg.get("retryable", True))
    return msg


async def readme_authenticate(client: WebSocketClient) -> None:
    await client.send({"type": "auth", "token": "..."})


def readme_client(url: str, **options: Any) -> WebSocketClient:
    return WebSocketClient(
        url, readme_decode, on_connection_established=readme_authenticate, **options
    )


async def quick_start_main(client: WebSocketClient) -> list[int]:
    """The Quick start's main(), collecting what it prints."""
    got: list[int] = []
    async with client:
        async for event in client.events(dict):
            got.append(event["seq"])
    return got


def readme_quick_start() -> str:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@virtual_time
async def test_the_readme_quick_start_as_written_ends_when_the_server_goes_away() -> None:
    code = readme_quick_start()
    assert code.count("wss://example.test/connect") == 1 and code.endswith("asyncio.run(main())\n")
    async with TestServer() as server:
        code = code.replace("wss://example.test/connect", server.url)
        namespace: dict[str, Any] = {}
        exec(compile(code.replace("asyncio.run(main())", ""), "README.md", "exec"), namespace)

        async def server_side() -> None:
            await server.wait_for_connections()
            await asyncio.sleep(1)
            await server.send_burst(2)
            await asyncio.sleep(1)
            await server.kill()  # gone for good

        feeding = asyncio.create_task(server_side())
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            async with asyncio.timeout(BOUND):
                await namespace["main"]()
        await feeding
    lines = printed.getvalue().splitlines()
    assert [json.loads(line.replace("'", '"'))["seq"] for line in lines[:-1]] == [0, 1]
    assert lines[-1].startswith("connection ended: ServerInitiated(close_code=1006")


@virtual_time
async def test_quick_start_ends_after_a_1011_close_without_recovery() -> None:
    # Before: the `async for` hung forever after any disconnect.
    async with TestServer() as server:
        client = readme_client(server.url)

        async def server_side() -> None:
            await server.wait_for_connections()
            await asyncio.sleep(1)
            await server.send_burst(3)
            await asyncio.sleep(1)
            await server.close_all(1011, "internal error")

        feeding = asyncio.create_task(server_side())
        async with asyncio.timeout(BOUND):
            got = await quick_start_main(client)
        await feeding
        assert got == [0, 1, 2]
        assert client.done and client.closed
        assert client.final_source == ServerInitiated(1011, "internal error")
        assert await client.wait_done() == ServerInitiated(1011, "internal error")


@virtual_time
async def test_quick_start_ends_when_recovery_gives_up_after_1008() -> None:
    # Before: with a recovery handler the loop still hung once recovery had given up, and
    # there was nothing to await for "gave up" (the CLI polled recovery.gave_up).
    async with TestServer() as server:
        client = readme_client(server.url)
        recovery = ConnectionRecoveryHandler(client, strategy=DelayList([2.0]))

        async def server_side() -> None:
            await server.wait_for_connections()
            await asyncio.sleep(1)
            await server.send_burst(2)
            await asyncio.sleep(1)
            await server.close_all(1011)  # recoverable: the stream must go on
            await asyncio.sleep(1)
            await server.wait_for_connections()
            await asyncio.sleep(1)
            await server.send_burst(2, start=2)
            await asyncio.sleep(1)
            await server.close_all(1008, "policy violation")  # the policy stops here

        feeding = asyncio.create_task(server_side())
        async with asyncio.timeout(BOUND):
            got = await quick_start_main(client)
        await feeding
        assert got == [0, 1, 2, 3]
        assert recovery.reconnects == 1 and recovery.gave_up
        assert client.final_source == ServerInitiated(1008, "policy violation")
        recovery.close()


@virtual_time
async def test_wait_done_returns_the_final_source_and_states_end_too() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        ConnectionRecoveryHandler(client, strategy=DelayList([1.0], repeat=False))
        await client.connect()
        changes: list[StateChange] = []

        async def follow() -> None:
            async for change in client.states():
                changes.append(change)

        following = asyncio.create_task(follow())
        done = asyncio.create_task(client.wait_done())
        await server.kill()  # 1006, recoverable: one retry (refused), then the strategy stops
        async with asyncio.timeout(BOUND):
            source = await done
            await following  # states() ended as well
        assert isinstance(source, ServerInitiated) and source.error is not None
        assert source == client.final_source
        assert [c.current for c in changes] == [
            S.DISCONNECTED,
            S.CONNECTING,
            S.DISCONNECTED,
        ]
        await client.close()


@virtual_time
async def test_run_raises_connection_ended_with_the_cause_or_returns_after_the_user() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        running = asyncio.create_task(client.run())
        await client.wait_for(S.CONNECTED)
        await server.close_all(1011, "boom")
        with pytest.raises(ConnectionEnded) as ended:
            async with asyncio.timeout(BOUND):
                await running
        assert ended.value.source == ServerInitiated(1011, "boom")
        await client.close()

        client = make_client(server.url)
        running = asyncio.create_task(client.run())
        await client.wait_for(S.CONNECTED)
        await asyncio.sleep(5)
        assert not running.done()  # connected: run() stays
        await client.disconnect()
        async with asyncio.timeout(BOUND):
            assert await running is None  # the user ended it: no exception
        assert client.final_source == UserInitiated()
        await client.close()


@virtual_time
async def test_leaving_a_subscription_unsubscribes_and_frees_the_receive_loop() -> None:
    # Before: a subscription left behind after `break` kept holding the receive loop.
    async with TestServer() as server:
        client = make_client(server.url, event_queue_size=4)
        await client.connect()
        before = client._fanout.subscribers
        seen: list[int] = []
        client.on(AppEvent, lambda e: seen.append(e.payload["seq"]))
        await server.send_burst(3)
        async with client.events(AppEvent) as events:
            async for event in events:
                if event.payload["seq"] == 1:
                    break
        assert events.closed
        assert client._fanout.subscribers == before + 1  # only the on() callback is left
        await server.send_burst(100, start=3)  # far more than the left queue could hold
        await asyncio.sleep(1)
        assert seen == list(range(103))
        assert not client._fanout.blocked
        await client.close()


@virtual_time
async def test_a_subscription_made_after_reconnecting_a_done_client_is_live() -> None:
    # The user connects again after the client was done (no recovery, server closed 1011).
    # Subscriptions made then must receive events.
    async with TestServer() as server:
        client = make_client(server.url)
        await client.connect()
        await server.close_all(1011)
        assert await client.wait_done() == ServerInitiated(1011, "")
        await client.connect()
        events = client.events(AppEvent)
        assert not events.ended, "a new subscription on a connected client came back ended"
        await server.send_burst(3)
        got = [(await events.__anext__()).payload["seq"] for _ in range(3)]
        assert got == [0, 1, 2]
        await client.close()


@virtual_time
async def test_leaving_the_quick_start_loop_early_closes_promptly() -> None:
    # The Quick start's loop, left with `break` while the server keeps streaming: the
    # subscription left behind fills up, then `async with` closes the client.
    async with TestServer() as server:
        client = make_client(server.url)
        events = client.events(AppEvent)
        loop = asyncio.get_running_loop()
        async with client:
            streaming = asyncio.create_task(server.send_burst(5000))
            async for event in events:
                if event.payload["seq"] == 9:
                    break
            await asyncio.sleep(1)  # the queue fills up meanwhile
            leaving_at = loop.time()
        took = loop.time() - leaving_at
        await streaming
        assert took < 1.0, f"close() took {took:g} s"


@virtual_time
async def test_a_user_disconnect_while_a_subscriber_is_full_is_prompt() -> None:
    async with TestServer() as server:
        client = make_client(server.url, event_queue_size=4)
        stuck = client.events(AppEvent)
        await client.connect()
        await server.send_burst(5000)
        await asyncio.sleep(1)
        loop = asyncio.get_running_loop()
        asked_at = loop.time()
        await client.disconnect()
        took = loop.time() - asked_at
        assert took < 1.0, f"disconnect() took {took:g} s"
        assert [e.payload["seq"] for e in [e async for e in stuck]][:4] == [0, 1, 2, 3]
        await client.close()


# -- the first connect with recovery ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@virtual_time
async def test_retry_first_connect_waits_until_the_server_comes_up() -> None:
    # Before: connect() raised ConnectFailed on the first refusal and the app died.
    port = free_port()
    client = make_client(f"ws://127.0.0.1:{port}/")
    recovery = ConnectionRecoveryHandler(client, retry_first_connect=True)
    seen = transitions_of(client)
    connecting = asyncio.create_task(client.connect())
    await asyncio.sleep(20)
    assert not connecting.done()
    assert recovery.attempt >= 3  # it kept trying, with backoff
    async with TestServer(port=port):
        async with asyncio.timeout(60):  # the default backoff: at most 25 s away
            snapshot = await connecting
        assert snapshot.state is S.CONNECTED
        assert seen.count(("connecting", "disconnected", "server")) >= 3
        await client.close()
    recovery.close()


@virtual_time
async def test_without_retry_first_connect_the_first_failure_still_raises() -> None:
    port = free_port()
    client = make_client(f"ws://127.0.0.1:{port}/")
    recovery = ConnectionRecoveryHandler(client)
    with pytest.raises(ConnectFailed):
        await client.connect()
    async with TestServer(port=port):  # recovery goes on retrying in the background
        async with asyncio.timeout(60):
            await client.wait_for(S.CONNECTED)
        await client.close()
    recovery.close()


@virtual_time
async def test_retry_first_connect_raises_once_the_policy_stops() -> None:
    async with TestServer() as server:
        server.reject_status = 403
        client = make_client(server.url)
        recovery = ConnectionRecoveryHandler(client, retry_first_connect=True)
        with pytest.raises(ConnectFailed) as failed:
            async with asyncio.timeout(BOUND):
                await client.connect()
        assert failed.value.source is not None and recovery.gave_up
        assert server.handshakes == 1
        recovery.close()
        await client.close()


@virtual_time
async def test_a_user_disconnect_ends_a_first_connect_that_keeps_trying() -> None:
    client = make_client(f"ws://127.0.0.1:{free_port()}/")
    recovery = ConnectionRecoveryHandler(client, retry_first_connect=True)
    connecting = asyncio.create_task(client.connect())
    await asyncio.sleep(10)
    loop = asyncio.get_running_loop()
    asked_at = loop.time()
    await client.disconnect()
    with pytest.raises(ConnectFailed) as failed:
        await connecting
    assert loop.time() == asked_at  # at once, not after the next backoff
    assert failed.value.source == UserInitiated() == client.final_source
    recovery.close()
    await client.close()


@virtual_time
async def test_run_raises_connection_ended_when_the_first_attempt_fails_without_recovery() -> None:
    client = make_client(f"ws://127.0.0.1:{free_port()}/")
    with pytest.raises(ConnectionEnded) as ended:
        async with asyncio.timeout(BOUND):
            await client.run()
    source = ended.value.source
    assert isinstance(source, ServerInitiated) and isinstance(source.error, ConnectionRefused)
    await client.close()


# -- liveness ---------------------------------------------------------------------------------


def split_decode(data: str | bytes) -> Any:
    """A decoder that tells the ack and the pongs apart."""
    msg = json.loads(data)
    if msg["type"] == "connection.ok":
        return ConnectionAckEvent(msg.get("connection_id"), msg)
    if msg["type"] == "health.check":
        return HealthCheckPongEvent(msg.get("connection_id"), msg)
    return AppEvent(msg["type"], msg)


@virtual_time
async def test_the_ack_and_the_pongs_are_different_types() -> None:
    # Before: the ack was a HealthCheckPongEvent, indistinguishable from a pong.
    async with TestServer() as server:
        client = make_client(server.url, decoder=split_decode, ping_interval=5, pong_timeout=1)
        acks = client.events(ConnectionAckEvent)
        pongs = client.events(HealthCheckPongEvent)
        await client.connect()
        assert client.health.pongs == 0
        assert client.health.connection_id == "c-1"
        await asyncio.sleep(12)  # two health checks
        assert client.health.pongs == 2
        await server.broadcast({"type": "connection.ok", "connection_id": "c-1"})  # a stray ack
        await asyncio.sleep(1)
        assert client.health.pongs == 2  # an ack is never a pong
        await client.close()
        assert [type(a) for a in [a async for a in acks]] == [ConnectionAckEvent] * 2
        assert len([p async for p in pongs]) == 2


@virtual_time
async def test_the_legacy_pong_as_ack_still_authenticates() -> None:
    async with TestServer() as server:
        client = make_client(server.url, ping_interval=5, pong_timeout=1)  # pongs are the ack
        await client.connect()
        assert client.state.state is S.CONNECTED and client.health.pongs == 0
        await asyncio.sleep(6)
        assert client.health.pongs == 1
        await client.close()


@virtual_time
async def test_messages_behind_which_the_pong_waits_prove_the_link_alive() -> None:
    # The pong comes 10 s late (pong_timeout 3 s), but the server speaks every second.
    async with TestServer() as server:
        client = make_client(server.url, ping_interval=5, pong_timeout=3)
        server.pong_delay = 10
        seen = transitions_of(client)
        await client.connect()
        for second in range(60):
            await server.send_burst(1, start=second)
            await asyncio.sleep(1)
        assert client.state.state is S.CONNECTED, seen
        assert server.health_checks >= 3
        server.pong_delay = 0  # the server catches up on its late answers meanwhile
        for second in range(60, 80):
            await server.send_burst(1, start=second)
            await asyncio.sleep(1)
        await asyncio.sleep(30)  # silence now: only prompt pongs keep the link
        assert client.state.state is S.CONNECTED, seen
        server.silent = True
        await client.wait_for(S.DISCONNECTED)
        assert client.state.source == NoPongReceived()
        await client.close()


@virtual_time
async def test_idle_timeout_disconnects_a_silent_server_driven_heartbeat_link() -> None:
    async with TestServer() as server:
        client = make_client(server.url, ping_interval=None, idle_timeout=10)
        await client.connect()
        connected_at = asyncio.get_running_loop().time()
        await server.broadcast({"type": "ping"})
        await asyncio.sleep(6)
        await server.broadcast({"type": "ping"})  # a frame at t=6 moves the deadline to 16
        snapshot = await client.wait_for(S.DISCONNECTED)
        silent_for = asyncio.get_running_loop().time() - connected_at
        assert snapshot.source == NoPongReceived()
        assert 16 <= silent_for < 16.5
        assert server.health_checks == 0  # the client never pinged: the server drives it
        await client.close()


@virtual_time
async def test_idle_timeout_keeps_a_link_whose_server_heartbeats() -> None:
    async with TestServer() as server:
        client = make_client(server.url, ping_interval=None, idle_timeout=10)
        answered: list[object] = []

        async def answer(event: AppEvent) -> None:  # Centrifugo style: the client answers
            answered.append(event)
            await client.send({"type": "pong"})

        client.on(AppEvent, answer)
        await client.connect()
        for _ in range(15):  # a minute of heartbeats every 4 s
            await server.broadcast({"type": "ping"})
            await asyncio.sleep(4)
        assert client.state.state is S.CONNECTED
        assert len(answered) == 15
        assert [m for m in server.received if m.get("type") == "pong"] == [{"type": "pong"}] * 15
        await client.close()


@virtual_time
async def test_idle_deadline_does_not_run_while_the_app_stops_reading() -> None:
    async with TestServer() as server:
        client = make_client(
            server.url, ping_interval=None, idle_timeout=10, event_queue_size=5, stall_timeout=None
        )
        seen = transitions_of(client)
        stuck = client.events(AppEvent)
        await client.connect()
        await server.send_burst(50)
        await asyncio.sleep(30)  # the app reads nothing for 30 s, three idle periods
        assert client.state.state is S.CONNECTED
        got = [(await stuck.__anext__()).payload["seq"] for _ in range(50)]
        assert got == list(range(50))
        await client.wait_for(S.DISCONNECTED)  # then real silence is noticed
        assert seen[-2:] == [
            ("connected", "disconnecting", "no_pong"),
            ("disconnecting", "disconnected", "no_pong"),
        ]
        await client.close()


@virtual_time
async def test_protocol_pings_from_the_server_count_as_frames_for_idle_timeout() -> None:
    # A server that heartbeats with WebSocket Ping frames (websockets' own keepalive, many
    # proxies): every frame proves the peer is alive, so the idle deadline must not fire.
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()  # auth
        await ws.send(json.dumps({"type": "connection.ok", "connection_id": "p-1"}))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, ping_interval=3, ping_timeout=2) as server:
        port = server.sockets[0].getsockname()[1]
        client = make_client(f"ws://127.0.0.1:{port}/", ping_interval=None, idle_timeout=10)
        seen = transitions_of(client)
        await client.connect()
        await asyncio.sleep(60)
        assert client.state.state is S.CONNECTED, seen
        await client.close()


# -- labels -----------------------------------------------------------------------------------


@virtual_time
async def test_an_oversized_message_is_message_too_large_and_recovered() -> None:
    # Before: ServerInitiated(1009), as if the server had closed, and recovery stopped.
    async with TestServer() as server:
        client = make_client(server.url, max_size=1000)
        recovery = ConnectionRecoveryHandler(client, strategy=DelayList([1.0]))
        seen = transitions_of(client)
        await client.connect()
        await server.broadcast({"type": "event", "pad": "x" * 5000})
        down = await client.wait_for(S.DISCONNECTED)
        source = down.source
        assert isinstance(source, ServerInitiated)
        assert isinstance(source.error, MessageTooLarge)
        assert source.close_code != 1009  # the server closed nothing
        assert "max_size" in str(source.error)
        assert default_reconnect_policy(source)  # documented: the default reconnects
        await client.wait_for(S.CONNECTED)
        assert recovery.reconnects == 1 and not recovery.gave_up
        assert ("connecting", "authenticating", "") in seen
        recovery.close()
        await client.close()


# -- the end of a client is the end, not a failed attempt -------------------------------------


@virtual_time
async def test_run_and_wait_done_stay_through_failed_attempts_until_the_client_is_done() -> None:
    # A failed attempt that recovery retries leaves the client disconnected but not done.
    async with TestServer() as server:
        server.reject_status = 503
        client = make_client(server.url)
        recovery = ConnectionRecoveryHandler(client, strategy=DelayList([1.0]))
        running = asyncio.create_task(client.run())
        done = asyncio.create_task(client.wait_done())
        await asyncio.sleep(10)
        assert server.handshakes >= 5  # it kept trying...
        assert not running.done() and not done.done()  # ...and nobody was told it ended
        assert not client.done
        server.reject_status = None
        async with asyncio.timeout(BOUND):
            await client.wait_for(S.CONNECTED)
        await asyncio.sleep(0)
        assert not running.done() and not done.done()
        await client.disconnect()
        async with asyncio.timeout(BOUND):
            assert await running is None
            assert await done == UserInitiated()
        recovery.close()
        await client.close()


@virtual_time
async def test_a_recovery_attached_without_a_network_status_assumes_the_network_is_up() -> None:
    from statesock.retry import as_strategy
    from tests.support import recovery_config_with

    async with TestServer() as server:
        client = make_client(server.url)
        link = client.attach_recovery(
            recovery_config_with(default_reconnect_policy, as_strategy(DelayList([1.0])))
        )
        await client.connect()
        await server.close_all(1011, "")
        async with asyncio.timeout(BOUND):
            await client.wait_for(S.DISCONNECTED)
            await client.wait_for(S.CONNECTED)  # reconnected: online all along
        assert server.handshakes == 2
        link.detach()
        await client.close()


@virtual_time
async def test_waiting_for_a_state_the_client_never_reaches_ends_with_the_final_source() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        await client.connect()
        waiting = asyncio.create_task(client.wait_for(S.AUTHENTICATING))
        await asyncio.sleep(0)
        await server.close_all(1011, "boom")
        with pytest.raises(ConnectionEnded) as ended:
            async with asyncio.timeout(BOUND):
                await waiting
        assert ended.value.source == ServerInitiated(1011, "boom") == client.final_source
        assert client._done_waiters == ()
        await client.close()


@virtual_time
async def test_a_cancelled_wait_done_leaves_nothing_behind() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        await client.connect()
        waiting = asyncio.create_task(client.wait_done())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert client._done_waiters == ()
        await client.close()


@virtual_time
async def test_a_state_stream_drops_its_oldest_when_full_leaves_on_close_and_ends_done() -> None:
    async with TestServer() as server:
        client = make_client(server.url, event_queue_size=2)
        changes = client.states()
        await client.connect()  # three changes into a stream of two: the oldest goes
        assert changes.dropped == 1 and client.stats.events_dropped == 1
        assert [(await changes.__anext__()).current for _ in range(2)] == [
            S.AUTHENTICATING,
            S.CONNECTED,
        ]
        await changes.aclose()
        assert changes not in client._state_streams
        late = client.states()
        await client.close()
        assert late.ended and late.cause == UserInitiated()
        after = client.states()  # made on a closed client: born ended, with the cause
        assert after.ended and after.cause == client.final_source == UserInitiated()


# -- the shell's hooks, tasks and stats ------------------------------------------------------------


@virtual_time
async def test_a_hook_whose_socket_went_away_is_logged_and_a_raising_one_counted() -> None:
    from structlog.testing import capture_logs

    from statesock.exceptions import NotConnectedError
    from statesock.testing import auth_hook

    names: list[str] = []

    async def interrupted(client: WebSocketClient) -> None:
        task = asyncio.current_task()
        assert task is not None
        names.append(task.get_name())
        await auth_hook("t")(client)
        raise NotConnectedError("disconnecting")

    def broken(client: WebSocketClient) -> None:
        raise ValueError("bug")

    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
    async with TestServer() as server:
        client = make_client(
            server.url, label="hooked", on_connection_established=interrupted, on_connected=broken
        )
        with capture_logs() as logs:
            await client.connect()
            await asyncio.sleep(0.1)
        assert names == ["statesock-on_connection_established-hooked"]
        [interruption] = [e for e in logs if e["event"] == "hook_interrupted"]
        assert interruption == {
            "event": "hook_interrupted",
            "log_level": "info",
            "client": "hooked",
            "hook": "on_connection_established",
            "error": str(NotConnectedError("disconnecting")),
        }
        [failure] = [e for e in logs if e["event"] == "callback_failed"]
        assert (failure["callback"], failure["error"]) == ("on_connected", "ValueError: bug")
        assert client.stats.callback_errors == 1
        assert client._hooks == {}  # a finished hook leaves nothing to cancel
        await client.close()
    assert errors == []


@virtual_time
async def test_a_failing_token_provider_is_named_and_its_text_kept_out() -> None:
    from statesock.exceptions import TokenUnavailable

    def provider() -> str:
        raise ValueError("secret-in-message")

    async with TestServer() as server:
        client = make_client(server.url, token_provider=provider)
        with pytest.raises(ConnectFailed) as failed:
            await client.connect()
        source = failed.value.source
        assert isinstance(source, ServerInitiated)
        assert isinstance(source.error, TokenUnavailable)
        assert str(source.error) == "token provider failed: ValueError"
        await client.close()


@virtual_time
async def test_the_cost_of_a_stalled_subscriber_is_measured_from_when_it_began() -> None:
    async with TestServer() as server:
        client = make_client(server.url, event_queue_size=1, stall_timeout=None)
        events = client.events(AppEvent)
        await client.connect()
        assert (client.stats.reading_paused_for, client.stats.oldest_undelivered_age) == (0, 0)
        await server.send_burst(3)
        await asyncio.sleep(5)
        paused, oldest = client.stats.reading_paused_for, client.stats.oldest_undelivered_age
        assert 4.9 <= paused <= 5.1 and 4.9 <= oldest <= 5.1
        await events.aclose()
        await client.close()


@virtual_time
async def test_without_an_ack_step_a_pong_during_the_auth_hook_does_not_authenticate() -> None:
    release = asyncio.Event()

    async def slow_hook(client: WebSocketClient) -> None:
        await release.wait()

    async with TestServer(require_auth=False, ack=False) as server:
        client = make_client(server.url, on_connection_established=slow_hook, ack_required=False)
        connecting = asyncio.create_task(client.connect())
        await server.wait_for_connections()
        await asyncio.sleep(0.1)
        await server.broadcast({"type": "health.check", "connection_id": "c-1"})
        await asyncio.sleep(1)
        assert client.state.state is S.AUTHENTICATING  # the hook has not finished
        release.set()
        async with asyncio.timeout(BOUND):
            assert (await connecting).state is S.CONNECTED
        await client.close()


@virtual_time
async def test_received_messages_bytes_skips_and_decode_failures_are_counted() -> None:
    from structlog.testing import capture_logs

    from statesock.testing import decode_message

    def decoder(data: str | bytes) -> Any:
        if data == "skip":
            return None
        if data == "boom":
            raise ValueError("undecodable")
        return decode_message(data)

    async with TestServer() as server:
        client = make_client(server.url, decoder=decoder)
        await client.connect()
        before = client.stats.messages_received, client.stats.bytes_received
        with capture_logs() as logs:
            for message in ("skip", "skip", "boom", '{"type": "é"}'):
                await server.broadcast(message)
            await asyncio.sleep(0.5)
        received = client.stats.messages_received - before[0]
        received_bytes = client.stats.bytes_received - before[1]
        assert received == 4
        assert received_bytes == 4 + 4 + 4 + len('{"type": "é"}'.encode())  # UTF-8 bytes
        assert client.stats.ignored_messages == 2
        assert client.stats.decode_errors == 1
        [failure] = [e for e in logs if e["event"] == "decode_failed"]
        assert failure["error"] == "ValueError: undecodable" and failure["message"] == "boom"
        await client.close()


class Unwritable:
    """A socket handle whose write_now always says "not now" (and whose send may refuse)."""

    def __init__(self, handle: Any, refuse: bool = False) -> None:
        self.handle, self.refuse = handle, refuse

    def write_now(self, data: object) -> bool:
        return False

    async def send(self, data: str | bytes) -> None:
        from statesock.exceptions import NotConnectedError

        if self.refuse:
            raise NotConnectedError("closing")
        await self.handle.send(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)


@virtual_time
async def test_a_health_check_that_cannot_be_written_at_once_is_sent_in_a_task() -> None:
    async with TestServer() as server:
        client = make_client(server.url, ping_interval=5, pong_timeout=2)
        await client.connect()
        socket = client._core.socket or 0
        swap_socket(client, socket, Unwritable(client._socket(socket)))
        checks = server.health_checks
        await asyncio.sleep(11)
        assert server.health_checks >= checks + 2  # sent all the same, and answered
        assert client.state.state is S.CONNECTED and client.health.pongs >= 2
        await client.close()


@virtual_time
async def test_a_health_check_whose_late_send_fails_leaves_no_error_behind() -> None:
    import gc

    problems: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, c: problems.append(c))
    async with TestServer() as server:
        client = make_client(server.url, ping_interval=5, pong_timeout=2)
        await client.connect()
        socket = client._core.socket or 0
        swap_socket(client, socket, Unwritable(client._socket(socket), refuse=True))
        await asyncio.sleep(5.5)
        assert [t for t in asyncio.all_tasks() if "health-check" in t.get_name()] == []
        await client.close()
    gc.collect()
    assert problems == []


class SlowChecks(Unwritable):
    """Health checks go out through a send that takes its time."""

    async def send(self, data: str | bytes) -> None:
        await asyncio.sleep(100)


@virtual_time
async def test_close_stops_every_task_the_client_started() -> None:
    async with TestServer() as server:
        client = make_client(server.url, ping_interval=5, pong_timeout=2)
        await client.connect()
        socket = client._core.socket or 0
        swap_socket(client, socket, SlowChecks(client._socket(socket)))
        await asyncio.sleep(5.5)
        assert any("health-check" in t.get_name() for t in asyncio.all_tasks())
        await asyncio.wait_for(client.close(), 10)
        assert [t.get_name() for t in asyncio.all_tasks() if "statesock" in t.get_name()] == []
        with pytest.raises(ClientClosed) as refused:
            await client.connect()
        assert str(refused.value) == f"client {client.label} is closed"


@virtual_time
async def test_a_health_check_sent_late_runs_in_a_task_named_for_the_client() -> None:
    async with TestServer() as server:
        client = make_client(server.url, label="checked", ping_interval=5, pong_timeout=2)
        await client.connect()
        socket = client._core.socket or 0
        swap_socket(client, socket, SlowChecks(client._socket(socket)))
        await asyncio.sleep(5.5)
        late = [t.get_name() for t in asyncio.all_tasks() if "health" in t.get_name()]
        assert late == ["statesock-health-check-checked"]
        await client.close()


@virtual_time
async def test_a_user_disconnect_tells_the_server_1000_and_why() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        await client.connect()
        [ws] = server.connections.values()
        await asyncio.wait_for(client.disconnect(), 5)
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert (ws.close_code, ws.close_reason) == (1000, "user disconnect")
        await client.close()


@virtual_time
async def test_a_disconnect_is_prompt_and_ends_the_streams_with_the_users_cause() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        await client.connect()
        events = client.events(AppEvent)
        loop = asyncio.get_running_loop()
        asked = loop.time()
        await asyncio.wait_for(client.disconnect(), 5)
        assert loop.time() - asked < 1.0  # the close handshake, not the close deadline
        assert events.ended and events.cause == UserInitiated()
        await client.close()


@virtual_time
async def test_a_dead_peer_is_aborted_and_forgotten() -> None:
    problems: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, c: problems.append(c))
    async with TestServer() as server:
        client = make_client(server.url, ping_interval=5, pong_timeout=2)
        await client.connect()
        server.silent = True  # no more pongs
        async with asyncio.timeout(30):
            await client.wait_for(S.DISCONNECTED)
        assert isinstance(client.state.source, NoPongReceived)
        assert client._handle is None
        await client.close()
    assert problems == []


@virtual_time
async def test_a_connect_waiting_on_a_client_that_closes_is_told_it_closed() -> None:
    client = make_client("ws://127.0.0.1:9/")
    recovery = ConnectionRecoveryHandler(client, retry_first_connect=True)
    connecting = asyncio.create_task(client.connect())
    await asyncio.sleep(1)
    await client.close()
    with pytest.raises(ClientClosed) as refused:
        await asyncio.wait_for(connecting, 5)
    assert str(refused.value) == f"client {client.label} is closed"
    recovery.close()


@virtual_time
async def test_the_cores_log_lines_name_the_client_and_a_raising_listener_is_named() -> None:
    from structlog.testing import capture_logs

    def noisy(record: object) -> None:
        raise ValueError("listener bug")

    async with TestServer() as server:
        client = make_client(server.url, label="named")
        recovery = ConnectionRecoveryHandler(client, strategy=DelayList([1.0]))
        await client.connect()
        client.add_listener(noisy)
        with capture_logs() as logs:
            await server.close_all(1011, "")
            await asyncio.sleep(0.1)
        [scheduled] = [e for e in logs if e["event"] == "reconnect_scheduled"]
        assert scheduled["client"] == "named"
        failures = [e for e in logs if e["event"] == "callback_failed"]
        assert failures and all(
            (e["callback"], e["error"]) == ("noisy", "ValueError: listener bug") for e in failures
        )
        recovery.close()
        await client.close()


@virtual_time
async def test_a_reconnect_policy_that_raises_is_reported_by_name_and_recovery_stops() -> None:
    from structlog.testing import capture_logs

    def policy(source: object) -> bool:
        raise ValueError("policy bug")

    async with TestServer() as server:
        client = make_client(server.url)
        recovery = ConnectionRecoveryHandler(client, policy=policy)
        await client.connect()
        with capture_logs() as logs:
            await server.close_all(1011, "")
            async with asyncio.timeout(BOUND):
                await client.wait_done()
        [failure] = [e for e in logs if e["event"] == "callback_failed"]
        assert failure["callback"] == "reconnect policy"
        assert failure["error"] == "ValueError: policy bug"
        assert client.stats.callback_errors == 1
        assert client.final_source == ServerInitiated(1011, "")
        recovery.close()
        await client.close()


class Broken(Unwritable):
    async def send(self, data: str | bytes) -> None:
        from statesock.exceptions import ConnectionLost

        raise ConnectionLost("broke")


@virtual_time
async def test_a_health_check_lost_with_its_socket_leaves_no_error_behind() -> None:
    import gc

    problems: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, c: problems.append(c))
    async with TestServer() as server:
        client = make_client(server.url, ping_interval=5, pong_timeout=2)
        await client.connect()
        socket = client._core.socket or 0
        swap_socket(client, socket, Broken(client._socket(socket)))
        await asyncio.sleep(5.5)
        await client.close()
    gc.collect()
    assert problems == []


class NeverCloses(Unwritable):
    """A socket whose close handshake never ends: only an abort gets rid of it."""

    def __init__(self, handle: Any) -> None:
        super().__init__(handle)
        self.aborted = False

    def write_now(self, data: object) -> bool:
        return bool(self.handle.write_now(data))

    def close(self, code: int, reason: str, timeout: float) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True
        self.handle.abort()


@virtual_time
async def test_a_socket_that_does_not_close_in_time_is_aborted_at_the_close_deadline() -> None:
    problems: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, c: problems.append(c))
    async with TestServer() as server:
        client = make_client(server.url, close_timeout=1)
        await client.connect()
        socket = client._core.socket or 0
        stuck = NeverCloses(client._socket(socket))
        swap_socket(client, socket, stuck)
        loop = asyncio.get_running_loop()
        asked = loop.time()
        await asyncio.wait_for(client.disconnect(), 10)
        assert loop.time() - asked == pytest.approx(2.0, abs=0.1)  # close_timeout + 1 s
        assert stuck.aborted and client._handle is None
        await asyncio.sleep(0.5)
        await client.close()
        del stuck  # it holds the socket's task
    import gc

    gc.collect()  # a task that failed unseen is reported when it is collected
    assert problems == []


@virtual_time
async def test_each_record_of_the_client_reaches_the_transition_log() -> None:
    from structlog.testing import capture_logs

    async with TestServer() as server:
        client = make_client(server.url, label="logged")
        with capture_logs() as logs:
            await client.connect()
        moves = [(e["src"], e["dst"]) for e in logs if e["event"] == "transition"]
        assert moves == [
            ("initialized", "connecting"),
            ("connecting", "authenticating"),
            ("authenticating", "connected"),
        ]
        assert {e["client"] for e in logs if e["event"] == "transition"} == {"logged"}
        await client.close()
