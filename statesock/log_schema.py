"""The log schema: the names of statesock's log events and of a ``transition`` record's fields.

One source for the writer (:mod:`statesock.transition_log` and the core's ``Log`` effects), the
reader (``statesock logs``, ``statesock report``) and the console, so that no control signal
travels as a repeated literal or as free text. Pure module: standard library only.

A ``transition`` record has every field of :data:`TRANSITION_FIELDS`. ``reconnect`` says whether
a connect was fired by recovery (True) or by the user (False); logs written before it existed
say so only in ``detail`` (``"reconnect"``), and readers accept both
(:data:`LEGACY_RECONNECT_DETAIL`).
"""

from __future__ import annotations

import enum

__all__ = [
    "LEGACY_RECONNECT_DETAIL",
    "TRANSITION_FIELDS",
    "LogEvent",
]


class LogEvent(enum.StrEnum):
    """Every event name statesock logs (a StrEnum: each member *is* its string)."""

    TRANSITION = "transition"
    """One state change or internal transition (fields: :data:`TRANSITION_FIELDS`)."""
    RECONNECT_SCHEDULED = "reconnect_scheduled"
    """Recovery will reconnect in ``retry_in`` seconds (``attempt``, ``source``, ``code``)."""
    RECONNECT_NOW = "reconnect_now"
    """Recovery reconnects at once: what it waited for is back (``reason``)."""
    RECOVERY_WAITING = "recovery_waiting"
    """Recovery waits for the network or a resume before it schedules anything."""
    RECOVERY_STOPPED = "recovery_stopped"
    """Recovery gave up for good (``reason``): the client is done."""
    RECOVERY_ALREADY_ATTACHED = "recovery_already_attached"
    """A second recovery handler was refused."""
    STALE_SOCKET_EVENT = "stale_socket_event"
    """An input from a socket that is no longer current was dropped (debug)."""
    HOOK_INTERRUPTED = "hook_interrupted"
    """A hook's socket went away under it."""
    NETWORK_STATUS = "network_status"
    """A network monitor's status changed."""
    NETWORK_CALLBACK_FAILED = "network_callback_failed"
    """A network monitor's subscriber raised."""
    DECODE_FAILED = "decode_failed"
    """The event decoder raised on a message (skipped, counted)."""
    EVENTS_DROPPED = "events_dropped"
    """A ``DROP_*`` subscription dropped events (the first, then every 1000th)."""
    SUBSCRIBER_STALLED = "subscriber_stalled"
    """A lossless subscriber took nothing for ``stall_timeout`` and was cut off (warning)."""
    CLIENT_ENDED = "client_ended"
    """The client is done because of an error and nothing will reconnect it (warning)."""
    CALLBACK_FAILED = "callback_failed"
    """A user callback (hook, ``on()`` callback, listener, policy, strategy) raised."""


TRANSITION_FIELDS: tuple[str, ...] = (
    "client",
    "seq",
    "src",
    "dst",
    "trigger",
    "source",
    "code",
    "detail",
    "in_state_ms",
    "internal",
    "reconnect",
    "at",
    "ts",
    "run",
)
"""The fields of every ``transition`` record, in the order the writer puts them."""

LEGACY_RECONNECT_DETAIL = "reconnect"
"""The ``detail`` of a recovery's connect in logs written before ``reconnect`` was a field."""
