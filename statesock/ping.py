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
from json.encoder import encode_basestring_ascii
from typing import Any

from .events import HealthCheckInfo

__all__ = ["PingRequestBuilder", "build_health_check", "default_ping_request"]

PingRequestBuilder = Callable[[HealthCheckInfo], Any]


# json.dumps of the default health check, spelled out: the same text without walking a dict
# on every check. The id, when it is text, goes through json.dumps' own string encoder.
_CHECK_HEAD = '{"type": "health.check", "connection_id": '
_CHECK_NULL = _CHECK_HEAD + "null}"


def default_ping_request(health: HealthCheckInfo) -> str:
    """``{"type": "health.check", "connection_id": <id or null>}`` as JSON text."""
    connection_id = health.connection_id
    if connection_id is None:
        return _CHECK_NULL
    if type(connection_id) is str:
        return f"{_CHECK_HEAD}{encode_basestring_ascii(connection_id)}}}"
    return json.dumps({"type": "health.check", "connection_id": connection_id})


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
