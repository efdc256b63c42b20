"""What a client skipped, dropped or caught, counted and logged.

:class:`ClientStats` is the counters a user reads (``client.stats``); its methods are where
the client reports such things, so each is counted once and logged the same way, with
secrets redacted. Nothing here ever raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .log_schema import LogEvent
from .redaction import redact_text
from .transition_log import emit

__all__ = ["ClientStats"]


@dataclass
class ClientStats:
    """Counters a user can read to see what the client skipped or dropped, and why."""

    messages_received: int = 0
    decode_errors: int = 0
    ignored_messages: int = 0
    events_dropped: int = 0
    callback_errors: int = 0
    sends_expired: int = 0
    sends_abandoned: int = 0
    label: str = field(default="", repr=False, compare=False)

    def decode_failed(self, exc: Exception, data: str | bytes) -> None:
        """The user's decoder raised: the message is skipped, the connection stays up."""
        self.decode_errors += 1
        emit(
            "warning",
            LogEvent.DECODE_FAILED,
            client=self.label,
            error=redact_text(f"{type(exc).__name__}: {exc}"),
            message=redact_text(data),
            decode_errors=self.decode_errors,
        )

    def callback_failed(self, exc: Exception, name: str) -> None:
        """A user-supplied function (callback, hook, listener, policy...) raised."""
        self.callback_errors += 1
        emit(
            "error",
            LogEvent.CALLBACK_FAILED,
            client=self.label,
            callback=name,
            error=redact_text(f"{type(exc).__name__}: {exc}"),
            exc_info=exc,
        )

    def listener_failed(self, exc: Exception, record: object, listener: Any) -> None:
        self.callback_failed(exc, getattr(listener, "__name__", type(listener).__name__))

    def dropped(self, sub: Any) -> None:
        """A subscription dropped an item under the drop policy its subscriber chose."""
        self.events_dropped += 1
        if sub.dropped == 1 or sub.dropped % 1000 == 0:
            emit(
                "warning",
                LogEvent.EVENTS_DROPPED,
                client=self.label,
                dropped=sub.dropped,
                queue_size=sub.maxsize,
                policy=sub.overflow.value,
            )
