"""What a health check sends.

The core decides when a health check is due and when its answer is late (see
:mod:`statesock.core`); this module only builds the message. By default it is
:func:`default_ping_request`, a JSON health check carrying the connection id; a
``ping_request_builder`` may return its own message, or None for a protocol-level Ping frame
(whose Pong is then the answer). A builder or an encoder that raises falls back to a Ping
frame, so a broken builder never ends health checking; the error is reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .events import HealthCheckInfo

__all__ = ["PingRequestBuilder", "build_health_check", "default_ping_request"]

PingRequestBuilder = Callable[[HealthCheckInfo], Any]


def default_ping_request(health: HealthCheckInfo) -> str:
    """``{"type": "health.check", "connection_id": <id or null>}`` as JSON text."""
    return json.dumps({"type": "health.check", "connection_id": health.connection_id})


def build_health_check(
    builder: PingRequestBuilder | None,
    encoder: Callable[[Any], str | bytes],
    health: HealthCheckInfo,
    report: Callable[[Exception, str], None],
) -> str | bytes | None:
    """The health check's wire data, or None for a protocol Ping frame."""
    if builder is None:
        return None
    try:
        message = builder(health)
        if message is None or isinstance(message, str | bytes):
            return message
        return encoder(message)
    except Exception as exc:
        report(exc, "ping_request_builder")
        return None
