"""Stalled subscribers: one forgotten lossless stream must not stop the whole client.

The rule (issue 18, DESIGN.md): a lossless subscription or async ``on()`` callback that takes
nothing for ``stall_timeout`` seconds while the client has stopped reading for it is cut off:
its iterator yields what it holds, then raises :class:`SubscriberStalled`; it is counted and
logged at WARNING, and the client reads again. A slow reader that keeps taking events is
never cut. Real loopback servers, virtual time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from structlog.testing import capture_logs

from statesock.exceptions import SubscriberStalled
from statesock.machine import ConnectionState
from statesock.sources import NoPongReceived, ServerInitiated
from statesock.testing import AppEvent, TestServer
from tests.conftest import make_client, virtual_time

S = ConnectionState


async def collect(events: Any, count: int, *, every: float = 0.0) -> list[int]:
    got: list[int] = []
    async for event in events:
        got.append(event.payload["seq"])
        if every:
            await asyncio.sleep(every)
        if len(got) == count:
            break
    return got


@virtual_time
async def test_a_forgotten_stream_is_cut_off_and_the_client_reads_the_close() -> None:
    async with TestServer() as server:
        client = make_client(server.url, event_queue_size=10, stall_timeout=5.0)
        await client.connect()
        forgotten = client.events(AppEvent)  # like `break` out of `async for` without `with`
        healthy = asyncio.ensure_future(collect(client.events(AppEvent), 300))
        loop = asyncio.get_running_loop()
        with capture_logs() as logs:
            started = loop.time()
            await server.send_burst(300)
            await server.close_all(1000, "bye")
            await asyncio.wait_for(client.wait_for(S.DISCONNECTED), 30)
            ended = loop.time() - started
        assert 5.0 <= ended < 5.5  # the close is read once the stream is cut, not before
        assert client.final_source == ServerInitiated(1000, "bye")
        assert await healthy == list(range(300))  # the healthy stream lost nothing
        # The forgotten stream keeps what it held (its 10, and the one held for it), then
        # says why it ended.
        held = [event.payload["seq"] async for event in _until_stalled(forgotten)]
        assert held == list(range(11))
        assert client.stats.subscribers_stalled == 1
        [warning] = [log for log in logs if log["event"] == "subscriber_stalled"]
        assert warning["log_level"] == "warning"
        assert warning["subscription"] == "events(AppEvent)"
        assert warning["stalled_for"] == 5.0
        await client.close()


async def _until_stalled(events: Any) -> Any:
    with pytest.raises(SubscriberStalled) as info:
        async for event in events:
            yield event
    assert info.value.subscription == "events(AppEvent)"
    assert info.value.stalled_for == 5.0
    assert "5 s" in str(info.value)


@virtual_time
async def test_a_dead_peer_behind_a_stuck_stream_is_noticed_within_stall_ping_and_pong() -> None:
    async with TestServer() as server:
        client = make_client(
            server.url, event_queue_size=5, stall_timeout=3.0, ping_interval=2.0, pong_timeout=1.0
        )
        await client.connect()
        client.events(AppEvent)  # never read
        loop = asyncio.get_running_loop()
        await server.send_burst(50)
        server.silent = True  # from now on the peer answers nothing
        started = loop.time()
        await asyncio.wait_for(client.wait_for(S.DISCONNECTED), 60)
        assert isinstance(client.final_source, NoPongReceived)
        assert loop.time() - started <= 3.0 + 2.0 + 1.0 + 0.1
        await client.close()


@virtual_time
async def test_a_slow_reader_that_keeps_taking_events_is_never_cut() -> None:
    async with TestServer() as server:
        client = make_client(server.url, event_queue_size=2, stall_timeout=1.0)
        await client.connect()
        slow = client.events(AppEvent)
        await server.send_burst(40)
        # One event every 0.9 s: 36 s in all, far beyond the stall timeout, never stalled.
        assert await collect(slow, 40, every=0.9) == list(range(40))
        assert client.stats.subscribers_stalled == 0
        assert client.state.state is S.CONNECTED
        await client.close()


@virtual_time
async def test_without_a_stall_timeout_the_stats_show_what_lossless_delivery_costs() -> None:
    async with TestServer() as server:
        client = make_client(server.url, event_queue_size=3, stall_timeout=None)
        await client.connect()
        # Up a while first: both costs count from when reading stopped, not from the start.
        await asyncio.sleep(1000)
        assert (client.stats.reading_paused_for, client.stats.oldest_undelivered_age) == (0, 0)
        stuck = client.events(AppEvent)
        await server.send_burst(10)
        await asyncio.sleep(100)
        assert client.stats.subscribers_stalled == 0
        assert 99.0 <= client.stats.reading_paused_for <= 100.5
        assert 99.0 <= client.stats.oldest_undelivered_age <= 100.5
        assert await collect(stuck, 10) == list(range(10))  # nothing was lost meanwhile
        await asyncio.sleep(0.1)
        assert (client.stats.reading_paused_for, client.stats.oldest_undelivered_age) == (0, 0)
        await client.close()


@virtual_time
async def test_a_stuck_async_callback_is_cut_off_and_the_others_go_on() -> None:
    async with TestServer() as server:
        client = make_client(server.url, event_queue_size=4, stall_timeout=2.0)
        seen: list[int] = []

        async def stuck(event: AppEvent) -> None:
            await asyncio.Event().wait()  # never returns

        async def fine(event: AppEvent) -> None:
            seen.append(event.payload["seq"])

        client.on(AppEvent, stuck)
        client.on(AppEvent, fine)
        await client.connect()
        await server.send_burst(30)
        await asyncio.sleep(3.0)
        assert seen == list(range(30))
        assert client.stats.subscribers_stalled == 1
        assert client.state.state is S.CONNECTED
        await client.close()


def test_stall_timeout_is_checked_at_construction() -> None:
    with pytest.raises(ValueError, match="stall_timeout"):
        make_client("ws://127.0.0.1:1/", stall_timeout=0)
    with pytest.raises(TypeError, match="stall_timeout"):
        make_client("ws://127.0.0.1:1/", stall_timeout="30")
