"""The client's settings: checked once at construction, and the one place their defaults live.

Every setting a :class:`~statesock.client.WebSocketClient` takes is validated here, so a bad
value fails at once with a ``TypeError`` or ``ValueError`` that names the parameter, rather
than later as an endless auth-timeout loop, a flood of health checks or a handshake the
server refuses.

The fields of :class:`ClientSettings` are the only place a client default is written:
:meth:`ClientSettings.check` fills a missing option from them, and
:meth:`~ClientSettings.core_config` / :meth:`~ClientSettings.engine_config` copy them into
the core's :class:`~statesock.core_io.CoreConfig` and the engine's
:class:`~statesock.engine.EngineConfig`, which have no defaults of their own.

A shell module (it builds the engine's configuration), yet light: it imports the standard
library and the core's vocabulary (:mod:`statesock.core_io`, pure); :mod:`statesock.engine`,
which loads websockets, only for typing and inside :meth:`~ClientSettings.engine_config`.
"""

from __future__ import annotations

import inspect
import json
import math
import ssl as ssl_module
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from .core_io import CoreConfig

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from .engine import EngineConfig

__all__ = ["ClientOptions", "ClientSettings"]


class ClientOptions(TypedDict, total=False):
    """The keyword-only settings of ``WebSocketClient``: one key per :class:`ClientSettings`
    field, of the same name (the defaults are there)."""

    ack_required: bool
    subprotocols: Sequence[str]
    headers: Any
    query_params: Any
    ssl: ssl_module.SSLContext | None
    max_size: int | None
    compression: bool
    connect_timeout: float
    auth_timeout: float
    close_timeout: float
    ping_interval: float | None
    pong_timeout: float
    idle_timeout: float | None
    protocol_keepalive: float | None
    event_queue_size: int
    message_encoder: Callable[[Any], str | bytes]
    token_provider: Callable[[], Any] | None
    proxy: str | bool | None
    label: str | None


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive, finite number of seconds, not {value!r}")
    return float(value)


def _optional_seconds(name: str, value: object) -> float | None:
    return None if value is None else _seconds(name, value)


