"""The connection core's vocabulary: its configuration, inputs and effects.

Small frozen dataclasses in the style of wsproto's events: what the asyncio shell tells
:class:`~statesock.core.ConnectionCore` (*inputs*), what the core asks the shell to do
(*effects*), and what one step returns (:class:`Step`: the effects and the machine's records).
Pure module: it imports the standard library and statesock's other pure modules only (no
asyncio, no websockets, no clock).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .events import HealthCheckInfo, ServerErrorEvent
from .exceptions import ConnectionFailure, SendBufferError
from .log_schema import LogEvent
from .machine import Record
from .retry import RetryStrategy
from .sources import DisconnectionSource, ReconnectPolicy
from .states import ConnectionState

__all__ = [
    "CLOSE_GRACE",
    "MAX_CLOSE_REASON_BYTES",
    "SOCKET_TIMERS",
    "AbortSocket",
    "Answer",
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
    "EndStreams",
    "Finished",
    "HealthAnswered",
    "Hook",
    "HookFinished",
    "Input",
    "Log",
    "NetworkChanged",
    "OpenSocket",
    "ProtocolPingSent",
    "ProtocolPong",
    "ReadingPaused",
    "ReadingResumed",
    "RecoveryConfig",
    "Reopened",
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
    "Step",
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


class TimerKind(enum.StrEnum):  # a str hash: timers are looked up on every health check
    CONNECT_DEADLINE = "connect_deadline"
    AUTH_DEADLINE = "auth_deadline"
    # One timer per health check: due at the next check or, while one is outstanding, at
    # its pong deadline, whichever comes first (the core keeps both times).
    HEALTH_CHECK = "health_check"
    IDLE_DEADLINE = "idle_deadline"
    CLOSE_DEADLINE = "close_deadline"
    RECONNECT = "reconnect"
    SEND_EXPIRY = "send_expiry"


# Timers that belong to a socket: none may be armed once the socket is gone.
SOCKET_TIMERS = frozenset(
    {
        TimerKind.CONNECT_DEADLINE,
        TimerKind.AUTH_DEADLINE,
        TimerKind.HEALTH_CHECK,
        TimerKind.IDLE_DEADLINE,
        TimerKind.CLOSE_DEADLINE,
    }
)


class Hook(enum.Enum):
    ON_CONNECTION_ESTABLISHED = "on_connection_established"
    ON_CONNECTED = "on_connected"


class Answer(enum.Enum):
    """What a decoded health-check answer may mean (see :class:`HealthAnswered`)."""

    ACK = "ack"
    """A connection ack (``ConnectionAckEvent``): completes authenticating, nothing more."""
    PONG = "pong"
    """A pong that is never an ack."""
    ACK_OR_PONG = "ack or pong"
    """The legacy ``HealthCheckPongEvent``: the ack in authenticating (when one is required),
    a pong once connected."""


class SendRoute(enum.Enum):
    """Where ``send()`` must put a message now (see :meth:`ConnectionCore.send_route`)."""

    DIRECT = "direct"
    BUFFER = "buffer"
    REFUSE = "refuse"


# -- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """The core's part of the client's settings. No defaults here: the client's defaults are
    written once, in :class:`~statesock.settings.ClientSettings`, which builds this."""

    connect_timeout: float
    auth_timeout: float
    close_timeout: float
    ping_interval: float | None
    pong_timeout: float
    idle_timeout: float | None
    ack_required: bool
    has_auth_hook: bool
    has_connected_hook: bool
    has_token_provider: bool


@dataclass(frozen=True, slots=True)
class RecoveryConfig:
    """What a recovery handler attaches (its defaults are written once, in
    :class:`~statesock.recovery.ConnectionRecoveryHandler`)."""

    policy: ReconnectPolicy
    strategy: RetryStrategy
    stable_after: float
    buffer_size: int
    buffer_ttl: float
    # connect() keeps waiting through failed attempts while recovery retries.
    retry_first_connect: bool


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
    """The decoder mapped a message to a health-check answer (``answer`` says which kind)."""

    socket: int
    connection_id: str | None
    answer: Answer


@dataclass(frozen=True, slots=True)
class ProtocolPingSent:
    """The shell sent the health check as a protocol Ping (the builder returned None)."""

    socket: int


@dataclass(frozen=True, slots=True)
class ProtocolPong:
    """A protocol Pong frame arrived; the core decides whether it answers a health check."""

    socket: int


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
    | ProtocolPingSent
    | ProtocolPong
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
class EndStreams:
    """The user disconnected or closed: end the event streams that exist now, so that a full
    subscriber cannot keep the client from reading the close. Subscriptions made from now on
    stay live unless :class:`Finished` follows (a connect may come first)."""

    source: DisconnectionSource


@dataclass(frozen=True, slots=True)
class Reopened:
    """The client is no longer done (the user connected after :class:`Finished`): streams
    subscribed from now on are live."""


@dataclass(frozen=True, slots=True)
class Log:
    level: str
    event: LogEvent
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
    | EndStreams
    | Finished
    | Reopened
    | Log
    | ReportError
)


@dataclass(frozen=True, slots=True)
class Step:
    """What one :meth:`~statesock.core.ConnectionCore.step` did: the effects to carry out, in
    order, and the machine's records to deliver (the core delivers nothing itself)."""

    effects: list[Effect]
    records: list[Record]


def truncate_close_reason(reason: str) -> str:
    """``reason`` cut to the 123 UTF-8 bytes a close frame can carry, on a character edge."""
    return reason.encode("utf-8")[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore")
