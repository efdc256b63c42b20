"""What a client skipped, dropped or caught, counted and logged.

:class:`ClientStats` is the counters a user reads (``client.stats``); its methods are where
the client reports such things, so each is counted once and logged the same way, with
secrets redacted. Nothing here ever raises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .log_schema import LogEvent
from .redaction import redact_text
from .transition_log import emit

__all__ = ["ClientStats"]


def _nothing_waits() -> tuple[float, float]:
    return 0.0, 0.0


@dataclass(slots=True)  # one per client: a __dict__ would cost ~600 B each
class ClientStats:
    """Counters a user can read to see what the client did, skipped or dropped, and why.

    ``messages_sent`` / ``bytes_sent`` count the app's messages written to a socket (health
    checks excluded); ``bytes_received`` counts every message received (UTF-8 bytes for
    text). ``reconnects`` counts connects fired by recovery. ``subscribers_stalled`` counts
    subscribers cut off after ``stall_timeout``. :attr:`reading_paused_for` and
    :attr:`oldest_undelivered_age` say what lossless delivery costs right now.
    """

    messages_received: int = 0
    bytes_received: int = 0
    messages_sent: int = 0
    bytes_sent: int = 0
    reconnects: int = 0
    subscribers_stalled: int = 0
    decode_errors: int = 0
    ignored_messages: int = 0
    events_dropped: int = 0
    callback_errors: int = 0
    sends_expired: int = 0
    sends_abandoned: int = 0
    label: str = field(default="", repr=False, compare=False)
    # (seconds reading has been paused, age of the oldest undelivered event), read live.
    probe: Callable[[], tuple[float, float]] = field(
        default=_nothing_waits, repr=False, compare=False
    )

    @property
    def reading_paused_for(self) -> float:
        """Seconds since the client stopped reading for a full lossless subscriber (0 while
        it reads). A server close or a dead peer behind the backlog is seen only after it."""
        return self.probe()[0]

    @property
    def oldest_undelivered_age(self) -> float:
        """Seconds the oldest event not yet taken by its consumer has waited (0: none)."""
        return self.probe()[1]

    def message_sent(self, data: str | bytes) -> None:
        self.messages_sent += 1
        self.bytes_sent += _size(data)

    def subscriber_stalled(self, error: Exception) -> None:
        """A lossless subscriber took nothing for stall_timeout: it was cut off."""
        self.subscribers_stalled += 1
        emit(
            "warning",
            LogEvent.SUBSCRIBER_STALLED,
            client=self.label,
            subscription=redact_text(str(getattr(error, "subscription", ""))),
            stalled_for=getattr(error, "stalled_for", None),
            subscribers_stalled=self.subscribers_stalled,
        )

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


def _size(data: str | bytes) -> int:
    """The bytes ``data`` takes on the wire (UTF-8 for text; ASCII needs no encoding)."""
    if isinstance(data, str) and not data.isascii():
        return len(data.encode())
    return len(data)
