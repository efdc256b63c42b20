"""Every exception statesock raises, and nothing else.

The tree::

    StatesockError
    ├── InvalidTransition        a trigger the machine refuses in its current state
    ├── NotConnectedError        send() while no connection can carry the message
    ├── ConnectFailed            connect() ended in disconnected; ``source`` says why
    ├── ConnectionEnded          run(): the connection ended for good, not by the user
    ├── ClientClosed             the client was closed and cannot be used again
    ├── SubscriberStalled        a lossless subscriber took nothing for stall_timeout: cut off
    ├── SendBufferError          a buffered message could not be delivered
    │   ├── SendBufferFull       the reconnect buffer had no room
    │   ├── SendExpired          the message waited longer than its time to live
    │   └── SendAbandoned        the client gave up or the user disconnected
    └── ConnectionFailure        the transport failed; carries what the policy needs
        ├── InvalidURL           (also a ValueError) the URL can never work
        ├── ConfigurationError   the client's own settings made the attempt impossible
        ├── HandshakeRejected    the server answered the upgrade with an HTTP status
        ├── TLSFailure           the TLS handshake failed (certificate or protocol)
        ├── NameResolutionFailed the host name did not resolve
        ├── ConnectionRefused    nothing listens on the port
        ├── ConnectTimeout       the handshake did not finish in time
        ├── ProtocolViolation    the peer spoke something that is not WebSocket
        ├── MessageTooLarge      a message exceeded the client's own max_size
        ├── TokenUnavailable     the token provider failed before the attempt
        └── ConnectionLost       the socket broke (reset, closed without a close frame)

Foreign exceptions (``websockets``, ``OSError``, ``ssl``) are mapped to this tree at the
engine boundary; callers never see a ``websockets`` type. The original is kept as
``__cause__``. Each ``ConnectionFailure`` carries what the reconnect policy needs, including
its own verdict (``retryable``, ``auth_rejected``), so :mod:`statesock.sources` classifies a
failure without importing this module, and this one names ``DisconnectionSource`` without an
import cycle. Pure module: it imports only the standard library (and, for typing only,
:mod:`statesock.sources`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sources import DisconnectionSource

__all__ = [
    "ClientClosed",
    "ConfigurationError",
    "ConnectFailed",
    "ConnectTimeout",
    "ConnectionEnded",
    "ConnectionFailure",
    "ConnectionLost",
    "ConnectionRefused",
    "HandshakeRejected",
    "InvalidTransition",
    "InvalidURL",
    "MessageTooLarge",
    "NameResolutionFailed",
    "NotConnectedError",
    "ProtocolViolation",
    "SendAbandoned",
    "SendBufferError",
    "SendBufferFull",
    "SendExpired",
    "StatesockError",
    "SubscriberStalled",
    "TLSFailure",
    "TokenUnavailable",
]


_RETRYABLE_HTTP_4XX = frozenset({408, 429})
_AUTH_STATUSES = frozenset({401, 403})


class StatesockError(Exception):
    """Base class of every statesock exception."""


class InvalidTransition(StatesockError):
    """The machine refused ``trigger`` in ``state``; the state is unchanged."""

    def __init__(self, trigger: str, state: str, why: str = "") -> None:
        self.trigger = trigger
        self.state = state
        self.why = why
        message = f"trigger {trigger!r} is not allowed in state {state!r}"
        super().__init__(f"{message}: {why}" if why else message)


class NotConnectedError(StatesockError):
    """``send()`` was called while no connection could carry the message."""

    def __init__(self, state: str) -> None:
        self.state = state
        super().__init__(
            f"cannot send in state {state!r}: sending needs authenticating or connected"
        )


class ConnectFailed(StatesockError):
    """The connection attempt that ``connect()`` waited for ended in disconnected."""

    def __init__(self, source: DisconnectionSource | None) -> None:
        self.source = source
        reason = source.close_reason if source is not None else "unknown reason"
        super().__init__(f"connection attempt failed: {reason}")


class ConnectionEnded(StatesockError):
    """``client.run()`` ended because nothing will reconnect the client (no recovery, or
    recovery gave up); ``source`` is the final disconnection source."""

    def __init__(self, source: DisconnectionSource | None) -> None:
        self.source = source
        reason = source.close_reason if source is not None else "unknown reason"
        super().__init__(f"connection ended: {reason}")


class ClientClosed(StatesockError):
    """The client was closed (``close()`` or leaving ``async with``) and cannot connect again."""


class SubscriberStalled(StatesockError):
    """A lossless subscription (or async ``on()`` callback) took nothing for ``stall_timeout``
    seconds while the client had stopped reading for it, so it was cut off and the client
    reads again. Its iterator yields what it still holds, then raises this.

    ``subscription`` names it (``events(AppEvent)``, or the callback's name); ``stalled_for``
    is how long it took nothing, in seconds.
    """

    def __init__(self, subscription: str, stalled_for: float) -> None:
        self.subscription = subscription
        self.stalled_for = stalled_for
        super().__init__(
            f"subscriber {subscription} took nothing for {stalled_for:g} s while the client "
            "waited for it: cut off so that the client reads again"
        )


class SendBufferError(StatesockError):
    """A message accepted into the reconnect buffer was not sent."""


class SendBufferFull(SendBufferError):
    """The reconnect buffer is at its limit; the message was not accepted."""


class SendExpired(SendBufferError):
    """The message waited in the reconnect buffer longer than its time to live."""


class SendAbandoned(SendBufferError):
    """The client gave up reconnecting or the user disconnected before the send."""


class ConnectionFailure(StatesockError):
    """The transport failed. Subclasses say how, and what that means for a retry.

    Two answers feed :func:`statesock.sources.default_reconnect_policy` (like
    :attr:`ServerErrorEvent.retryable <statesock.events.ServerErrorEvent.retryable>`) and
    custom policies alike; None means the failure has no verdict of its own, and the close
    code, when there is one, decides:

    * ``retryable``: whether trying again can help at all;
    * ``auth_rejected``: whether the server refused the credentials (a fresh token may help).
    """

    retryable: bool | None = None
    auth_rejected: bool | None = None


class InvalidURL(ConnectionFailure, ValueError):
    """The URL is malformed or not ws:// / wss://; retrying can never help."""

    retryable = False


class ConfigurationError(ConnectionFailure):
    """The attempt failed before any I/O because of the client's settings; retrying won't help."""

    retryable = False


class HandshakeRejected(ConnectionFailure):
    """The server answered the WebSocket upgrade with a non-101 HTTP status."""

    def __init__(self, status: int, retry_after: float | None = None, body: str = "") -> None:
        self.status = status
        self.retry_after = retry_after
        self.body = body
        # HTTP 4xx is the request's fault, except a timeout or a rate limit: retrying the
        # same request fails the same way. 401/403: the credentials were refused.
        self.retryable = not (400 <= status <= 499 and status not in _RETRYABLE_HTTP_4XX)
        self.auth_rejected = status in _AUTH_STATUSES
        detail = f"server rejected the WebSocket handshake with HTTP {status}"
        if retry_after is not None:
            detail += f" (Retry-After {retry_after:g} s)"
        super().__init__(detail)


class TLSFailure(ConnectionFailure):
    """The TLS handshake failed; ``certificate`` says whether verification was the cause."""

    def __init__(self, message: str, certificate: bool) -> None:
        self.certificate = certificate
        self.retryable = not certificate  # a bad certificate stays bad
        super().__init__(message)


class NameResolutionFailed(ConnectionFailure):
    """The host name did not resolve."""


class ConnectionRefused(ConnectionFailure):
    """The server refused the TCP connection."""


class ConnectTimeout(ConnectionFailure):
    """The TCP, TLS and WebSocket handshakes did not finish within ``connect_timeout``."""


class ProtocolViolation(ConnectionFailure):
    """The peer broke the WebSocket protocol (garbage instead of a handshake or frame)."""


class MessageTooLarge(ConnectionFailure):
    """An incoming message exceeded the client's own ``max_size``; the client closed with 1009.

    The default policy reconnects (with backoff): the limit is the client's, and a later
    message may fit. Raise ``max_size`` or use a policy that stops if the server always
    sends more.
    """


class TokenUnavailable(ConnectionFailure):
    """The token provider raised before a connection attempt; the cause says why."""


class ConnectionLost(ConnectionFailure):
    """The socket broke: reset by the peer or closed without a close frame."""
