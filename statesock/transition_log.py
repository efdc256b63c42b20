"""The transition log writer: one structured ``transition`` event per machine record.

Every record the machine produces becomes one structlog event named ``transition`` with the
fields of DESIGN.md (``client``, ``seq``, ``src``, ``dst``, ``trigger``, ``source``,
``code``, ``detail``, ``in_state_ms``) plus ``internal`` for internal transitions. The
library never configures structlog and asks for its logger at call time, so an application's
configuration (JSON lines, filtering) applies whenever it is made.

Free text in a record passes through :mod:`statesock.redaction` first; ``statesock logs``
(:mod:`statesock.log_reader`) reads these events back.
"""

from __future__ import annotations

import contextlib
from typing import Any

import structlog

from .machine import InternalTransition, Record, StateChange
from .redaction import redact_text

__all__ = [
    "LOGGER_NAME",
    "TransitionLogger",
    "emit",
    "get_logger",
    "transition_fields",
]

LOGGER_NAME = "statesock"


def get_logger() -> Any:
    """The library's logger, fetched at call time (never cached, never configured)."""
    return structlog.get_logger(LOGGER_NAME)


def emit(level: str, event: str, **fields: Any) -> None:
    """Log one event; a failure of the app's logging (a broken processor, a closed file)
    is swallowed, because the connection must not depend on the log sink."""
    with contextlib.suppress(Exception):
        getattr(get_logger(), level)(event, **fields)


def transition_fields(client: str, record: Record) -> dict[str, Any]:
    """The log fields of one record (the schema ``statesock logs`` reads)."""
    if isinstance(record, StateChange):
        src, dst = record.previous.value, record.current.value
    else:
        src = dst = record.state.value
    source = record.source
    return {
        "client": client,
        "seq": record.seq,
        "src": src,
        "dst": dst,
        "trigger": record.trigger.value,
        "source": source.kind if source is not None else None,
        "code": source.code if source is not None else None,
        "detail": redact_text(record.detail),
        "in_state_ms": round(record.in_state * 1000, 3),
        "internal": isinstance(record, InternalTransition),
        "at": round(record.at, 6),
    }


class TransitionLogger:
    """A machine listener that writes each record as a ``transition`` event."""

    def __init__(self, client: str) -> None:
        self.client = client

    def __call__(self, record: Record) -> None:
        emit("info", "transition", **transition_fields(self.client, record))