def _callable(name: str, value: object, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not callable(value):
        raise TypeError(f"{name} must be callable, not {value!r}")


def _pairs(name: str, value: object) -> None:
    if value is None or callable(value) or isinstance(value, Mapping):
        return
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | tuple):
        raise TypeError(f"{name} must be a mapping, pairs, or a callable, not {value!r}")


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Every keyword setting of ``WebSocketClient``, checked; each field's default is *the*
    default of the option of the same name (see :class:`ClientOptions`)."""

    ack_required: bool = True
    subprotocols: tuple[str, ...] = ()
    headers: Any = None
    query_params: Any = None
    ssl: ssl_module.SSLContext | None = None
    max_size: int | None = 2**20
    compression: bool = True
    connect_timeout: float = 10.0
    auth_timeout: float = 10.0
    close_timeout: float = 5.0
    ping_interval: float | None = 25.0
    pong_timeout: float = 3.0
    idle_timeout: float | None = None
    protocol_keepalive: float | None = None
    event_queue_size: int = 1024
    message_encoder: Callable[[Any], str | bytes] = json.dumps
    token_provider: Callable[[], Any] | None = None
    proxy: str | bool | None = True
    label: str | None = None

    @classmethod
    def check(
        cls,
        url: object,
        event_decoder: object,
        ping_request_builder: object,
        on_connection_established: object,
        on_connected: object,
        /,
        **options: Unpack[ClientOptions],
    ) -> ClientSettings:
        """Validate every setting; raise TypeError / ValueError naming the first bad one.

        An option left out takes its field's default; an unknown one is a TypeError.
        """
        for name in options:
            if name not in _DEFAULTS:
                raise TypeError(f"WebSocketClient() got an unexpected keyword argument {name!r}")
        values: dict[str, Any] = {**_DEFAULTS, **options}
        _callable("event_decoder", event_decoder, optional=False)
        if inspect.iscoroutinefunction(event_decoder):
            # Decoding runs in the receive loop for every message; it must not await.
            raise TypeError("event_decoder must be a plain function, not a coroutine function")
        _callable("ping_request_builder", ping_request_builder)
        _callable("on_connection_established", on_connection_established)
        _callable("on_connected", on_connected)
        _callable("message_encoder", values["message_encoder"], optional=False)
        _callable("token_provider", values["token_provider"])
        subprotocols = values["subprotocols"]
        if isinstance(subprotocols, str | bytes):
            raise TypeError(
                f"subprotocols must be a sequence of names, not the string {subprotocols!r}"
            )
        names = tuple(subprotocols)
        if not all(isinstance(n, str) and n for n in names):
            raise TypeError(f"subprotocols must be non-empty strings, not {names!r}")
        values["subprotocols"] = names
        _pairs("headers", values["headers"])
        _pairs("query_params", values["query_params"])
        ssl = values["ssl"]
        if ssl is not None and not isinstance(ssl, ssl_module.SSLContext):
            raise TypeError(f"ssl must be an ssl.SSLContext or None, not {ssl!r}")
        max_size = values["max_size"]
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int)):
            raise TypeError(f"max_size must be an int or None, not {max_size!r}")
        if max_size is not None and max_size <= 0:
            raise ValueError(f"max_size must be positive or None, not {max_size!r}")
        queue_size = values["event_queue_size"]
        if isinstance(queue_size, bool) or not isinstance(queue_size, int):
            raise TypeError(f"event_queue_size must be an int, not {queue_size!r}")
        if queue_size < 1:
            raise ValueError(f"event_queue_size must be at least 1, not {queue_size!r}")
        for name in ("connect_timeout", "auth_timeout", "close_timeout", "pong_timeout"):
            values[name] = _seconds(name, values[name])
        for name in ("ping_interval", "idle_timeout", "protocol_keepalive"):
            values[name] = _optional_seconds(name, values[name])
        interval, pong = values["ping_interval"], values["pong_timeout"]
        if interval is not None and pong >= interval:
            raise ValueError(
                f"pong_timeout ({pong:g} s) must be shorter than ping_interval ({interval:g} s)"
            )
        proxy = values["proxy"]
        if proxy is not None and not isinstance(proxy, str | bool):
            raise TypeError(f"proxy must be True, None, False or a URL, not {proxy!r}")
        label = values["label"]
        if label is not None and not isinstance(label, str):
            raise TypeError(f"label must be a string, not {label!r}")
        values["ack_required"] = bool(values["ack_required"])
        values["compression"] = bool(values["compression"])
        return cls(**values)

    def engine_config(
        self, url: str, before_attempt: Callable[[], Awaitable[None]] | None, logger: Any
    ) -> EngineConfig:
        """What the engine needs to open a socket, from these settings."""
        from .engine import EngineConfig  # here, not at the top: the engine loads websockets

        return EngineConfig(
            url=url,
            subprotocols=self.subprotocols,
            headers=self.headers,
            query_params=self.query_params,
            ssl=self.ssl,
            max_size=self.max_size,
            compression=self.compression,
            close_timeout=self.close_timeout,
            protocol_keepalive=self.protocol_keepalive,
            before_attempt=before_attempt,
            proxy=self.proxy,
            logger=logger,
        )

    def core_config(self, auth_hook: object, connected_hook: object) -> CoreConfig:
        """The connection core's configuration, from these settings and the hooks given."""
        return CoreConfig(
            connect_timeout=self.connect_timeout,
            auth_timeout=self.auth_timeout,
            close_timeout=self.close_timeout,
            ping_interval=self.ping_interval,
            pong_timeout=self.pong_timeout,
            idle_timeout=self.idle_timeout,
            ack_required=self.ack_required,
            has_auth_hook=auth_hook is not None,
            has_connected_hook=connected_hook is not None,
            has_token_provider=self.token_provider is not None,
        )


def _field_defaults() -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for field in fields(ClientSettings):
        if field.default is MISSING:  # a default_factory would hand every client one object
            raise TypeError(f"ClientSettings.{field.name} needs a plain default")
        defaults[field.name] = field.default
    return defaults


# Every option's default, read once from the fields above (the only place one is written).
_DEFAULTS = _field_defaults()
