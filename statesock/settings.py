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

import importlib.util
import inspect
import json
import math
import re
import ssl as ssl_module
import types
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import TYPE_CHECKING, Any, TypedDict, Unpack
from urllib.parse import urlsplit

from .core_io import CoreConfig
from .redaction import REDACTED, is_secret_name, redact_text

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from opentelemetry.metrics import MeterProvider

    from .engine import EngineConfig

__all__ = ["MAX_QUEUE_SIZE", "ClientOptions", "ClientSettings"]

# The largest ``event_queue_size`` (and the recovery handler's ``send_buffer_size``). A bound
# exists so that back-pressure or the drop policy acts before the process runs out of memory:
# a million queued messages is already hundreds of MB to GBs, and, read at 500 events/s,
# half an hour of backlog in front of a close or a dead peer (issue 18, item 2). Past that
# a bigger queue no longer helps anyone; a drop policy or a faster consumer does.
MAX_QUEUE_SIZE = 10**6

# Proxy URL schemes websockets can use (websockets.proxy.parse_proxy); ws:// is not one.
_PROXY_SCHEMES = frozenset({"http", "https", "socks4", "socks4a", "socks5", "socks5h"})
# An HTTP field name (RFC 9110 token).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Characters a label may not hold: controls (newlines, ESC of ANSI sequences, NUL), format
# characters (bidi overrides, zero-width), line / paragraph separators and lone surrogates.
# Each could forge or hide a log line that names the client.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class ClientOptions(TypedDict, total=False):
    """The keyword-only settings of ``WebSocketClient``: one key per :class:`ClientSettings`
    field, of the same name (the defaults are there)."""

    ack_required: bool
    subprotocols: Sequence[str]
    headers: Any
    query_params: Any
    ssl: ssl_module.SSLContext | None
    max_size: int | None
    compression: bool | None
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
    stall_timeout: float | None
    meter_provider: MeterProvider | None
    transport: str


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


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {value!r}")
    return value


def _shown(name: str, value: object) -> str:
    """``value`` as an error message may show it: redacted, and masked under a secret name."""
    return REDACTED if is_secret_name(name) else redact_text(repr(value))


def _pairs(name: str, value: object) -> None:
    """Static headers / query parameters: a mapping or a sequence of ``(name, value)`` pairs
    (a callable is evaluated before each attempt, so only there can it be checked)."""
    if value is None or callable(value):
        return
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise TypeError(
            f"{name} must be a mapping, (name, value) pairs or a callable, "
            f"not {redact_text(repr(value))}"
        )
    else:
        items = list(value)
        for index, item in enumerate(items):
            if isinstance(item, str | bytes) or not isinstance(item, Sequence) or len(item) != 2:
                raise TypeError(
                    f"{name} must be a mapping, (name, value) pairs or a callable; "
                    f"item {index} is not a pair: {redact_text(repr(item))}"
                )
    for key, item_value in items:
        if not isinstance(key, str):
            raise TypeError(f"{name} names must be str, not {key!r}")
        if name == "headers":
            if not _HEADER_NAME.fullmatch(key):
                raise ValueError(f"headers name {key!r} is not a valid HTTP field name")
            if not isinstance(item_value, str):
                raise TypeError(
                    f"headers value of {key!r} must be a str, not {_shown(key, item_value)}"
                )
            if any(char in item_value for char in "\r\n\0"):
                raise ValueError(
                    f"headers value of {key!r} must not contain CR, LF or NUL (it would inject "
                    f"header lines), not {_shown(key, item_value)}"
                )
        elif isinstance(item_value, bool) or not isinstance(item_value, str | int | float):
            raise TypeError(
                f"{name} value of {key!r} must be a str or a number, not {_shown(key, item_value)}"
            )


