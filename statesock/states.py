"""The names of the connection's states and triggers: the machine's vocabulary.

Kept apart from :mod:`statesock.machine` (which holds the rules) so that the modules the
machine itself imports, such as :mod:`statesock.sources` (``Timeout(state)``), can name a state
without an import cycle. Pure module: standard library only.
"""

from __future__ import annotations

import enum

__all__ = ["ConnectionState", "Trigger"]


class ConnectionState(enum.Enum):
    INITIALIZED = "initialized"
    CONNECTING = "connecting"
    AUTHENTICATING = "authenticating"
    CONNECTED = "connected"
    DISCONNECTING = "disconnecting"
    DISCONNECTED = "disconnected"

    def __str__(self) -> str:
        return self.value


class Trigger(enum.StrEnum):
    CONNECT = "connect"
    OPENED = "opened"
    AUTHENTICATED = "authenticated"
    PONG = "pong"
    DISCONNECT = "disconnect"
    CLOSED = "closed"
