"""The connection core's vocabulary: its configuration, inputs and effects.

Small frozen dataclasses in the style of wsproto's events: what the asyncio shell tells
:class:`~statesock.core.ConnectionCore` (*inputs*) and what the core asks the shell to do
(*effects*). Pure module: standard library only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .events import HealthCheckInfo, ServerErrorEvent
from .exceptions import ConnectionFailure, SendBufferError
from .machine import ConnectionState
from .retry import RetryStrategy
from .sources import DisconnectionSource, ReconnectPolicy

__all__ = [
    "CLOSE_GRACE",
    "MAX_CLOSE_REASON_BYTES",
    "SOCKET_TIMERS",
    "AbortSocket",
    "AppPaused",
    "AppResumed",
    "AttachRecovery",
    "BufferSend",
    "CancelHook",
    "CancelTimer",
    "CloseSocket",
    "CoreConfig",
    "DetachRecovery",
    "Effect",
    "Finished",
    "HealthAnswered",
    "Hook",
    "HookFinished",
    "Input",
    "Log",
    "NetworkChanged",
    "OpenSocket",
    "ReadingPaused",
    "ReadingResumed",
    "RecoveryConfig",
    "ReportError",
    "ResolveConnect",
    "ResolveDisconnect",
    "ResolveSend",
    "RunHook",
    "SendCancelled",
    "SendHealthCheck",
    "SendRoute",
    "SendWritten",
    "ServerErrorReceived",
    "SocketClosed",
    "SocketOpened",
    "StartTimer",
    "TimerFired",
    "TimerKind",
    "UserClose",
    "UserConnect",
    "UserDisconnect",
    "WriteBuffered",
    "truncate_close_reason",
]

S = ConnectionState
MAX_CLOSE_REASON_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes
# How long past close_timeout the core waits for the engine's report before it gives the
# socket up itself, so that no client can stay in disconnecting.
CLOSE_GRACE = 1.0


class TimerKind(enum.Enum):
    CONNECT_DEADLINE = "connect_deadline"
    AUTH_DEADLINE = "auth_deadline"
    PING = "ping"
    PONG_DEADLINE = "pong_deadline"
    IDLE_DEADLINE = "idle_deadline"
    CLOSE_DEADLINE = "close_deadline"
    RECONNECT = "reconnect"
    SEND_EXPIRY = "send_expiry"


# Timers that belong to a socket: none may be armed once the socket is gone.
SOCKET_TIMERS = frozenset(
    {
        TimerKind.CONNECT_DEADLINE,
        TimerKind.AUTH_DEADLINE,
        TimerKind.PING,
        TimerKind.PONG_DEADLINE,
        TimerKind.IDLE_DEADLINE,
        TimerKind.CLOSE_DEADLINE,
    }
)


class Hook(enum.Enum):
    ON_CONNECTION_ESTABLISHED = "on_connection_established"
    ON_CONNECTED = "on_connected"


class SendRoute(enum.Enum):
    """Where ``send()`` must put a message now (see :meth:`ConnectionCore.send_route`)."""

    DIRECT = "direct"
    BUFFER = "buffer"
    REFUSE = "refuse"


# -- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CoreConfig:
    connect_timeout: float = 10.0
    auth_timeout: float = 10.0
    close_timeout: float = 5.0
    ping_interval: float | None = 25.0
    pong_timeout: float = 3.0
    idle_timeout: float | None = None
    ack_required: bool = True
    has_auth_hook: bool = False
    has_connected_hook: bool = False
    has_token_provider: bool = False


@dataclass(frozen=True, slots=True)
class RecoveryConfig:
    policy: ReconnectPolicy
    strategy: RetryStrategy
    stable_after: float = 10.0
    buffer_size: int = 0
    buffer_ttl: float = 30.0
    # connect() keeps waiting through failed attempts while recovery retries.
    retry_first_connect: bool = False


# -- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserConnect:
    waiter: int


@dataclass(frozen=True, slots=True)
class UserDisconnect:
    waiter: int | None = None


@dataclass(frozen=True, slots=True)
class UserClose:
    waiter: int | None = None


@dataclass(frozen=True, slots=True)
class SocketOpened:
    socket: int


@dataclass(frozen=True, slots=True)
class HealthAnswered:
    """A health-check answer. ``ack``: True for a connection ack, False for a pong that is
    never an ack (a protocol Pong), None for the legacy event that is both."""

    socket: int
    connection_id: str | None = None
    ack: bool | None = None


@dataclass(frozen=True, slots=True)
class ServerErrorReceived:
    socket: int
    error: ServerErrorEvent


@dataclass(frozen=True, slots=True)
class SocketClosed:
    """The socket closed (``code`` None: it never opened; ``error`` says why)."""

    socket: int
    code: int | None = None
    reason: str = ""
    error: ConnectionFailure | None = None


@dataclass(frozen=True, slots=True)
class HookFinished:
    socket: int
    hook: Hook


@dataclass(frozen=True, slots=True)
class TimerFired:
    """``last_frame_at``: when the current socket last received anything (None: never)."""

    timer: TimerKind
    last_frame_at: float | None = None


@dataclass(frozen=True, slots=True)
class ReadingPaused:
    socket: int


@dataclass(frozen=True, slots=True)
class ReadingResumed:
    socket: int


@dataclass(frozen=True, slots=True)
class NetworkChanged:
    available: bool


@dataclass(frozen=True, slots=True)
class AppPaused:
    pass


@dataclass(frozen=True, slots=True)
class AppResumed:
    pass


@dataclass(frozen=True, slots=True)
class AttachRecovery:
    config: RecoveryConfig
    network_available: bool = True


@dataclass(frozen=True, slots=True)
class DetachRecovery:
    pass


@dataclass(frozen=True, slots=True)
class BufferSend:
    message: int


@dataclass(frozen=True, slots=True)
class SendWritten:
    """A buffered message's write finished (``ok``) or failed because the socket went."""

    message: int
    ok: bool


