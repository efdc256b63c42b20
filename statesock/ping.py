"""WebSocketPingController: proves the link is alive while connected.

Every ``ping_interval`` seconds it sends ``ping_request_builder(health_info)`` (by default
:func:`default_ping_request`, a JSON health check carrying the connection id) and waits for
any ``HealthCheckPongEvent``; if none arrives within ``pong_timeout`` of the send, it asks
the client to disconnect with ``NoPongReceived``. When the builder returns None, a
protocol-level Ping frame is sent instead and its Pong is the answer. Each answer's round
trip is measured on the event loop's clock and published in the health info.

The controller runs for one socket generation at a time and never fires a trigger itself:
it calls back into its :class:`PingClient` (the WebSocketClient), which checks that the
generation is still current.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any, Protocol

from .events import HealthCheckInfo, HealthCheckPongEvent
from .exceptions import StatesockError

__all__ = [
    "PingClient",
    "PingRequestBuilder",
    "WebSocketPingController",
    "default_ping_request",
]

PingRequestBuilder = Callable[[HealthCheckInfo], Any]


def default_ping_request(health: HealthCheckInfo) -> str:
    """``{"type": "health.check", "connection_id": <id or null>}`` as JSON text."""
    return json.dumps({"type": "health.check", "connection_id": health.connection_id})


class PingClient(Protocol):
    @property
    def health(self) -> HealthCheckInfo: ...

    async def send_ping_message(self, generation: int, message: Any) -> None: ...

    async def send_protocol_ping(self, generation: int) -> float: ...

    def pong_received(self, generation: int, health: HealthCheckInfo) -> None: ...

    def pong_missed(self, generation: int) -> None: ...

    def report_error(self, exc: Exception, where: str) -> None: ...


class WebSocketPingController:
    def __init__(
        self,
        client: PingClient,
        *,
        ping_interval: float = 25.0,
        pong_timeout: float = 3.0,
        ping_request_builder: PingRequestBuilder | None = default_ping_request,
        label: str = "",
    ) -> None:
        if ping_interval <= 0 or pong_timeout <= 0:
            raise ValueError("ping_interval and pong_timeout must be positive")
        self._client = client
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self._builder = ping_request_builder
        self._label = label
        self._task: asyncio.Task[None] | None = None
        self._generation = 0
        self._waiter: asyncio.Future[HealthCheckPongEvent] | None = None
        self.pings_sent = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, generation: int) -> None:
        self.stop()
        self._generation = generation
        self._task = asyncio.get_running_loop().create_task(
            self._run(generation), name=f"statesock-ping-{self._label}-{generation}"
        )

    def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel("statesock: ping controller stopped")
        self._task = None
        self._fail_waiter()

    async def wait_stopped(self) -> None:
        task = self._task
        self.stop()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def on_pong(self, generation: int, event: HealthCheckPongEvent) -> None:
        """A pong for ``generation`` arrived (while connected)."""
        if generation != self._generation:
            return
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(event)
        else:
            # Unsolicited (the server checks health on its own): refresh the id only.
            health = self._client.health
            self._client.pong_received(
                generation,
                HealthCheckInfo(
                    event.connection_id or health.connection_id,
                    health.round_trip,
                    asyncio.get_running_loop().time(),
                    health.pongs + 1,
                ),
            )

    def _fail_waiter(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()
        self._waiter = None

    async def _run(self, generation: int) -> None:
        loop = asyncio.get_running_loop()
        # A fixed cadence (25, 50, 75 s...) whatever the round trips were.
        next_ping = loop.time() + self.ping_interval
        while True:
            await asyncio.sleep(max(0.0, next_ping - loop.time()))
            next_ping += self.ping_interval
            health = self._client.health
            try:
                message = self._builder(health) if self._builder is not None else None
            except Exception as exc:
                # A broken builder must not end health checking: fall back to a Ping frame.
                self._client.report_error(exc, "ping_request_builder")
                message = None
            sent_at = loop.time()
            self.pings_sent += 1
            connection_id = health.connection_id
            try:
                async with asyncio.timeout(self.pong_timeout):
                    if message is None:
                        await self._client.send_protocol_ping(generation)
                    else:
                        self._waiter = loop.create_future()
                        await self._client.send_ping_message(generation, message)
                        event = await self._waiter
                        connection_id = event.connection_id or connection_id
            except TimeoutError:
                self._waiter = None
                self._client.pong_missed(generation)
                return
            except StatesockError:
                # The socket went away under the ping; the engine reports that close.
                return
            except Exception as exc:  # e.g. the builder's message could not be encoded
                self._waiter = None
                self._client.report_error(exc, "ping_request_builder")
                continue
            self._waiter = None
            now = loop.time()
            self._client.pong_received(
                generation, HealthCheckInfo(connection_id, now - sent_at, now, health.pongs + 1)
            )
