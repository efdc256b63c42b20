"""WebSocketClient's API against a real loopback server, in virtual time."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import looptime
import pytest
from structlog.testing import capture_logs

from statesock import core_io as io
from statesock.client import WebSocketClient
from statesock.events import HealthCheckPongEvent, ServerErrorEvent
from statesock.exceptions import (
    ClientClosed,
    ConnectFailed,
    ConnectionEnded,
    InvalidURL,
    NotConnectedError,
)
from statesock.machine import ConnectionState, Record, StateChange
from statesock.sources import ServerInitiated, UserInitiated
from statesock.subscriptions import Overflow
from statesock.testing import AppEvent, TestServer, auth_hook, decode_message
from tests.conftest import (
    coming_up,
    make_client,
    swap_socket,
    transitions_of,
    virtual_time,
    wait_for_state,
)

S = ConnectionState


async def settle(seconds: float = 0.5) -> None:
    await asyncio.sleep(seconds)


@pytest.mark.parametrize(
    "url", ["", "http://example.test/", "ws://", "ws://host:99999/", "ws://h/#f", "not a url"]
)
def test_a_bad_url_is_a_clear_value_error_at_construction(url: str) -> None:
    with pytest.raises(InvalidURL) as info:
        WebSocketClient(url, decode_message)
    assert isinstance(info.value, ValueError)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="connect_timeout"):
        WebSocketClient("ws://127.0.0.1:1/", decode_message, connect_timeout=0)
    with pytest.raises(ValueError, match="event_queue_size"):
        WebSocketClient("ws://127.0.0.1:1/", decode_message, event_queue_size=0)

    async def async_decoder(data: str | bytes) -> object:
        return data

    with pytest.raises(TypeError, match="event_decoder"):
        WebSocketClient("ws://127.0.0.1:1/", async_decoder)


@virtual_time
async def test_send_outside_authenticating_and_connected_raises() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        with pytest.raises(NotConnectedError, match="initialized"):
            await client.send("hello")
        await client.connect()
        await client.send({"type": "note", "n": 1})
        await client.send(b"raw bytes")
        await settle()
        assert {"type": "note", "n": 1} in server.received
        await client.disconnect()
        with pytest.raises(NotConnectedError, match="disconnected"):
            await client.send("hello")
        await client.close()


@virtual_time
async def test_events_reach_every_subscriber_in_order() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        await client.connect()
        first, second = client.events(AppEvent), client.events()
        await server.send_burst(50)
        got_first = [(await first.__anext__()).payload["seq"] for _ in range(50)]
        got_second: list[Any] = []
        while len(got_second) < 50:
            event = await second.__anext__()
            if isinstance(event, AppEvent):
                got_second.append(event.payload["seq"])
        assert got_first == got_second == list(range(50))
        await client.close()


@virtual_time
async def test_a_slow_subscriber_gets_backpressure_and_loses_nothing() -> None:
    async with TestServer() as server:
        client = make_client(server.url, event_queue_size=10)
        await client.connect()
        slow = client.events(AppEvent)
        await server.send_burst(100)
        got = []
        for _ in range(100):
            await asyncio.sleep(0.05)  # far slower than the server
            got.append((await slow.__anext__()).payload["seq"])
        assert got == list(range(100))
        assert slow.dropped == 0
        assert client.stats.events_dropped == 0
        await client.close()


@virtual_time
async def test_dropping_is_an_explicit_counted_logged_choice() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        await client.connect()
        oldest = client.events(AppEvent, maxsize=10, overflow=Overflow.DROP_OLDEST)
        newest = client.events(AppEvent, maxsize=10, overflow=Overflow.DROP_NEWEST)
        with capture_logs() as logs:
            await server.send_burst(25)
            await settle(1)
        assert oldest.dropped == newest.dropped == 15
        assert client.stats.events_dropped == 30
        assert [(await oldest.__anext__()).payload["seq"] for _ in range(10)] == list(range(15, 25))
        assert [(await newest.__anext__()).payload["seq"] for _ in range(10)] == list(range(10))
        policies = {e["policy"] for e in logs if e["event"] == "events_dropped"}
        assert policies == {"drop-oldest", "drop-newest"}
        assert client.state.state is S.CONNECTED
        await client.close()


@virtual_time
async def test_decoder_that_raises_is_counted_and_the_connection_stays_up() -> None:
    async with TestServer() as server:
        server.garbage_on_open = True
        client = make_client(server.url)
        events = client.events(AppEvent)
        with capture_logs() as logs:
            await client.connect()
            await server.broadcast("{not json")
            await server.broadcast('{"type": "event", "seq": 1, "token": "s3cr3t"}')
            got = await events.__anext__()
        assert got.payload["seq"] == 1
        assert client.stats.decode_errors == 2
        failures = [e for e in logs if e["event"] == "decode_failed"]
        assert len(failures) == 2
        assert "s3cr3t" not in str(logs)
        assert client.state.state is S.CONNECTED
        await client.close()


@virtual_time
async def test_decoder_returning_none_skips_the_message() -> None:
    def decoder(data: str | bytes) -> Any:
        event = decode_message(data)
        return None if isinstance(event, AppEvent) and event.payload.get("seq") == 0 else event

    async with TestServer() as server:
        client = make_client(server.url, decoder=decoder)
        events = client.events(AppEvent)
        await client.connect()
        await server.send_burst(2)
        assert (await events.__anext__()).payload["seq"] == 1
        assert client.stats.ignored_messages == 1
        await client.close()


@virtual_time
async def test_server_error_event_disconnects_with_server_source() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        seen = transitions_of(client)
        errors = client.events(ServerErrorEvent)
        await client.connect()
        await server.send_error("banned", code=17, retryable=False)
        await wait_for_state(client, S.DISCONNECTED)
        source = client.state.source
        assert isinstance(source, ServerInitiated)
        assert source.error == ServerErrorEvent("banned", 17, False)
        assert seen[-2:] == [
            ("connected", "disconnecting", "server"),
            ("disconnecting", "disconnected", "server"),
        ]
        assert (await errors.__anext__()).message == "banned"
        await client.close()


@virtual_time
async def test_on_callbacks_sync_and_async_in_order_and_errors_are_contained() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        sync_seen: list[int] = []
        async_seen: list[int] = []

        def on_sync(event: AppEvent) -> None:
            sync_seen.append(event.payload["seq"])

        async def on_async(event: AppEvent) -> None:
            await asyncio.sleep(0.01)
            async_seen.append(event.payload["seq"])

        def broken(event: AppEvent) -> None:
            raise RuntimeError("callback bug")

        client.on(AppEvent, on_sync)
        undo_async = client.on(AppEvent, on_async)
        client.on(AppEvent, broken)
        with capture_logs() as logs:
            await client.connect()
            await server.send_burst(20)
            await settle(1)
        assert sync_seen == list(range(20))
        assert async_seen == list(range(20))
        assert client.stats.callback_errors == 20
        assert any(e["event"] == "callback_failed" for e in logs)
        undo_async()
        await server.send_burst(1, start=20)
        await settle(1)
        assert async_seen == list(range(20))
        assert sync_seen[-1] == 20
        assert client.state.state is S.CONNECTED
        await client.close()


@virtual_time
async def test_hooks_sync_and_async_and_a_raising_on_connected_is_contained() -> None:
    calls: list[str] = []

    async def established(client: WebSocketClient) -> None:
        calls.append(f"established:{client.state.state.value}")
        await client.send({"type": "auth", "token": "t"})

    def connected(client: WebSocketClient) -> None:
        calls.append(f"connected:{client.state.state.value}")
        raise RuntimeError("hook bug")

    async with TestServer() as server:
        client = WebSocketClient(
            server.url,
            decode_message,
            on_connection_established=established,
            on_connected=connected,
        )
        await client.connect()
        await settle()
        assert calls == ["established:authenticating", "connected:connected"]
        assert client.stats.callback_errors == 1
        assert client.state.state is S.CONNECTED
        await client.close()


@virtual_time
async def test_no_ack_mode_goes_to_connected_after_the_hook() -> None:
    async with TestServer(require_auth=False) as server:
        server.ack = False
        sent: list[str] = []

        async def hello(client: WebSocketClient) -> None:
            await client.send({"type": "hello"})
            sent.append("hello")

        client = make_client(server.url, ack_required=False, on_connection_established=hello)
        seen = transitions_of(client)
        snapshot = await client.connect()
        assert snapshot.state is S.CONNECTED
        assert sent == ["hello"]
        assert seen == [
            ("initialized", "connecting", ""),
            ("connecting", "authenticating", ""),
            ("authenticating", "connected", ""),
        ]
        await client.close()


@virtual_time
async def test_health_events_are_dispatched_too() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        pongs = client.events(HealthCheckPongEvent)
        await client.connect()
        await asyncio.sleep(26)
        assert (await pongs.__anext__()).connection_id == "c-1"
        await client.close()


@virtual_time
async def test_cancelling_connect_never_corrupts_the_state() -> None:
    async with TestServer() as server:
        server.ack = False
        client = make_client(server.url)
        attempt = asyncio.ensure_future(client.connect())
        await wait_for_state(client, S.AUTHENTICATING)
        attempt.cancel()
        with pytest.raises(asyncio.CancelledError):
            await attempt
        assert client.state.state is S.AUTHENTICATING  # the attempt itself goes on
        server.ack = True
        snapshot = await client.connect()
        assert snapshot.state is S.CONNECTED
        assert server.handshakes == 1
        await client.close()


@virtual_time
async def test_cancelling_send_leaves_the_client_usable() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        await client.connect()
        sending = asyncio.ensure_future(client.send("x" * 500_000))
        await asyncio.sleep(0)
        sending.cancel()
        # Depending on the socket buffer the write finished or was interrupted; either way
        # the state must be intact and the next send must go through.
        with contextlib.suppress(asyncio.CancelledError):
            await sending
        assert client.state.state is S.CONNECTED
        await client.send({"type": "after"})
        await settle()
        assert {"type": "after"} in server.received
        await client.close()


@virtual_time
async def test_async_with_connects_and_close_ends_everything() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        async with client as entered:
            assert entered is client
            assert client.state.state is S.CONNECTED
            events = client.events()
            states = client.states()
        assert client.closed
        final = client.state
        assert final.state is S.DISCONNECTED
        assert [e async for e in events] == []
        assert [s.current for s in [s async for s in states]] == [
            S.DISCONNECTING,
            S.DISCONNECTED,
        ]
        with pytest.raises(ClientClosed):
            await client.connect()
        # run_virtual fails the test if any task the client made is still running.


@virtual_time
async def test_failed_first_connect_raises_connect_failed_with_the_source() -> None:
    async with TestServer(token="right") as server:
        client = make_client(server.url, on_connection_established=auth_hook("wrong"))
        with pytest.raises(ConnectFailed, match="4401") as info:
            await client.connect()
        assert info.value.source == ServerInitiated(4401, "invalid token")
        await client.close()


@virtual_time
async def test_secrets_never_reach_the_log() -> None:
    async with TestServer() as server:
        url = server.url + "?token=s3cr3t-tok&user=ann"
        with capture_logs() as logs:
            client = make_client(
                url,
                headers=lambda: {"Authorization": "Bearer s3cr3t-tok"},
                on_connection_established=auth_hook("s3cr3t-tok"),
            )
            await client.connect()
            await server.broadcast("garbage token=s3cr3t-tok")
            await settle()
            await client.close()
        assert server.request_headers[0]["Authorization"] == "Bearer s3cr3t-tok"
        assert logs
        assert "s3cr3t-tok" not in str(logs)
        assert "s3cr3t-tok" not in repr(client)


@virtual_time
async def test_a_broken_logging_setup_never_takes_the_client_down() -> None:
    import structlog

    def explode(logger: Any, method: str, event: Any) -> Any:
        raise OSError("log file closed")

    structlog.configure(processors=[explode])
    try:
        async with TestServer() as server:
            client = make_client(server.url)
            assert (await client.connect()).state is S.CONNECTED
            await server.close_all(1011)
            assert (await client.wait_for(S.DISCONNECTED)).source == ServerInitiated(1011, "")
            assert client.stats.callback_errors == 0  # a failing log line is not a bug here
            await client.close()
    finally:
        structlog.reset_defaults()


@virtual_time
async def test_a_stuck_lossless_subscriber_is_never_mistaken_for_a_dead_link() -> None:
    # The default subscriber loses nothing: the client stops reading while it is full.
    # The pongs then wait behind the backlog, and the pong deadline must not run meanwhile.
    async with TestServer() as server:
        client = make_client(
            server.url, event_queue_size=10, ping_interval=25, pong_timeout=3, stall_timeout=None
        )
        seen = transitions_of(client)
        await client.connect()
        stuck = client.events(AppEvent)
        for second in range(120):  # ten events a second for two minutes, not read
            await server.send_burst(10, start=second * 10)
            await asyncio.sleep(1)
        assert client.state.state is S.CONNECTED
        assert ("connected", "disconnecting", "no_pong") not in seen
        got = [(await stuck.__anext__()).payload["seq"] for _ in range(1200)]
        assert got == list(range(1200))
        assert stuck.dropped == 0
        await asyncio.sleep(30)
        assert client.state.health.pongs >= 1  # the backlog drained; health checks answer
        assert client.state.state is S.CONNECTED
        await client.close()


@virtual_time
async def test_time_in_initialized_counts_from_the_clients_creation() -> None:
    # It once was the loop clock's absolute value ("initialized 1381 s" in the demo).
    async with TestServer() as server:
        await asyncio.sleep(1000)  # the loop has been running a while
        client = make_client(server.url)
        records: list[Any] = []
        client.add_listener(records.append)
        await asyncio.sleep(2)
        await client.connect()
        assert records[0].trigger.value == "connect"
        assert records[0].in_state == pytest.approx(2.0, abs=0.01)
        await client.close()


def test_events_of_a_union_type_checks() -> None:
    # mypy --strict checks these assert_type calls (make check); at run time they are no-ops.
    from typing import assert_type

    from statesock.events import ServerErrorEvent as Err
    from statesock.subscriptions import Subscription

    client = WebSocketClient("ws://127.0.0.1:1/", decode_message)
    assert_type(client.events(AppEvent), Subscription[AppEvent])
    assert_type(client.events(AppEvent | Err), Subscription[AppEvent | Err])
    assert client.events(AppEvent | Err).pending == 0


# -- listeners: the shell delivers records after each step, in order ----------------------------


@virtual_time
async def test_a_listener_that_steps_the_client_sees_records_in_seq_order() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        seen: list[tuple[str, int]] = []

        def first(record: Record) -> None:
            seen.append(("first", record.seq))
            if isinstance(record, StateChange) and record.current is S.CONNECTED:
                # Steps the core while the step that connected is still being delivered.
                client._step(io.UserDisconnect())

        client.add_listener(first)
        client.add_listener(lambda record: seen.append(("second", record.seq)))
        await client.connect()
        await client.wait_for(S.DISCONNECTED)
        seqs = [seq for name, seq in seen if name == "first"]
        assert seqs == sorted(seqs) == list(range(1, len(seqs) + 1))
        # Each record reaches every listener, in registration order, before the next record.
        assert seen == [(name, seq) for seq in seqs for name in ("first", "second")]
        assert client.state.state is S.DISCONNECTED
        await client.close()


@virtual_time
async def test_a_raising_listener_is_counted_and_the_others_still_hear() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        heard: list[int] = []

        def broken(record: Record) -> None:
            raise RuntimeError("listener")

        client.add_listener(broken)
        client.add_listener(lambda record: heard.append(record.seq))
        await client.connect()
        assert heard == [1, 2, 3]
        assert client.stats.callback_errors == 3
        client.remove_listener(broken)
        await client.close()
        assert client.stats.callback_errors == 3


# -- streams end only when the client is done (issue 18, item 1) --------------------------------


@virtual_time
async def test_overlapping_disconnect_and_connect_leave_new_streams_live() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        await client.connect()
        await asyncio.gather(client.disconnect(), client.connect())
        assert client.state.state is S.CONNECTED and not client.done
        events = client.events(AppEvent)
        assert not events.ended
        await server.send_burst(3)
        got = [(await events.__anext__()).payload["seq"] for _ in range(3)]
        assert got == [0, 1, 2]
        await client.close()
        assert events.ended


@virtual_time
async def test_a_disconnect_before_any_connect_leaves_streams_live() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        await client.disconnect()
        events = client.events(AppEvent)
        await client.connect()
        assert not events.ended
        await server.send_burst(1)
        assert (await events.__anext__()).payload["seq"] == 0
        await client.close()


@virtual_time
async def test_a_user_disconnect_ends_the_streams_that_exist_and_new_ones_come_back_ended() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        await client.connect()
        before = client.events()
        await client.disconnect()
        assert before.ended and client.done
        after = client.events()
        assert after.ended and isinstance(after.cause, UserInitiated)
        await client.connect()  # connected again: new subscriptions are live
        assert not client.events().ended
        await client.close()


@virtual_time
async def test_every_states_stream_gets_every_change() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        first, second = client.states(), client.states()
        await client.connect()
        await client.close()

        async def changes(stream: Any) -> list[Any]:
            return [change.current async for change in stream]

        # Bounded: a stream the client forgot would never end.
        seen = [await asyncio.wait_for(changes(stream), 5) for stream in (first, second)]
        assert seen[0] == seen[1] and S.CONNECTED in seen[0]


@virtual_time
async def test_an_async_callback_that_closes_the_client_goes_on_once_the_close_returns() -> None:
    """close() called from inside an async on() callback returns (it does not wait for the
    callback that called it), and the callback then finishes: no task is left running."""
    async with TestServer() as server:
        client = make_client(server.url)
        outcome: list[str] = []

        async def closing(event: object) -> None:
            await client.close()
            outcome.append("returned")

        client.on(AppEvent, closing)
        await client.connect()
        await server.send_burst(1)
        await asyncio.wait_for(client.wait_done(), 60)
        for _ in range(5):
            await asyncio.sleep(0)
        assert outcome == ["returned"] and client.closed
        # run_virtual fails the test if any task the client made is still running.


@virtual_time
async def test_close_cancels_and_awaits_every_task_the_client_started() -> None:
    """Every task of the client's own (hooks, buffered writes, health checks sent the slow
    way) is cancelled by close(), and finished when it returns, however many run."""
    async with TestServer() as server:
        client = make_client(server.url)
        await client.connect()
        ended: list[str] = []

        async def forever(name: str) -> None:
            try:
                await asyncio.Event().wait()
            finally:
                ended.append(name)

        tasks = [client._spawn(forever(name), name) for name in ("one", "two", "three")]
        await asyncio.sleep(0)
        await client.close()
        assert sorted(ended) == ["one", "three", "two"] and all(t.done() for t in tasks)


# -- waiting for a state -----------------------------------------------------------------------


@virtual_time
async def test_wait_for_on_a_done_client_returns_its_state_or_raises_at_once() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        await client.connect()
        await client.disconnect()
        assert client.done
        assert (await client.wait_for(S.DISCONNECTED)).state is S.DISCONNECTED
        with pytest.raises(ConnectionEnded) as info:
            await client.wait_for(S.CONNECTED)
        assert isinstance(info.value.source, UserInitiated)
        await client.close()


@virtual_time
async def test_wait_for_that_returns_leaves_nothing_behind() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        connecting = asyncio.ensure_future(client.connect())
        snapshot = await client.wait_for(S.CONNECTED)
        assert snapshot.state is S.CONNECTED
        assert not client._done_waiters and not client._listeners
        await connecting
        await client.close()


@virtual_time
async def test_wait_for_raises_when_the_client_ends_while_it_waits() -> None:
    client = make_client("ws://127.0.0.1:1/")  # nothing listens: the connect fails
    waiting = asyncio.ensure_future(client.wait_for(S.CONNECTED))
    await asyncio.sleep(0)
    with pytest.raises(ConnectFailed):
        await client.connect()
    with pytest.raises(ConnectionEnded):
        await waiting
    assert not client._done_waiters and not client._listeners  # nothing left behind
    await client.close()


@virtual_time
async def test_wait_for_a_state_reached_in_the_step_that_ends_the_client_returns_it() -> None:
    client = make_client("ws://127.0.0.1:1/")
    waiting = asyncio.ensure_future(client.wait_for(S.DISCONNECTED))
    await asyncio.sleep(0)
    with pytest.raises(ConnectFailed):
        await client.connect()
    assert (await waiting).state is S.DISCONNECTED
    await client.close()


@virtual_time
async def test_close_returns_once_everything_it_started_has_finished() -> None:
    async with TestServer() as server:
        for _ in range(5):
            client = make_client(server.url)
            await client.connect()
            await client.close()
            pending = [
                task.get_name()
                for task in asyncio.all_tasks()
                if task.get_name().startswith("statesock-") and not task.done()
            ]
            assert pending == []


@virtual_time
async def test_acks_and_pongs_are_never_counted_as_unclaimed() -> None:
    async with TestServer() as server:
        client = make_client(server.url, ping_interval=0.2, pong_timeout=0.1)
        await client.connect()
        await asyncio.sleep(2.1)
        assert client.health.pongs >= 9
        assert client.unclaimed_events == 0
        await server.send_burst(2)  # app events nobody subscribed to: these count
        await asyncio.sleep(0.1)
        assert client.unclaimed_events == 2
        await client.close()


# -- what a client says about itself ----------------------------------------------------------


@virtual_time
async def test_a_client_has_no_token_or_subprotocol_until_its_socket_says_so() -> None:
    async with TestServer(subprotocols=["v2"]) as server:
        client = make_client(server.url, subprotocols=["v2"])
        assert (client.token, client.subprotocol) == (None, None)
        await client.connect()
        # No token provider: still no token; the subprotocol is the one the server chose.
        assert (client.token, client.subprotocol) == (None, "v2")
        await client.close()


def test_a_new_client_says_nothing_waits_for_its_subscribers() -> None:
    client = make_client("ws://127.0.0.1:1/")  # made before any loop runs, never connected
    assert (client.stats.reading_paused_for, client.stats.oldest_undelivered_age) == (0.0, 0.0)


@virtual_time
async def test_what_the_client_counts_is_logged_under_its_label() -> None:
    async with TestServer() as server:
        server.garbage_on_open = True
        client = make_client(server.url, label="counted")
        with capture_logs() as logs:
            await client.connect()
            await settle()
        [failure] = [e for e in logs if e["event"] == "decode_failed"]
        assert failure["client"] == "counted" == client.stats.label
        await client.close()


@virtual_time
async def test_the_clients_socket_runs_in_a_task_named_for_it() -> None:
    async with TestServer() as server:
        client = make_client(server.url, label="named")
        await client.connect()
        sockets = {t.get_name() for t in asyncio.all_tasks() if "-socket-" in t.get_name()}
        assert sockets == {"statesock-socket-named-1"}
        await client.close()


def test_the_transport_option_picks_the_engine() -> None:
    pytest.importorskip("picows")
    for name in ("websockets", "picows"):
        client = make_client("ws://127.0.0.1:1/", transport=name)
        assert type(client._engine).__module__ == f"statesock.{name}_engine"


def test_frames_are_stamped_at_full_resolution_on_a_loop_with_the_monotonic_clock() -> None:
    """uvloop's clock is the monotonic clock read in milliseconds: an answer that comes back
    within the millisecond of its ping must still be later than it, so frames are stamped
    with time.monotonic. A clock of its own (virtual time) stamps them itself."""
    import time

    from statesock.shell import _frame_clock

    uvloop = pytest.importorskip("uvloop")
    loop = uvloop.new_event_loop()
    try:
        assert _frame_clock(loop) is time.monotonic
    finally:
        loop.close()
    virtual = looptime.new_event_loop(start=0.0)
    try:
        assert _frame_clock(virtual) == virtual.time
    finally:
        virtual.close()


# -- a direct send and what its socket reports ------------------------------------------------


class DirectSend:
    """A socket handle whose direct (hot path) send is ``raw_send``; the rest is the real one."""

    def __init__(self, handle: Any, raw_send: Any) -> None:
        self.handle, self.raw_send = handle, raw_send

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)


def failing_with(error: BaseException) -> Any:
    async def send(data: str | bytes) -> None:
        raise error

    return send


@virtual_time
async def test_a_direct_send_on_a_socket_that_is_not_open_is_not_connected() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        await client.connect()
        socket = client._core.socket or 0
        swap_socket(client, socket, DirectSend(client._socket(socket), None))
        with pytest.raises(NotConnectedError) as refused:
            await client.send("hello")
        assert refused.value.state == "connected"
        assert str(refused.value) == (
            "cannot send in state 'connected': sending needs authenticating or connected"
        )
        await client.close()


@virtual_time
async def test_a_direct_send_cut_by_the_socket_raises_connection_lost_with_its_cause() -> None:
    from websockets.exceptions import ConnectionClosed

    from statesock.exceptions import ConnectionLost

    async with TestServer() as server:
        client = make_client(server.url)
        await client.connect()
        socket = client._core.socket or 0
        handle = client._socket(socket)
        closed = ConnectionClosed(None, None)
        swap_socket(client, socket, DirectSend(handle, failing_with(closed)))
        with pytest.raises(ConnectionLost) as lost:
            await client.send("hello")
        assert lost.value.__cause__ is closed
        # Anything else the socket raises reaches the caller as it is.
        other = OSError("disk on fire")
        swap_socket(client, socket, DirectSend(handle, failing_with(other)))
        with pytest.raises(OSError) as raised:
            await client.send("hello")
        assert raised.value is other and raised.value.__cause__ is None
        assert client.stats.messages_sent == 1  # the auth message only
        swap_socket(client, socket, handle)
        await client.close()


@virtual_time
async def test_a_buffered_message_is_written_once_and_its_send_returns_right_after() -> None:
    from statesock.recovery import ConnectionRecoveryHandler

    async with TestServer() as server:
        client = make_client(server.url)
        recovery = ConnectionRecoveryHandler(client, send_buffer_size=4)
        sending = asyncio.ensure_future(client.send({"type": "note"}))  # buffered: no socket
        await asyncio.sleep(0)
        assert not sending.done()
        await asyncio.wait_for(client.connect(), 10)
        # Counted in loop cycles, not time: a write that is never taken as done keeps the
        # loop busy, and virtual time would not move on to any timeout.
        for _ in range(100):
            if sending.done():
                break
            await asyncio.sleep(0)
        assert sending.done()
        await sending
        assert client.stats.messages_sent == 2  # the auth message, then the note
        recovery.close()
        await client.close()  # the server reads the note before the close frame
        assert server.received.count({"type": "note"}) == 1


# -- the step queue: inputs that arrive while a step runs -----------------------------------------


class OpensFailOnce:
    """An engine whose first ``open()`` raises (out of file descriptors, say); the rest is the
    real engine."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.failed = engine, False

    def open(self, listener: Any, number: int | None = None) -> Any:
        if not self.failed:
            self.failed = True
            raise OSError("too many open files")
        return self.engine.open(listener, number)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


