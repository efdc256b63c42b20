"""statesock: an asyncio WebSocket client whose lifecycle is an explicit state machine.

The top-level package exports the public API: the client, recovery and network monitors, the
machine's types, disconnection sources, events and the whole exception tree. The I/O classes
are imported lazily, on first access, so that ``import statesock``, ``statesock.machine``,
``statesock.tools.diagram`` and the CLI's inspection commands never load asyncio or websockets.
The tools (:mod:`statesock.tools`: the ``statesock`` command and its parts) are not imported
here: they are not the library.
"""

from typing import TYPE_CHECKING, Any

from . import exceptions as _exceptions
from .events import ConnectionAckEvent, HealthCheckInfo, HealthCheckPongEvent, ServerErrorEvent
from .exceptions import *  # noqa: F403  (the whole tree, as exceptions.__all__ lists it)
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

__version__ = "0.1.0"
"""The package version; pyproject.toml reads it from here (the single source)."""

__all__ = [
    "ClientStats",
    "ConnectionAckEvent",
    "ConnectionMachine",
    "ConnectionRecoveryHandler",
    "ConnectionSnapshot",
    "ConnectionState",
    "DisconnectionSource",
    "HealthCheckInfo",
    "HealthCheckPongEvent",
    "InternalTransition",
    "ManualNetworkMonitor",
    "NetworkMonitor",
    "NoPongReceived",
    "Overflow",
    "RouteNetworkMonitor",
    "ServerErrorEvent",
    "ServerInitiated",
    "StateChange",
    "Subscription",
    "SystemInitiated",
    "Timeout",
    "Trigger",
    "UserInitiated",
    "WebSocketClient",
    "__version__",
    "default_reconnect_policy",
]
__all__ += _exceptions.__all__

_LAZY = {
    "ClientStats": "statesock.client",
    "Subscription": "statesock.subscriptions",
    "Overflow": "statesock.subscriptions",
    "WebSocketClient": "statesock.client",
    "ConnectionRecoveryHandler": "statesock.recovery",
    "NetworkMonitor": "statesock.network",
    "ManualNetworkMonitor": "statesock.network",
    "RouteNetworkMonitor": "statesock.network",
}

if TYPE_CHECKING:
    from .client import ClientStats, WebSocketClient
    from .network import ManualNetworkMonitor, NetworkMonitor, RouteNetworkMonitor
    from .recovery import ConnectionRecoveryHandler
    from .subscriptions import Overflow, Subscription


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'statesock' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