@dataclass(frozen=True, slots=True)
class SendCancelled:
    message: int


Input = (
    UserConnect
    | UserDisconnect
    | UserClose
    | SocketOpened
    | HealthAnswered
    | ServerErrorReceived
    | SocketClosed
    | HookFinished
    | TimerFired
    | ReadingPaused
    | ReadingResumed
    | NetworkChanged
    | AppPaused
    | AppResumed
    | AttachRecovery
    | DetachRecovery
    | BufferSend
    | SendWritten
    | SendCancelled
)

# -- effects ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenSocket:
    socket: int


@dataclass(frozen=True, slots=True)
class CloseSocket:
    socket: int
    code: int
    reason: str
    timeout: float


@dataclass(frozen=True, slots=True)
class AbortSocket:
    socket: int


@dataclass(frozen=True, slots=True)
class StartTimer:
    timer: TimerKind
    at: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer: TimerKind


@dataclass(frozen=True, slots=True)
class SendHealthCheck:
    socket: int
    health: HealthCheckInfo


@dataclass(frozen=True, slots=True)
class RunHook:
    socket: int
    hook: Hook


@dataclass(frozen=True, slots=True)
class CancelHook:
    hook: Hook


@dataclass(frozen=True, slots=True)
class ResolveConnect:
    """Resolve these ``connect()`` waiters: connected (``source`` None) or failed."""

    waiters: tuple[int, ...]
    source: DisconnectionSource | None = None
    closed: bool = False


@dataclass(frozen=True, slots=True)
class ResolveDisconnect:
    waiters: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class WriteBuffered:
    socket: int
    message: int


@dataclass(frozen=True, slots=True)
class ResolveSend:
    """A buffered message's one outcome: written (``error`` None) or the error."""

    message: int
    error: SendBufferError | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    """The client is done: nothing will reconnect it. ``source`` is the final source."""

    source: DisconnectionSource | None
    gave_up: bool = False


@dataclass(frozen=True, slots=True)
class Log:
    level: str
    event: str
    fields: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class ReportError:
    """A user-supplied function (policy, strategy) raised: log and count it."""

    error: Exception
    where: str


Effect = (
    OpenSocket
    | CloseSocket
    | AbortSocket
    | StartTimer
    | CancelTimer
    | SendHealthCheck
    | RunHook
    | CancelHook
    | ResolveConnect
    | ResolveDisconnect
    | WriteBuffered
    | ResolveSend
    | Finished
    | Log
    | ReportError
)


def truncate_close_reason(reason: str) -> str:
    """``reason`` cut to the 123 UTF-8 bytes a close frame can carry, on a character edge."""
    return reason.encode("utf-8")[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore")
