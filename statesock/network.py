"""Whether the network is usable, as the recovery handler needs to know it.

A :class:`NetworkMonitor` has a current ``available`` status and notifies subscribers of
changes. :class:`ManualNetworkMonitor` is driven by the application's own signal (an OS
callback, a UI toggle). :class:`RouteNetworkMonitor` polls whether the OS has a route to
the server: ``connect()`` on a UDP socket performs the route lookup and sends nothing, so
the check costs no traffic and fails at once with ENETUNREACH when the route is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from collections.abc import Callable
from typing import Protocol

from .log_schema import LogEvent
from .transition_log import emit

__all__ = [
    "MIN_ROUTE_INTERVAL",
    "ManualNetworkMonitor",
    "NetworkMonitor",
    "RouteNetworkMonitor",
    "has_route",
]

StatusCallback = Callable[[bool], None]

# The shortest poll interval RouteNetworkMonitor takes (seconds). Each poll is a thread
# hand-off, a getaddrinfo() and a socket; below 10 ms that is a busy loop (1e-9 s would spin
# a core on threads), and no reconnect decision needs a route change sooner than that.
MIN_ROUTE_INTERVAL = 0.01


def _status(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {value!r}")
    return value


class NetworkMonitor(Protocol):
    @property
    def available(self) -> bool: ...

    def subscribe(self, callback: StatusCallback) -> Callable[[], None]:
        """Call ``callback(available)`` on every change; returns an unsubscribe function."""
        ...


class _Notifier:
    def __init__(self, available: bool) -> None:
        self._available = available
        self._callbacks: list[StatusCallback] = []

    @property
    def available(self) -> bool:
        return self._available

    def subscribe(self, callback: StatusCallback) -> Callable[[], None]:
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    def _set(self, available: bool) -> None:
        if available == self._available:
            return
        self._available = available
        emit("info", LogEvent.NETWORK_STATUS, available=available)
        for callback in tuple(self._callbacks):
            try:
                callback(available)
            except Exception as exc:
                # emit() logs the traceback redacted, never the raw exception.
                emit("error", LogEvent.NETWORK_CALLBACK_FAILED, error=exc, exc_info=exc)


class ManualNetworkMonitor(_Notifier):
    """Set the status yourself: ``set_available(False)`` when your app learns it is offline.

    ``available`` (here and in :meth:`set_available`) must be a bool: a string such as
    ``"no"`` is a TypeError rather than a status read as true.
    """

    def __init__(self, available: bool = True) -> None:
        super().__init__(_status("available", available))

    def set_available(self, available: bool) -> None:
        self._set(_status("available", available))


def has_route(host: str, port: int = 443) -> bool:
    """True when the OS has a route to ``host`` (no packet is sent)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError:
        return False
    for family, kind, proto, _, address in infos:
        with contextlib.suppress(OSError), socket.socket(family, kind, proto) as probe:
            probe.connect(address)
            return True
    return False


class RouteNetworkMonitor(_Notifier):
    """Polls :func:`has_route` every ``interval`` seconds in a task; start() / stop().

    Give it a numeric address: the route check then never touches DNS. A host name is
    resolved on each poll, in a thread, so a slow resolver never blocks the loop.

    ``host`` is a non-empty str, ``port`` an int in 1..65535, ``interval`` a finite number
    of seconds >= :data:`MIN_ROUTE_INTERVAL` (0.01 s).
    """

    def __init__(self, host: str, port: int = 443, *, interval: float = 2.0) -> None:
        if not isinstance(host, str) or not host:
            raise TypeError(f"host must be a non-empty str, not {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port must be an int in 1..65535, not {port!r}")
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            raise TypeError(f"interval must be a number of seconds, not {interval!r}")
        if not math.isfinite(interval) or interval < MIN_ROUTE_INTERVAL:
            raise ValueError(
                f"interval must be a finite number of seconds >= {MIN_ROUTE_INTERVAL}, "
                f"not {interval!r}"
            )
        super().__init__(True)
        self.host = host
        self.port = port
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> bool:
        available = await asyncio.to_thread(has_route, self.host, self.port)
        self._set(available)
        return available

    async def start(self) -> None:
        await self.check()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._poll(), name=f"statesock-route-monitor-{self.host}"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.check()
