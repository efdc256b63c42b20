"""The client's settings, checked once at construction.

Every setting a :class:`~statesock.client.WebSocketClient` takes is validated here, so a bad
value fails at once with a ``TypeError`` or ``ValueError`` that names the parameter, rather
than later as an endless auth-timeout loop, a flood of health checks or a handshake the
server refuses. Pure module: standard library only.
"""

from __future__ import annotations

import inspect
import json
import math
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from .core import CoreConfig

__all__ = ["ClientOptions", "ClientSettings", "EngineConfig", "HeadersSource", "QuerySource"]

Pairs = Mapping[str, str] | Iterable[tuple[str, str]]
# Static values, or a callable (sync or async) evaluated before every attempt so that a
# token in a header or the query string is always fresh.
HeadersSource = Pairs | Callable[[], Pairs | Awaitable[Pairs]] | None
QuerySource = HeadersSource


class ClientOptions(TypedDict, total=False):
    """The keyword-only settings of ``WebSocketClient`` (defaults in :class:`ClientSettings`)."""

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


def _seconds(name: str, value: object, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive, finite number of seconds, not {value!r}")
    return float(value)


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
    encoder: Callable[[Any], str | bytes] = json.dumps
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
        *,
        ack_required: bool = True,
        subprotocols: Sequence[str] = (),
        headers: Any = None,
        query_params: Any = None,
        ssl: ssl_module.SSLContext | None = None,
        max_size: int | None = 2**20,
        compression: bool = True,
        connect_timeout: float = 10.0,
        auth_timeout: float = 10.0,
        close_timeout: float = 5.0,
        ping_interval: float | None = 25.0,
        pong_timeout: float = 3.0,
        idle_timeout: float | None = None,
        protocol_keepalive: float | None = None,
        event_queue_size: int = 1024,
        message_encoder: Callable[[Any], str | bytes] = json.dumps,
        token_provider: Callable[[], Any] | None = None,
        proxy: str | bool | None = True,
        label: str | None = None,
    ) -> ClientSettings:
        """Validate every setting; raise TypeError / ValueError naming the first bad one."""
        _callable("event_decoder", event_decoder, optional=False)
        if inspect.iscoroutinefunction(event_decoder):
            # Decoding runs in the receive loop for every message; it must not await.
            raise TypeError("event_decoder must be a plain function, not a coroutine function")
        _callable("ping_request_builder", ping_request_builder)
        _callable("on_connection_established", on_connection_established)
        _callable("on_connected", on_connected)
        _callable("message_encoder", message_encoder, optional=False)
        _callable("token_provider", token_provider)
        if isinstance(subprotocols, str | bytes):
            raise TypeError(
                f"subprotocols must be a sequence of names, not the string {subprotocols!r}"
            )
        names = tuple(subprotocols)
        if not all(isinstance(n, str) and n for n in names):
            raise TypeError(f"subprotocols must be non-empty strings, not {names!r}")
        _pairs("headers", headers)
        _pairs("query_params", query_params)
        if ssl is not None and not isinstance(ssl, ssl_module.SSLContext):
            raise TypeError(f"ssl must be an ssl.SSLContext or None, not {ssl!r}")
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int)):
            raise TypeError(f"max_size must be an int or None, not {max_size!r}")
        if max_size is not None and max_size <= 0:
            raise ValueError(f"max_size must be positive or None, not {max_size!r}")
        if isinstance(event_queue_size, bool) or not isinstance(event_queue_size, int):
            raise TypeError(f"event_queue_size must be an int, not {event_queue_size!r}")
        if event_queue_size < 1:
            raise ValueError(f"event_queue_size must be at least 1, not {event_queue_size!r}")
        interval = _seconds("ping_interval", ping_interval, optional=True)
        pong = _seconds("pong_timeout", pong_timeout)
        assert pong is not None
        if interval is not None and pong >= interval:
            raise ValueError(
                f"pong_timeout ({pong:g} s) must be shorter than ping_interval ({interval:g} s)"
            )
        if proxy is not None and not isinstance(proxy, str | bool):
            raise TypeError(f"proxy must be True, None, False or a URL, not {proxy!r}")
        if label is not None and not isinstance(label, str):
            raise TypeError(f"label must be a string, not {label!r}")
        return cls(
            ack_required=bool(ack_required),
            subprotocols=names,
            headers=headers,
            query_params=query_params,
            ssl=ssl,
            max_size=max_size,
            compression=bool(compression),
            connect_timeout=_seconds("connect_timeout", connect_timeout) or 0.0,
            auth_timeout=_seconds("auth_timeout", auth_timeout) or 0.0,
            close_timeout=_seconds("close_timeout", close_timeout) or 0.0,
            ping_interval=interval,
            pong_timeout=pong,
            idle_timeout=_seconds("idle_timeout", idle_timeout, optional=True),
            protocol_keepalive=_seconds("protocol_keepalive", protocol_keepalive, optional=True),
            event_queue_size=event_queue_size,
            encoder=message_encoder,
            token_provider=token_provider,
            proxy=proxy,
            label=label,
        )

    def engine_config(
        self, url: str, before_attempt: Callable[[], Awaitable[None]] | None, logger: Any
    ) -> EngineConfig:
        return EngineConfig(
            url, self.subprotocols, self.headers, self.query_params, self.ssl, self.max_size,
            self.compression, self.close_timeout, self.protocol_keepalive, before_attempt,
            self.proxy, logger,
        )  # fmt: skip

    def core_config(self, auth_hook: object, connected_hook: object) -> CoreConfig:
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


@dataclass(frozen=True)
class EngineConfig:
    """What the engine needs to open a socket (built by :meth:`ClientSettings.engine_config`)."""

    url: str
    subprotocols: Sequence[str] = ()
    headers: HeadersSource = None
    query_params: QuerySource = None
    ssl: ssl_module.SSLContext | None = None
    max_size: int | None = 2**20
    compression: bool = True
    close_timeout: float = 5.0
    protocol_keepalive: float | None = None
    # Awaited before every attempt (the client fetches a fresh token here).
    before_attempt: Callable[[], Awaitable[None]] | None = None
    # websockets' meaning: True = from the environment (HTTPS_PROXY...), a URL, or None = off.
    proxy: str | bool | None = True
    logger: Any = None
