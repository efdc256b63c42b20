"""statesock.sync: the blocking client, against a TestServer running in a thread of its own.

Real time with short intervals: the client's loop runs in another thread, where virtual time
cannot reach. Every wait is bounded. After each test no statesock thread (nor an asyncio
executor thread) is left.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import gc
import inspect
import io
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from statesock.exceptions import (
    ClientClosed,
    ConnectFailed,
    ConnectionEnded,
    InvalidURL,
    SubscriberStalled,
)
from statesock.machine import ConnectionState
from statesock.network import ManualNetworkMonitor
from statesock.recovery import ConnectionRecoveryHandler as AsyncRecoveryHandler
from statesock.retry import DelayList
from statesock.sources import ServerInitiated, SystemInitiated, UserInitiated
from statesock.sync import ConnectionRecoveryHandler, WebSocketClient
from statesock.testing import AppEvent, TestServer, auth_hook, decode_message

S = ConnectionState
R = TypeVar("R")
WAIT = 3.0  # seconds: the bound of every wait that should succeed


class ServerThread:
    """A :class:`TestServer` on an event loop of its own, in a thread of its own."""

    def __init__(self, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="test-server", daemon=True
        )
        self.thread.start()
        self.server = self.call(TestServer(**options).start())

    def call(self, coro: Coroutine[Any, Any, R]) -> R:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT)

    def later(self, coro: Coroutine[Any, Any, Any]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop)

    @property
    def url(self) -> str:
        return self.server.url

    def connections(self) -> int:
        return len(self.server.connections)

    def stop(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()


@pytest.fixture
def server() -> Iterator[ServerThread]:
    running = ServerThread()
    yield running
    running.stop()


def library_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("statesock-", "asyncio_"))]


# Every client make() built; closed after each test, so a failing test leaves no thread.
_made: list[WebSocketClient] = []


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    before = set(library_threads())
    yield
    made = list(_made)
    _made.clear()
    for client in made:
        client.close()
    left = [t for t in library_threads() if t not in before]
    for thread in left:
        thread.join(WAIT)
    assert not [t.name for t in left if t.is_alive()], "threads left running"


def make(url: str, **options: Any) -> WebSocketClient:
    """A blocking client for the TestServer's protocol, token "t" (closed after the test)."""
    client = WebSocketClient(
        url, decode_message, on_connection_established=auth_hook("t"), **options
    )
    _made.append(client)
    return client


def eventually(check: Callable[[], bool], within: float = WAIT) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.01)


def seqs(events: list[AppEvent]) -> list[int]:
    return [event.payload["seq"] for event in events]


# -- the basics ------------------------------------------------------------------------------


def test_connect_send_and_events_with_a_timeout_that_loses_nothing(server: ServerThread) -> None:
    client = make(server.url)
    events = client.events(AppEvent, timeout=0.2)  # before connect: nothing is missed
    snapshot = client.connect()
    assert snapshot.state is S.CONNECTED and client.state.state is S.CONNECTED
    client.send({"type": "hello", "n": 1})
    eventually(lambda: {"type": "hello", "n": 1} in server.server.received)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        next(events)
    assert 0.15 <= time.monotonic() - started < 2.0
    server.call(server.server.send_burst(3))
    assert seqs([next(events) for _ in range(3)]) == [0, 1, 2]
    assert client.stats.messages_sent == 2  # the auth message and ours
    client.close()


def test_tiny_timeouts_racing_a_burst_lose_no_event(server: ServerThread) -> None:
    client = make(server.url)
    events = client.events(AppEvent, timeout=0.0005)
    client.connect()

    async def trickle() -> None:  # in steps, so that some next() calls wait and time out
        for start in range(0, 300, 10):
            await asyncio.sleep(0.01)
            await server.server.send_burst(10, start=start)

    server.later(trickle())
    got: list[AppEvent] = []
    timeouts = 0
    deadline = time.monotonic() + WAIT
    while len(got) < 300 and time.monotonic() < deadline:
        try:
            got.append(next(events))
        except TimeoutError:
            timeouts += 1
    assert seqs(got) == list(range(300))
    assert timeouts > 0  # the race was run
    client.close()