def _proxy(value: object) -> None:
    if value is None or isinstance(value, bool):
        return
    if not isinstance(value, str):
        raise TypeError(f"proxy must be True, None, False or a URL, not {value!r}")
    problem = _proxy_problem(value)
    if problem:
        raise ValueError(
            f"proxy must be True, None, False or an http(s):// or socks URL with a host "
            f"({problem}), not {redact_text(repr(value))}"
        )


def _proxy_problem(url: str) -> str | None:
    """What websockets would refuse in proxy ``url`` at connect (parse_proxy), or None."""
    if not url or any(char.isspace() or not char.isprintable() for char in url):
        return "empty, or with whitespace or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in _PROXY_SCHEMES:
        schemes = ", ".join(sorted(_PROXY_SCHEMES))
        return f"scheme {parts.scheme or 'missing'!r} is not one of {schemes}"
    if not parts.hostname:
        return "no host"
    if port == 0:
        return "port 0"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "a path, query or fragment means nothing to a proxy"
    if parts.username is not None and parts.password is None:
        return "a user name without a password"
    return None


# The transports ``transport=`` names (statesock.engine.TRANSPORTS builds their engines), each
# with the package it needs and how to install it. Checked here without importing anything.
_TRANSPORTS = {
    "websockets": ("websockets", "pip install statesock"),
    "picows": ("picows", "pip install 'statesock[fast]'"),
}


def _transport(values: dict[str, Any]) -> None:
    """``transport``: a known name, installed, and able to do what the other settings ask
    (picows has no permessage-deflate, and python-socks no SOCKS4a)."""
    name = values["transport"]
    if not isinstance(name, str):
        raise TypeError(f"transport must be a str, not {name!r}")
    if name not in _TRANSPORTS:
        known = ", ".join(repr(t) for t in _TRANSPORTS)
        raise ValueError(f"transport must be one of {known}, not {name!r}")
    package, install = _TRANSPORTS[name]
    if importlib.util.find_spec(package) is None:
        raise ImportError(
            f"transport={name!r} needs the {package} package, which is not installed: {install}",
            name=package,
        )
    if name != "picows":
        return
    if values["compression"] is True:
        raise ValueError(
            "compression=True cannot be honoured with transport='picows': picows has no "
            "permessage-deflate; leave compression unset (None: the transport's default, "
            "off for picows) or use transport='websockets'"
        )
    proxy = values["proxy"]
    if isinstance(proxy, str) and proxy.lower().startswith("socks4a:"):
        raise ValueError(
            "proxy: transport='picows' cannot use a socks4a:// proxy (its SOCKS client "
            "resolves names locally for SOCKS4); use socks5:// or transport='websockets', "
            f"not {redact_text(repr(proxy))}"
        )


def _meter_provider(value: object) -> None:
    # Checked by shape: OpenTelemetry is optional, so it is not imported to check a type.
    if value is not None and not callable(getattr(value, "get_meter", None)):
        raise TypeError(
            "meter_provider must be an OpenTelemetry MeterProvider or None, "
            f"not {redact_text(repr(value))}"
        )


# A label is in every record the client logs and every metric it reports.
MAX_LABEL_LENGTH = 256


