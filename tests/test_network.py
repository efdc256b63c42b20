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


# -- what a monitor logs, and what it refuses ----------------------------------------------------


def test_a_change_is_logged_at_info_and_a_raising_subscriber_at_error_with_its_traceback() -> None:
    from structlog.testing import capture_logs

    monitor = ManualNetworkMonitor()

    def broken(available: bool) -> None:
        raise RuntimeError("bug")

    monitor.subscribe(broken)
    with capture_logs() as logs:
        monitor.set_available(False)
        monitor.set_available(False)  # no change: nothing logged
    status, failure = logs
    assert status == {"event": "network_status", "log_level": "info", "available": False}
    assert failure["event"] == "network_callback_failed"
    assert failure["log_level"] == "error"
    assert failure["error"] == "RuntimeError: bug"
    assert failure["exception"].startswith("Traceback (most recent call last):")
    assert failure["exception"].endswith("RuntimeError: bug")


@pytest.mark.parametrize("value", ["no", 0, None])
def test_a_manual_status_must_be_a_bool(value: object) -> None:
    with pytest.raises(TypeError) as refused:
        ManualNetworkMonitor(value)  # type: ignore[arg-type]
    assert str(refused.value) == f"available must be True or False, not {value!r}"
    monitor = ManualNetworkMonitor(False)
    with pytest.raises(TypeError) as refused:
        monitor.set_available(value)  # type: ignore[arg-type]
    assert str(refused.value) == f"available must be True or False, not {value!r}"
    assert monitor.available is False


@pytest.mark.parametrize(
    ("arguments", "kind", "message"),
    [
        ({"host": ""}, TypeError, "host must be a non-empty str, not ''"),
        ({"host": 5}, TypeError, "host must be a non-empty str, not 5"),
        ({"port": 0}, ValueError, "port must be an int in 1..65535, not 0"),
        ({"port": 65536}, ValueError, "port must be an int in 1..65535, not 65536"),
        ({"port": True}, ValueError, "port must be an int in 1..65535, not True"),
        ({"port": "443"}, ValueError, "port must be an int in 1..65535, not '443'"),
        ({"interval": "2"}, TypeError, "interval must be a number of seconds, not '2'"),
        ({"interval": True}, TypeError, "interval must be a number of seconds, not True"),
        (
            {"interval": 1e-9},
            ValueError,
            "interval must be a finite number of seconds >= 0.01, not 1e-09",
        ),
        (
            {"interval": float("inf")},
            ValueError,
            "interval must be a finite number of seconds >= 0.01, not inf",
        ),
    ],
)
def test_a_route_monitor_refuses_what_it_cannot_poll(
    arguments: dict[str, object], kind: type[Exception], message: str
) -> None:
    with pytest.raises(kind) as refused:
        RouteNetworkMonitor(**{"host": "127.0.0.1", **arguments})  # type: ignore[arg-type]
    assert str(refused.value) == message


def test_a_route_monitor_takes_the_edges_of_its_ranges_and_defaults() -> None:
    low = RouteNetworkMonitor("127.0.0.1", 1, interval=network.MIN_ROUTE_INTERVAL)
    assert (low.host, low.port, low.interval) == ("127.0.0.1", 1, 0.01)
    high = RouteNetworkMonitor("::1", 65535, interval=3)
    assert (high.host, high.port, high.interval) == ("::1", 65535, 3)
    default = RouteNetworkMonitor("127.0.0.1")
    assert (default.port, default.interval, default.available) == (443, 2.0, True)


def test_has_route_asks_for_a_datagram_route_to_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[object, ...]] = []
    real = socket.getaddrinfo

    def spy(host: str, port: int, *args: object, **kwargs: object) -> object:
        asked.append((host, port, kwargs.get("type")))
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", spy)
    assert has_route("127.0.0.1")
    assert has_route("127.0.0.1", 8080)
    assert asked == [
        ("127.0.0.1", 443, socket.SOCK_DGRAM),
        ("127.0.0.1", 8080, socket.SOCK_DGRAM),
    ]


def test_has_route_is_false_when_no_address_can_be_reached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unreachable = [(socket.AF_INET, socket.SOCK_DGRAM, 0, "", ("192.0.2.1", 443))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: unreachable)

    class Refusing:
        def __init__(self, *args: object) -> None:
            self.args = args

        def __enter__(self) -> Refusing:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def connect(self, address: object) -> None:
            raise OSError(101, "Network is unreachable")

    made: list[tuple[object, ...]] = []

    def refusing(*args: object) -> Refusing:
        made.append(args)
        return Refusing(*args)

    monkeypatch.setattr(socket, "socket", refusing)
    assert has_route("192.0.2.1") is False
    assert made == [(socket.AF_INET, socket.SOCK_DGRAM, 0)]


@virtual_time
async def test_a_route_check_asks_about_the_monitors_own_host_and_port() -> None:
    asked: list[tuple[str, int]] = []

    def spy(host: str, port: int = 443) -> bool:
        asked.append((host, port))
        return False

    monitor = RouteNetworkMonitor("192.0.2.7", 8443, interval=5)
    original = network.has_route
    network.has_route = spy
    try:
        assert await monitor.check() is False
        await monitor.start()
        assert monitor._task is not None
        assert monitor._task.get_name() == "statesock-route-monitor-192.0.2.7"
        await monitor.stop()
    finally:
        network.has_route = original
    assert asked == [("192.0.2.7", 8443), ("192.0.2.7", 8443)]
    assert monitor.available is False


def test_has_route_is_false_when_the_name_does_not_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    def unresolvable(*args: object, **kwargs: object) -> object:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)
    assert has_route("nowhere.invalid") is False