@virtual_time
async def test_inputs_left_queued_by_a_step_that_raised_run_first_and_in_order_next_time() -> None:
    """Rule: an input that arrives while a step runs waits for it; if that step raises, what
    waits is not lost: the next input steps it first, in order, then itself."""
    async with TestServer() as server:
        client = make_client(server.url)
        client._engine = OpensFailOnce(client._engine)
        seen = transitions_of(client)

        def disconnect_while_connecting(record: Record) -> None:
            if isinstance(record, StateChange) and record.current is S.CONNECTING and not asked:
                asked.append(record.seq)
                client._step(io.UserDisconnect())  # the step that connects is still running

        asked: list[int] = []
        client.add_listener(disconnect_while_connecting)
        with pytest.raises(OSError, match="too many open files"):
            await client.connect()
        # The step raised at its OpenSocket, the disconnect still waiting behind it.
        assert client.state.state is S.CONNECTING
        assert seen == [("initialized", "connecting", "")]
        [failed] = client._waiters._futures.values()
        # This connect steps the waiting disconnect first (which ends the first attempt),
        # then connects: were it stepped first, the disconnect would end it instead.
        snapshot = await asyncio.wait_for(client.connect(), 10)
        assert snapshot.state is S.CONNECTED
        assert seen == [
            ("initialized", "connecting", ""),
            ("connecting", "disconnecting", "user"),
            ("disconnecting", "disconnected", "user"),
            *coming_up("disconnected"),
        ]
        # The connect whose step raised was kept by the core: the attempt that connected
        # answered it too.
        assert failed.done() and failed.result().state is S.CONNECTED
        await asyncio.wait_for(client.close(), 10)


