"""Shared test helpers: run a coroutine on a fresh virtual-time (looptime) event loop; and
the transport parametrization: the behaviour suites run once per transport.

Every test of the modules in :data:`TRANSPORT_SUITES` runs once per transport of
:data:`TRANSPORTS` (ids ``[websockets]`` and ``[picows]``): the autouse :func:`transport`
fixture sets :data:`CURRENT_TRANSPORT`, which :func:`make_client` passes as ``transport=``
unless the test gives one, and makes it the default of ``WebSocketClient(transport=...)``
for the test, so that a client a test constructs itself runs on it too. A test that is about
one transport's internals says so with ``@pytest.mark.transports("websockets", reason=...)``.
A transport that is not installed skips its runs loudly (the reason names the missing extra),
and fails them under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import os
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, ParamSpec, TypeVar

import looptime
import pytest

P = ParamSpec("P")
R = TypeVar("R")

TRANSPORTS = ("websockets", "picows")
# The behaviour suites: every test in them runs on every transport.
TRANSPORT_SUITES = frozenset(
    {
        "test_client",
        "test_lifecycle",
        "test_engine",
        "test_recovery",
        "test_delivery",
        "test_send_buffer",
        "test_ping",
        "test_proxy",
        "test_tls",
        "test_leaks",
        "test_integration",
        "test_stalls",
        "test_soak",
        "test_examples",
        "test_interop",
    }
)
# The transport of the running test (the default one outside the suites).
CURRENT_TRANSPORT = "websockets"
_INSTALL = {"picows": "pip install -e '.[fast]' (the statesock[fast] extra)"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "transports(*names, reason): run this test of a transport suite on these transports "
        "only (the reason says why it is about them)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rpartition(".")[2]
    if module not in TRANSPORT_SUITES or "transport" not in metafunc.fixturenames:
        return
    names = TRANSPORTS
    marker = metafunc.definition.get_closest_marker("transports")
    if marker is not None:
        names = tuple(marker.args)
        unknown = set(names) - set(TRANSPORTS)
        assert names and not unknown, f"{metafunc.definition.nodeid}: transports {names}"
        assert marker.kwargs.get("reason"), f"{metafunc.definition.nodeid}: say why"
    metafunc.parametrize("transport", names, indirect=True, scope="function")


@pytest.fixture(autouse=True)
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The transport of this run: set for make_client and as WebSocketClient's default."""
    global CURRENT_TRANSPORT
    name: str = getattr(request, "param", TRANSPORTS[0])
    if name != TRANSPORTS[0]:
        if importlib.util.find_spec(name) is None:
            message = f"transport {name!r} is not installed: {_INSTALL.get(name, name)}"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"{message} (CI installs every transport)")
            pytest.skip(f"SKIPPED LOUDLY: {message}")
        from statesock import settings

        monkeypatch.setitem(settings._DEFAULTS, "transport", name)
    previous, CURRENT_TRANSPORT = CURRENT_TRANSPORT, name
    try:
        yield name
    finally:
        CURRENT_TRANSPORT = previous


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


def swap_socket(client: Any, number: int, double: Any) -> None:
    """Put ``double`` (a test double wrapping the real handle, with its ``id``) in the place
    of the client's socket ``number``."""
    assert client._handle is not None and client._handle.id == number
    client._handle = double


def make_client(url: str, **kwargs: Any) -> Any:
    """A client for :class:`statesock.testing.TestServer`'s protocol, token "t", on the
    running test's transport unless ``transport=`` is given."""
    from statesock.client import WebSocketClient
    from statesock.testing import auth_hook, decode_message

    kwargs.setdefault("on_connection_established", auth_hook("t"))
    kwargs.setdefault("transport", CURRENT_TRANSPORT)
    return WebSocketClient(url, kwargs.pop("decoder", decode_message), **kwargs)


def coming_up(previous: str) -> list[tuple[str, str, str]]:
    """The three changes of a successful connect from ``previous``, as transitions_of lists them."""
    return [
        (previous, "connecting", ""),
        ("connecting", "authenticating", ""),
        ("authenticating", "connected", ""),
    ]


@pytest.fixture(autouse=True)
def _structlog_left_as_found() -> Iterator[None]:
    """A test (or a documentation example it runs) that configures structlog must not
    change what the next test prints: the configuration is put back after each test."""
    import structlog

    was_configured = structlog.is_configured()
    config = structlog.get_config()
    yield
    if was_configured:
        structlog.configure(**config)
    else:
        structlog.reset_defaults()
