"""The shell's waiters: futures the core settles by number, gone once their wait ends.

Every wait is bounded (virtual time): a waiter that is never settled fails its test at once
instead of hanging it.
"""

from __future__ import annotations

import asyncio

import pytest

from statesock.testing import TestServer
from statesock.waiters import Waiters
from tests.conftest import make_client, virtual_time


async def bounded(waiters: Waiters, number: int) -> object:
    return await asyncio.wait_for(waiters.wait(number), 10)


@virtual_time
async def test_numbers_are_distinct_and_each_waiter_counts_until_its_wait_ends() -> None:
    waiters = Waiters()
    first, second = waiters.add(), waiters.add()
    assert first != second
    assert len(waiters) == 2
    waiters.settle(first, "one")
    assert len(waiters) == 2  # settled before anyone waits: kept for the wait
    assert await bounded(waiters, first) == "one"
    assert len(waiters) == 1
    waiting = asyncio.create_task(bounded(waiters, second))
    await asyncio.sleep(0)
    waiters.settle(second, "two")
    assert await waiting == "two"
    assert len(waiters) == 0


@virtual_time
async def test_a_waiter_settled_with_an_error_raises_it_and_is_removed() -> None:
    waiters = Waiters()
    number = waiters.add()
    error = ValueError("nope")
    waiters.settle(number, "ignored", error)
    with pytest.raises(ValueError) as raised:
        await bounded(waiters, number)
    assert raised.value is error
    assert len(waiters) == 0


@virtual_time
async def test_settling_without_a_result_gives_none() -> None:
    waiters = Waiters()
    number = waiters.add()
    waiters.settle(number)
    assert await bounded(waiters, number) is None


@virtual_time
async def test_only_the_first_settlement_counts() -> None:
    waiters = Waiters()
    number = waiters.add()
    waiters.settle(number, "first")
    waiters.settle(number, "second")
    waiters.settle(number, None, ValueError("late"))
    assert await bounded(waiters, number) == "first"
    waiters.settle(number, "after the wait")  # gone: nothing to settle, no error
    assert len(waiters) == 0


@virtual_time
async def test_a_cancelled_wait_leaves_nothing_and_its_late_settlement_is_ignored() -> None:
    waiters = Waiters()
    number = waiters.add()
    waiting = asyncio.create_task(waiters.wait(number))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert len(waiters) == 0
    waiters.settle(number, "too late")
    waiters.settle(12345678, "never added")
    assert len(waiters) == 0


def test_adding_a_waiter_needs_a_running_loop() -> None:
    waiters = Waiters()
    with pytest.raises(RuntimeError):
        waiters.add()
    assert len(waiters) == 0


@virtual_time
async def test_connect_and_disconnect_cycles_leave_no_waiter_behind() -> None:
    async with TestServer() as server:
        client = make_client(server.url)
        for _ in range(3):
            await client.connect()
            await client.disconnect()
        assert len(client._waiters) == 0
        await client.connect()
        await client.send("hello")
        await client.close()
        assert len(client._waiters) == 0
