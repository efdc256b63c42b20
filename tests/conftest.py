"""Shared test helpers: run a coroutine on a fresh virtual-time (looptime) event loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import looptime

P = ParamSpec("P")
R = TypeVar("R")


def run_virtual(coro: Coroutine[Any, Any, R], *, end: float = 86_400 * 2) -> R:
    """Run ``coro`` on a new looptime loop (time starts at 0) and close the loop after.

    Fails if the coroutine leaves a task running: every test doubles as a leak check.
    ``end`` is a safety net in virtual seconds: a test that hangs is killed there.
    """
    loop = looptime.new_event_loop(start=0.0, end=end)
    try:
        result = loop.run_until_complete(coro)
        # Give tasks finishing in the same step a chance to complete before the leak check.
        for _ in range(3):
            loop.run_until_complete(asyncio.sleep(0))
        leftover = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
        assert not leftover, f"tasks left running: {[t.get_name() for t in leftover]}"
        return result
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def virtual_time(
    fn: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, R]:
    """Decorator: an async test run by :func:`run_virtual`."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return run_virtual(fn(*args, **kwargs))

    return wrapper


def transitions_of(client: Any) -> list[tuple[str, str, str]]:
    """Attach a listener; the returned list fills with (src, dst, source kind or '')."""
    from statesock.machine import StateChange

    seen: list[tuple[str, str, str]] = []

    def listen(record: object) -> None:
        if isinstance(record, StateChange):
            kind = record.source.kind if record.source is not None else ""
            seen.append((record.previous.value, record.current.value, kind))

    client.add_listener(listen)
    return seen


async def blackhole_server() -> asyncio.Server:
    """A TCP server on 127.0.0.1 that accepts and then never says a word."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.read(65536):
                pass
        finally:
            writer.close()

    return await asyncio.start_server(swallow, "127.0.0.1", 0)


def server_url(server: asyncio.Server) -> str:
    port = server.sockets[0].getsockname()[1]
    return f"ws://127.0.0.1:{port}/"


async def wait_for_state(client: Any, state: Any) -> None:
    """Return as soon as ``client`` enters ``state`` (at once if it is there already)."""
    await client.wait_for(state)


def make_client(url: str, **kwargs: Any) -> Any:
    """A client for :class:`statesock.testing.TestServer`'s protocol, token "t"."""
    from statesock.client import WebSocketClient
    from statesock.testing import auth_hook, decode_message

    kwargs.setdefault("on_connection_established", auth_hook("t"))
    return WebSocketClient(url, kwargs.pop("decoder", decode_message), **kwargs)


def coming_up(previous: str) -> list[tuple[str, str, str]]:
    """The three changes of a successful connect from ``previous``, as transitions_of lists them."""
    return [
        (previous, "connecting", ""),
        ("connecting", "authenticating", ""),
        ("authenticating", "connected", ""),
    ]
