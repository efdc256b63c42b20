"""statesock: an asyncio WebSocket client whose lifecycle is an explicit state machine."""

from .events import HealthCheckInfo, HealthCheckPongEvent, ServerErrorEvent
from .exceptions import (
    ConnectionFailure,
    InvalidTransition,
    NotConnectedError,
    StatesockError,
)
from .machine import (
    ConnectionMachine,
    ConnectionSnapshot,
    ConnectionState,
    InternalTransition,
    StateChange,
    Trigger,
)
from .sources import (
    DisconnectionSource,
    NoPongReceived,
    ServerInitiated,
    SystemInitiated,
    Timeout,
    UserInitiated,
    default_reconnect_policy,
)

__all__ = [
    "ConnectionFailure",
    "ConnectionMachine",
    "ConnectionSnapshot",
    "ConnectionState",
    "DisconnectionSource",
    "HealthCheckInfo",
    "HealthCheckPongEvent",
    "InternalTransition",
    "InvalidTransition",
    "NoPongReceived",
    "NotConnectedError",
    "ServerErrorEvent",
    "ServerInitiated",
    "StateChange",
    "StatesockError",
    "SystemInitiated",
    "Timeout",
    "Trigger",
    "UserInitiated",
    "default_reconnect_policy",
]