def test_the_context_manager_connects_and_close_leaves_no_thread_task_or_open_loop(
    server: ServerThread,
) -> None:
    with make(server.url, label="ctx") as client:
        assert client.state.state is S.CONNECTED
        loop_thread = next(t for t in threading.enumerate() if t.name == "statesock-sync-ctx")
        assert loop_thread.daemon and loop_thread.is_alive()
        loop = client._bridge.loop
    assert not loop_thread.is_alive()
    assert not [t for t in library_threads() if t.name == "statesock-sync-ctx"]
    assert loop.is_closed()
    assert not asyncio.all_tasks(loop)
    assert client.closed and client.done
    assert client.final_source == UserInitiated()
    eventually(lambda: server.connections() == 0)


def test_a_failed_connect_in_with_closes_the_client(server: ServerThread) -> None:
    server.call(server.server.stop())  # nothing listens on the port
    client = make(server.url)
    with pytest.raises(ConnectFailed), client:
        pass
    assert client.closed
    assert client.state.state is S.DISCONNECTED


def test_wait_for_and_its_timeout(server: ServerThread) -> None:
    client = make(server.url)
    connecting = threading.Thread(target=client.connect)
    connecting.start()
    assert client.wait_for(S.CONNECTED, timeout=WAIT).state is S.CONNECTED
    connecting.join(WAIT)
    assert client.wait_for(S.CONNECTED).state is S.CONNECTED  # already there: at once
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        client.wait_for(S.DISCONNECTED, timeout=0.2)
    assert 0.15 <= time.monotonic() - started < 2.0
    with pytest.raises(TimeoutError):
        client.wait_done(timeout=0.05)
    assert client.disconnect().state is S.DISCONNECTED
    with pytest.raises(ConnectionEnded):  # done, without recovery: it will never connect
        client.wait_for(S.CONNECTED, timeout=WAIT)
    assert client.wait_done() == UserInitiated()
    client.close()


# -- the end of a connection ---------------------------------------------------------------


def test_the_iterator_ends_when_the_client_is_done(server: ServerThread) -> None:
    client = make(server.url)
    events = client.events(AppEvent, timeout=WAIT)
    client.connect()
    server.call(server.server.send_burst(2))
    server.call(server.server.kill())  # no recovery: this is the end
    assert seqs(list(events)) == [0, 1]
    assert client.done
    source = client.final_source
    assert isinstance(source, ServerInitiated)
    assert events.cause == source
    with pytest.raises(StopIteration):
        next(events)
    client.close()


def test_a_stalled_subscription_yields_what_it_held_then_raises(server: ServerThread) -> None:
    client = make(server.url, event_queue_size=1, stall_timeout=0.2)
    events = client.events(AppEvent, timeout=WAIT)
    client.connect()
    server.call(server.server.send_burst(3))
    eventually(lambda: client.stats.subscribers_stalled == 1)
    got: list[AppEvent] = []
    with pytest.raises(SubscriberStalled):
        got.extend(events)
    assert seqs(got) == [0, 1]
    with pytest.raises(SubscriberStalled):  # as the asyncio iterator: raised again
        next(events)
    assert client.state.state is S.CONNECTED  # cut off, the client reads again
    client.close()


def test_close_from_another_thread_ends_a_blocked_iterator(server: ServerThread) -> None:
    client = make(server.url)
    events = client.events(AppEvent)  # no timeout: blocks until the end
    client.connect()
    got: list[AppEvent] = []
    reader = threading.Thread(target=lambda: got.extend(events))
    reader.start()
    server.call(server.server.send_burst(2))
    eventually(lambda: len(got) == 2)
    closers = [threading.Thread(target=client.close) for _ in range(2)]
    for closer in closers:
        closer.start()
    client.close()  # three at once: each returns once the thread is gone
    assert client.closed
    reader.join(WAIT)
    assert not reader.is_alive()
    for closer in closers:
        closer.join(WAIT)
    assert seqs(got) == [0, 1]


