"""Network monitors: manual status, and the route check (loopback only)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from statesock import network
from statesock.network import ManualNetworkMonitor, RouteNetworkMonitor, has_route
from tests.conftest import virtual_time


def test_manual_monitor_notifies_changes_only() -> None:
    monitor = ManualNetworkMonitor()
    seen: list[bool] = []
    unsubscribe = monitor.subscribe(seen.append)
    monitor.set_available(True)
    monitor.set_available(False)
    monitor.set_available(False)
    monitor.set_available(True)
    assert seen == [False, True]
    unsubscribe()
    monitor.set_available(False)
    assert seen == [False, True]
    assert monitor.available is False


def test_a_raising_subscriber_does_not_stop_the_others() -> None:
    monitor = ManualNetworkMonitor()
    seen: list[bool] = []

    def broken(available: bool) -> None:
        raise RuntimeError("bug")

    monitor.subscribe(broken)
    monitor.subscribe(seen.append)
    monitor.set_available(False)
    assert seen == [False]


def test_has_route_to_loopback() -> None:
    assert has_route("127.0.0.1", 9)


def test_has_route_is_false_when_the_route_lookup_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoRoute(socket.socket):
        def connect(self, address: object) -> None:
            raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "socket", NoRoute)
    assert not has_route("127.0.0.1", 9)


@virtual_time
async def test_route_monitor_polls_and_reports_changes() -> None:
    routes = iter([True, True, False, False, True])
    monitor = RouteNetworkMonitor("127.0.0.1", 9, interval=2.0)
    original = network.has_route
    network.has_route = lambda host, port=443: next(routes)
    seen: list[bool] = []
    monitor.subscribe(seen.append)
    try:
        await monitor.start()
        await asyncio.sleep(9)
    finally:
        await monitor.stop()
        network.has_route = original
    assert seen == [False, True]
    assert monitor.available