def _label(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"label must be a string, not {value!r}")
    if not value:
        raise ValueError("label must not be empty (None numbers the client: ws-1, ws-2, ...)")
    if len(value) > MAX_LABEL_LENGTH:
        raise ValueError(
            f"label must be at most {MAX_LABEL_LENGTH} characters (it is in every log record "
            f"and metric), not {len(value)}: {value[:40]!r}..."
        )
    if any(unicodedata.category(char) in _UNSAFE_CATEGORIES for char in value):
        raise ValueError(
            "label must not contain control, format or line-separator characters "
            f"(they would forge or hide log lines), not {value!r}"
        )


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Every keyword setting of ``WebSocketClient``, checked; each field's default is *the*
    default of the option of the same name (see :class:`ClientOptions`).

    Accepted values (anything else is a TypeError or ValueError naming the option):

    * ``compression``: True, False, or None (the default): the transport's own default,
      on for websockets (permessage-deflate), off for picows, which has none and refuses True;
    * ``transport``: ``"websockets"`` (the default) or ``"picows"`` (installed by the
      ``statesock[fast]`` extra; an ImportError saying so when it is missing; no
      ``compression=True``, no ``socks4a://`` proxy);
    * ``ack_required``: True or False (a string such as ``"false"`` is
      refused rather than read as true);
    * ``headers``: None, a mapping or a sequence of ``(name, value)`` pairs with str names
      that are HTTP field names and str values without CR, LF or NUL, or a callable
      returning one (evaluated before each attempt); ``query_params`` likewise, with str or
      number values;
    * ``max_size``: an int >= 1 or None;
    * ``event_queue_size``: an int in 1..:data:`MAX_QUEUE_SIZE` (10**6; why: see there);
    * ``connect_timeout``, ``auth_timeout``, ``close_timeout``, ``pong_timeout``: finite
      seconds > 0; ``ping_interval``, ``idle_timeout``, ``protocol_keepalive`` and
      ``stall_timeout``: the same, or None (off); ``pong_timeout < ping_interval``;
    * ``stall_timeout``: how long a lossless subscriber may take nothing while the client
      has stopped reading for it before it is cut off (issue 18, item 2);
    * ``meter_provider``: None (the global OpenTelemetry ``MeterProvider``) or a
      ``MeterProvider`` (anything with ``get_meter``) to take the client's meter from; used
      only with the ``statesock[otel]`` extra installed (see :mod:`statesock.metrics`);
    * ``proxy``: True (from the environment), None or False (off), or an ``http``,
      ``https``, ``socks4``, ``socks4a``, ``socks5`` or ``socks5h`` URL with a host and no
      path, query or fragment (what websockets accepts; ``ws://`` is not a proxy scheme);
    * ``label``: None or a non-empty str of at most 256 characters without control, format
      (bidi, zero-width) or line-separator characters, which would forge or hide log lines;
    * ``message_encoder``: a callable returning str or bytes (checked by :meth:`encode`
      on each call, the only time its result can be seen).
    """

    ack_required: bool = True
    subprotocols: tuple[str, ...] = ()
    headers: Any = None
    query_params: Any = None
    ssl: ssl_module.SSLContext | None = None
    max_size: int | None = 2**20
    compression: bool | None = None
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
    stall_timeout: float | None = 30.0
    meter_provider: MeterProvider | None = None
    transport: str = "websockets"

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
        Settings checked from the same inputs before are the same object (see
        :func:`_memo_key`); whether the transport is installed is asked every time.
        """
        key = _memo_key(
            cls, (event_decoder, ping_request_builder, on_connection_established, on_connected),
            options,
        )  # fmt: skip
        if key is not None:
            if _checked_defaults != _DEFAULTS:  # a default was changed (tests do): forget all
                _checked.clear()
                _checked_defaults.clear()
                _checked_defaults.update(_DEFAULTS)
            known = _checked.get(key)
            if known is not None:
                _transport(
                    {"transport": known.transport, "compression": known.compression,
                     "proxy": known.proxy}
                )  # fmt: skip
                return known
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
        if not 1 <= queue_size <= MAX_QUEUE_SIZE:
            raise ValueError(f"event_queue_size must be in 1..{MAX_QUEUE_SIZE}, not {queue_size!r}")
        for name in ("connect_timeout", "auth_timeout", "close_timeout", "pong_timeout"):
            values[name] = _seconds(name, values[name])
        for name in ("ping_interval", "idle_timeout", "protocol_keepalive", "stall_timeout"):
            values[name] = _optional_seconds(name, values[name])
        interval, pong = values["ping_interval"], values["pong_timeout"]
        if interval is not None and pong >= interval:
            raise ValueError(
                f"pong_timeout ({pong:g} s) must be shorter than ping_interval ({interval:g} s)"
            )
        _proxy(values["proxy"])
        _label(values["label"])
        _meter_provider(values["meter_provider"])
        _flag("ack_required", values["ack_required"])
        if values["compression"] is not None:
            _flag("compression", values["compression"])
        _transport(values)
        settings = cls(**values)
        if key is not None:
            if len(_checked) >= _CHECKED_MAX:
                _checked.clear()
            _checked[key] = settings
        return settings

    def encode(self, message: object) -> str | bytes:
        """``message`` through ``message_encoder``, whose result must be str or bytes.

        Anything else is a TypeError naming ``message_encoder`` and the type it returned (the
        value shown redacted), raised to the caller of ``send()`` at once rather than
        surfacing later as an auth timeout. An exception the encoder raises passes through.
        """
        result = self.message_encoder(message)
        if not isinstance(result, str | bytes):
            raise TypeError(
                f"message_encoder must return str or bytes, not {type(result).__name__}: "
                f"{redact_text(repr(result))}"
            )
        return result

    def engine_config(
        self, url: str, before_attempt: Callable[[], Awaitable[None]] | None, logger: Any
    ) -> EngineConfig:
        """What the engine needs to open a socket, from these settings."""
        global _engine_config
        if _engine_config is None:  # imported here, not at the top: the engine loads websockets
            from .engine import EngineConfig

            _engine_config = EngineConfig
        return _engine_config(
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
        """The connection core's configuration, from these settings and the hooks given
        (frozen: clients that share their settings and hooks' presence share it too)."""
        global _last_core_config
        hooks = (auth_hook is not None, connected_hook is not None)
        last = _last_core_config
        if last is not None and last[0] is self and last[1] == hooks:
            return last[2]
        config = CoreConfig(
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
        _last_core_config = (self, hooks, config)
        return config


def _field_defaults() -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for field in fields(ClientSettings):
        if field.default is MISSING:  # a default_factory would hand every client one object
            raise TypeError(f"ClientSettings.{field.name} needs a plain default")
        defaults[field.name] = field.default
    return defaults


# Every option's default, read once from the fields above (the only place one is written).
_DEFAULTS = _field_defaults()

# Settings already checked, by the inputs they were checked from: clients made alike (a
# fleet, an app's replacement clients) are checked once, and share one frozen object. The
# defaults they were merged with are kept beside them (a change forgets them all).
_CHECKED_MAX = 64
_checked: dict[tuple[Any, ...], ClientSettings] = {}
_checked_defaults: dict[str, Any] = {}
_PLAIN = frozenset({type(None), bool, int, float, str})
# statesock.engine.EngineConfig, once ClientSettings.engine_config has imported it.
_engine_config: type[EngineConfig] | None = None
# The last core configuration built, with the settings and hooks' presence it came from.
_last_core_config: tuple[ClientSettings, tuple[bool, bool], CoreConfig] | None = None


def _memo_key(
    cls: type, positional: tuple[object, ...], options: Mapping[str, object]
) -> tuple[Any, ...] | None:
    """The inputs of a check as a key, or None when they cannot make one.

    Only values whose equality says the check would go the same way: None, bool, int, float
    and str (with their exact type: ``1`` is not ``True`` here), and functions, which compare
    by identity (only those without a closure: the key keeps them alive). Anything else (a
    mapping, a tuple, a bound method, a callable object) is checked every time.
    """
    key: list[Any] = [cls]
    for value in positional:
        if value is not None and not _plain_function(value):
            return None
        key.append(value)
    for name, value in options.items():
        kind = type(value)
        if kind not in _PLAIN and not _plain_function(value):
            return None
        key += (name, kind, value)
    return tuple(key)


def _plain_function(value: object) -> bool:
    kind = type(value)
    if kind is types.FunctionType:
        return value.__closure__ is None  # type: ignore[attr-defined]
    return kind is types.BuiltinFunctionType
