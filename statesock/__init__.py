"""statesock: an asyncio WebSocket client whose lifecycle is an explicit state machine.

The I/O classes are imported lazily so that ``statesock.machine``, ``statesock.diagram``
and the CLI's inspection commands never load asyncio or websockets.
"""

from typing import TYPE_CHECKING, Any

from .events import HealthCheckInfo, HealthCheckPongEvent, ServerErrorEvent
from .exceptions import (
    ConnectFailed,
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
    "ClientStats",
    "ConnectFailed",
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
    "Subscription",
    "SystemInitiated",
    "Timeout",
    "Trigger",
    "UserInitiated",
    "WebSocketClient",
    "default_reconnect_policy",
]

_LAZY = {
    "ClientStats": "statesock.client",
    "Subscription": "statesock.client",
    "WebSocketClient": "statesock.client",
}

if TYPE_CHECKING:
    from .client import ClientStats, Subscription, WebSocketClient


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'statesock' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