def test_after_close_methods_raise_client_closed_and_properties_answer(
    server: ServerThread,
) -> None:
    client = make(server.url)
    held = client.events(AppEvent, timeout=WAIT)
    client.connect()
    server.call(server.server.send_burst(2))
    eventually(lambda: held.pending == 2)
    client.close()
    client.close()  # idempotent
    calls: list[Callable[[], object]] = [
        client.connect,
        client.disconnect,
        lambda: client.send("x"),
        lambda: client.wait_for(S.CONNECTED),
        client.wait_done,
        client.events,
        lambda: ConnectionRecoveryHandler(client),
    ]
    for call in calls:
        with pytest.raises(ClientClosed):
            call()
    assert client.state.state is S.DISCONNECTED
    assert client.done and client.final_source == UserInitiated()
    assert client.stats.messages_received == 3  # the ack and two events
    assert seqs(list(held)) == [0, 1]  # what a stream held is still read, then it ends
    held.close()


# -- threads -------------------------------------------------------------------------------


def test_calls_on_the_loop_thread_raise_instead_of_deadlocking(server: ServerThread) -> None:
    errors: list[str] = []
    seen: list[object] = []
    holder: list[WebSocketClient] = []

    def on_connected(async_client: object) -> None:
        client = holder[0]
        seen.append(async_client is client.async_client)
        seen.append(client.state.state)  # reading is allowed: it does not wait
        calls: list[Callable[[], object]] = [
            client.connect,
            client.disconnect,
            lambda: client.send("x"),
            lambda: client.wait_for(S.CONNECTED),
            client.events,
            client.close,
        ]
        for call in calls:
            try:
                call()
            except RuntimeError as exc:
                errors.append(str(exc))

    client = make(server.url, on_connected=on_connected)
    holder.append(client)
    client.connect()
    eventually(lambda: len(errors) == 6)
    assert all("event-loop thread" in error and "await client.send" in error for error in errors)
    assert seen == [True, S.CONNECTED]
    client.send({"type": "still", "working": True})  # nothing was left half-done
    assert client.stats.callback_errors == 0
    client.close()


def test_construction_checks_options_before_starting_a_thread() -> None:
    before = library_threads()
    with pytest.raises(ValueError, match="ping_interval"):
        WebSocketClient("ws://127.0.0.1:1/", decode_message, ping_interval=-1)
    with pytest.raises(InvalidURL):
        WebSocketClient("http://127.0.0.1:1/", decode_message)
    assert library_threads() == before


def test_a_forgotten_client_is_closed_when_collected(server: ServerThread) -> None:
    client = WebSocketClient(
        server.url, decode_message, on_connection_established=auth_hook("t"), label="forgotten"
    )
    client.connect()
    loop = client._bridge.loop
    thread = next(t for t in threading.enumerate() if t.name == "statesock-sync-forgotten")
    with pytest.warns(ResourceWarning, match="never closed"):
        del client
        gc.collect()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert loop.is_closed()
    eventually(lambda: server.connections() == 0)


def test_a_dropped_subscription_unsubscribes(server: ServerThread) -> None:
    client = make(server.url, event_queue_size=1)
    events = client.events(AppEvent)
    client.connect()
    del events
    gc.collect()
    server.call(server.server.send_burst(3))
    eventually(lambda: client.async_client.unclaimed_events == 3)  # nobody holds the client
    assert client.stats.reading_paused_for == 0
    client.close()


# -- recovery ------------------------------------------------------------------------------


def test_the_server_killed_and_restarted_the_client_reconnects(server: ServerThread) -> None:
    client = make(server.url)
    recovery = ConnectionRecoveryHandler(client, strategy=DelayList([0.1]))
    events = client.events(AppEvent, timeout=WAIT)
    client.connect()
    server.call(server.server.kill())
    dropped = client.wait_for(S.DISCONNECTED, timeout=WAIT)
    assert isinstance(dropped.source, ServerInitiated)
    time.sleep(0.3)  # a few refused attempts
    assert recovery.attempt >= 1 and not client.done
    server.call(server.server.restart())
    assert client.wait_for(S.CONNECTED, timeout=WAIT).state is S.CONNECTED
    assert recovery.reconnects >= 1 and client.stats.reconnects >= 1
    server.call(server.server.send_burst(1))
    assert seqs([next(events)]) == [0]  # the stream lived through the reconnect
    recovery.close()
    client.close()
    recovery.close()  # after the client's close: nothing to do


