"""The small event types statesock itself understands.

A user's ``event_decoder`` turns each WebSocket message into any object it likes; two kinds
mean something to the client:

* :class:`ConnectionAckEvent`: the server accepted the connection (its auth ack); it
  completes ``authenticating``.
* :class:`HealthCheckPongEvent`: the server's answer to a health check. For servers that
  use one message for both, the first one in ``authenticating`` also counts as the ack;
  later ones are pongs.
* :class:`ServerErrorEvent`: the server reported an error; the client disconnects with
  ``ServerInitiated(error=event)`` and the reconnect policy reads ``retryable``.

:class:`HealthCheckInfo` is what the client knows about the link's health. Pure module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ConnectionAckEvent", "HealthCheckInfo", "HealthCheckPongEvent", "ServerErrorEvent"]


@dataclass(frozen=True, slots=True)
class ConnectionAckEvent:
    """The server's ack of the connection (after auth), optionally naming the connection."""

    connection_id: str | None = None
    payload: Any = None


@dataclass(frozen=True, slots=True)
class HealthCheckPongEvent:
    """A health-check answer from the server, optionally naming the connection."""

    connection_id: str | None = None
    payload: Any = None


@dataclass(frozen=True, slots=True)
class ServerErrorEvent:
    """The server reported an error in-band; ``retryable`` tells the default policy."""

    message: str
    code: int | None = None
    retryable: bool = True


@dataclass(frozen=True, slots=True)
class HealthCheckInfo:
    """Link health: the server-assigned connection id and the last measured round trip.

    ``round_trip`` is in seconds; ``last_pong_at`` is in the client's clock (loop time).
    """

    connection_id: str | None = None
    round_trip: float | None = None
    last_pong_at: float | None = None
    pongs: int = 0