@virtual_time
async def test_close_gives_a_stuck_async_callback_close_timeout_then_cancels_it() -> None:
    async with TestServer() as server:
        client = make_client(server.url, close_timeout=2.0, stall_timeout=None)
        started = asyncio.Event()
        cancelled: list[int] = []

        async def stuck(event: AppEvent) -> None:
            started.set()
            try:
                await asyncio.Event().wait()  # never returns
            except asyncio.CancelledError:
                cancelled.append(event.payload["seq"])
                raise

        client.on(AppEvent, stuck)
        await client.connect()
        await server.send_burst(1)
        await asyncio.wait_for(started.wait(), 10)
        loop = asyncio.get_running_loop()
        asked = loop.time()
        await asyncio.wait_for(client.close(), 30)
        assert loop.time() - asked == pytest.approx(2.0, abs=0.5)  # the drain budget, no more
        assert cancelled == [0]


class Written:
    """A socket handle that lists what is written to it at once, and sends nothing (the rest
    is the real handle)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.written: list[str | bytes | None] = []

    def write_now(self, data: str | bytes | None) -> bool:
        self.written.append(data)
        return data is not None  # a protocol Ping "not written": nothing to tell the core

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)


@virtual_time
async def test_a_health_check_goes_only_to_its_socket_and_only_while_the_shell_holds_it() -> None:
    async with TestServer() as server:
        client = make_client(server.url, ping_interval=None)
        await client.connect()
        socket = client._core.socket or 0
        handle = client._socket(socket)
        double = Written(handle)
        swap_socket(client, socket, double)
        health = client._core.machine.health
        # Asked for another socket (one the core has left): not written to this one.
        client._carry_out(io.SendHealthCheck(socket + 1, health))
        # Asked for this socket after its close was reported (the shell let it go first).
        client._handle = None
        client._carry_out(io.SendHealthCheck(socket, health))
        assert double.written == []
        client._handle = double
        client._carry_out(io.SendHealthCheck(socket, health))
        assert [json.loads(data or "") for data in double.written] == [
            {"type": "health.check", "connection_id": health.connection_id}
        ]
        swap_socket(client, socket, handle)
        await client.close()