def test_pause_resume_and_a_network_monitor_set_from_this_thread(server: ServerThread) -> None:
    client = make(server.url)
    monitor = ManualNetworkMonitor()
    recovery = ConnectionRecoveryHandler(client, monitor, strategy=DelayList([0.1]))
    client.connect()
    monitor.set_available(False)  # reported here, handed to the loop thread
    assert client.wait_for(S.DISCONNECTED, timeout=WAIT).source == SystemInitiated(
        "network unavailable"
    )
    assert not recovery.network_available
    monitor.set_available(True)
    client.wait_for(S.CONNECTED, timeout=WAIT)
    recovery.pause()
    assert client.wait_for(S.DISCONNECTED, timeout=WAIT).source == SystemInitiated("app paused")
    assert recovery.paused
    recovery.resume()
    client.wait_for(S.CONNECTED, timeout=WAIT)
    assert not recovery.paused
    client.close()


def test_timeouts_cancel_on_the_loop_a_connect_goes_on_a_buffered_send_leaves(
    server: ServerThread,
) -> None:
    server.call(server.server.kill())
    client = make(server.url)
    recovery = ConnectionRecoveryHandler(
        client,
        strategy=DelayList([0.1]),
        send_buffer_size=10,
        retry_first_connect=True,
    )
    with pytest.raises(TimeoutError):
        client.connect(timeout=0.3)
    with pytest.raises(TimeoutError):
        client.send({"type": "late"}, timeout=0.2)
    buffer = recovery.send_buffer
    assert buffer is not None and buffer.pending == 0  # the cancelled send left the buffer
    server.call(server.server.restart())
    client.wait_for(S.CONNECTED, timeout=WAIT)  # the attempts went on after the timeout
    assert {"type": "late"} not in server.server.received
    client.close()


def test_the_recovery_handler_takes_the_asyncio_handlers_parameters(
    server: ServerThread,
) -> None:
    def shape(cls: type) -> list[tuple[str, object, object]]:
        params = inspect.signature(cls).parameters.values()
        return [(p.name, p.kind, p.default) for p in params]

    assert shape(ConnectionRecoveryHandler) == shape(AsyncRecoveryHandler)
    client = make(server.url)
    with pytest.raises(ValueError, match="stable_after"):  # checked on the loop, raised here
        ConnectionRecoveryHandler(client, stable_after=-1)
    with pytest.raises(TypeError, match=r"statesock\.sync\.WebSocketClient"):
        ConnectionRecoveryHandler(client.async_client)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="network_monitor"):
        ConnectionRecoveryHandler(client, object())  # type: ignore[arg-type]
    ConnectionRecoveryHandler(client)
    with pytest.raises(RuntimeError, match="already has a recovery handler"):
        ConnectionRecoveryHandler(client)
    client.close()


# -- the README ----------------------------------------------------------------------------


def readme_blocking_client() -> str | None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    if "## Blocking client" not in readme:
        return None
    section = readme.split("## Blocking client", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_blocking_client_example_runs_as_written(server: ServerThread) -> None:
    code = readme_blocking_client()
    if code is None:
        pytest.skip("the README has no Blocking client section")
    assert code.count("wss://example.test/connect") == 1
    code = code.replace("wss://example.test/connect", server.url)

    async def server_side() -> None:
        await server.server.wait_for_connections()
        await asyncio.sleep(0.2)
        await server.server.send_burst(2)
        await asyncio.sleep(0.2)
        await server.server.close_all(1008, "policy")  # the policy stops recovery on 1008

    server.later(server_side())
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    lines = printed.getvalue().splitlines()
    assert [ast.literal_eval(line)["seq"] for line in lines[:-1]] == [0, 1]
    assert lines[-1].startswith("connection ended: ServerInitiated(close_code=1008")
    assert {"type": "subscribe", "channel": "prices"} in server.server.received
