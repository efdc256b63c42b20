"""Why a connection went down, and whether the default policy reconnects after it.

Every ``disconnecting`` / ``disconnected`` state carries exactly one source (see
``machine.py``). A source is a small frozen dataclass with a readable ``close_reason`` (it
becomes the reason of the close frame the client sends) and a ``kind`` used in logs.

:func:`default_reconnect_policy` encodes the reconnect table of the README; any ``(source) -> bool``
callable can replace it. It reads a failure's own verdict (``retryable``, ``auth_rejected``,
set by the :class:`~statesock.exceptions.ConnectionFailure` subclasses and by
:class:`~statesock.events.ServerErrorEvent`) instead of testing exception types, so this module
does not import :mod:`statesock.exceptions`, which names ``DisconnectionSource`` in
``ConnectFailed.source``: no import cycle. Pure module: the standard library and
:mod:`statesock.events` (and :mod:`statesock.states`, for typing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .events import ServerErrorEvent

if TYPE_CHECKING:
    from .states import ConnectionState

__all__ = [
    "DisconnectionSource",
    "NoPongReceived",
    "ReconnectPolicy",
    "ServerInitiated",
    "SystemInitiated",
    "Timeout",
    "UserInitiated",
    "default_reconnect_policy",
    "is_auth_rejection",
    "is_fatal_close_code",
]


@dataclass(frozen=True, slots=True)
class DisconnectionSource:
    """Base class: why the connection is going or gone."""

    kind: ClassVar[str] = "unknown"

    @property
    def close_reason(self) -> str:
        return self.kind

    @property
    def code(self) -> int | None:
        """The WebSocket close code involved, when there is one."""
        return None


@dataclass(frozen=True, slots=True)
class UserInitiated(DisconnectionSource):
    """The application called ``disconnect()``. Never reconnected by the default policy."""

    kind: ClassVar[str] = "user"

    @property
    def close_reason(self) -> str:
        return "user disconnect"


@dataclass(frozen=True, slots=True)
class ServerInitiated(DisconnectionSource):
    """The server closed the connection, refused it, or reported an error.

    ``close_code`` and ``reason`` come from the close frame when there was one; ``error`` is
    the statesock exception (a ``ConnectionFailure`` subclass) or the decoded
    :class:`ServerErrorEvent` that caused it.
    """

    kind: ClassVar[str] = "server"
    close_code: int | None = None
    reason: str = ""
    error: BaseException | ServerErrorEvent | None = None

    @property
    def code(self) -> int | None:
        return self.close_code

    @property
    def close_reason(self) -> str:
        if self.close_code is not None:
            text = f"server closed with {self.close_code}"
            return f"{text}: {self.reason}" if self.reason else text
        if isinstance(self.error, ServerErrorEvent):
            return f"server error: {self.error.message}"
        if self.error is not None:
            return str(self.error) or type(self.error).__name__
        return self.reason or "server closed the connection"


@dataclass(frozen=True, slots=True)
class SystemInitiated(DisconnectionSource):
    """The system took the link down: network lost, or the app paused the client."""

    kind: ClassVar[str] = "system"
    reason: str = "network unavailable"

    @property
    def close_reason(self) -> str:
        return self.reason


@dataclass(frozen=True, slots=True)
class NoPongReceived(DisconnectionSource):
    """The ping controller got no pong within ``pong_timeout``: the link is dead."""

    kind: ClassVar[str] = "no_pong"

    @property
    def close_reason(self) -> str:
        return "no pong received"


@dataclass(frozen=True, slots=True)
class Timeout(DisconnectionSource):
    """``connecting`` or ``authenticating`` lasted longer than its bound."""

    kind: ClassVar[str] = "timeout"
    state: ConnectionState | None = None

    @property
    def close_reason(self) -> str:
        name = self.state.value if self.state is not None else "a state"
        return f"timed out in {name}"


ReconnectPolicy = Callable[[DisconnectionSource], bool]

# Close codes after which retrying the same request can only fail the same way.
_FATAL_CLOSE_CODES = frozenset({1000, 1002, 1003, 1007, 1008, 1009, 1010})
# 4400-4499 mirror HTTP 4xx: the client's fault, except timeouts and rate limits.
_RETRYABLE_4XXX = frozenset({4408, 4429})


def is_fatal_close_code(code: int) -> bool:
    """True for close codes that the default policy never retries."""
    if code in _FATAL_CLOSE_CODES:
        return True
    return 4400 <= code <= 4499 and code not in _RETRYABLE_4XXX


def default_reconnect_policy(source: DisconnectionSource) -> bool:
    """The README's reconnect table: whether to reconnect after ``source``.

    ``SystemInitiated`` answers True: the connection core still waits for the network to come
    back (or the app to resume) before it acts on that answer. A server-side source's error
    decides when it has a verdict (``retryable`` is not None: an invalid URL, a bad setting, a
    certificate, an HTTP 4xx, a server error event), else its close code.
    """
    if isinstance(source, UserInitiated):
        return False
    if not isinstance(source, ServerInitiated):
        return True
    verdict = getattr(source.error, "retryable", None)
    if verdict is not None:
        return bool(verdict)
    if source.close_code is not None:
        return not is_fatal_close_code(source.close_code)
    return True


_AUTH_CLOSE_CODES = frozenset({4401, 4403})


def is_auth_rejection(source: DisconnectionSource | None) -> bool:
    """The server refused our credentials (HTTP 401/403 or close 4401/4403): a fresh token
    may help where retrying the same one cannot."""
    if not isinstance(source, ServerInitiated):
        return False
    verdict = getattr(source.error, "auth_rejected", None)
    if verdict is not None:
        return bool(verdict)
    return source.close_code in _AUTH_CLOSE_CODES
