"""Every bad setting is refused at construction, with an error that names it."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import json
import math
import subprocess
import sys
from typing import Any

import pytest

from statesock.client import WebSocketClient
from statesock.core_io import CoreConfig
from statesock.engine import EngineConfig
from statesock.recovery import ConnectionRecoveryHandler
from statesock.settings import MAX_QUEUE_SIZE, ClientOptions, ClientSettings
from statesock.testing import decode_message

URL = "ws://127.0.0.1:1/"
NAN = math.nan
INF = math.inf


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"ping_interval": NAN}, ValueError, "ping_interval"),
        ({"ping_interval": 0}, ValueError, "ping_interval"),
        ({"ping_interval": -1}, ValueError, "ping_interval"),
        ({"ping_interval": INF}, ValueError, "ping_interval"),
        ({"ping_interval": "25"}, TypeError, "ping_interval"),
        ({"pong_timeout": NAN}, ValueError, "pong_timeout"),
        ({"pong_timeout": 25, "ping_interval": 25}, ValueError, "pong_timeout"),
        ({"pong_timeout": 30, "ping_interval": 25}, ValueError, "pong_timeout"),
        ({"connect_timeout": NAN}, ValueError, "connect_timeout"),
        ({"connect_timeout": INF}, ValueError, "connect_timeout"),
        ({"auth_timeout": 0}, ValueError, "auth_timeout"),
        ({"close_timeout": -2}, ValueError, "close_timeout"),
        ({"idle_timeout": NAN}, ValueError, "idle_timeout"),
        ({"protocol_keepalive": 0}, ValueError, "protocol_keepalive"),
        ({"subprotocols": "graphql-transport-ws"}, TypeError, "subprotocols"),
        ({"subprotocols": [""]}, TypeError, "subprotocols"),
        ({"subprotocols": [7]}, TypeError, "subprotocols"),
        ({"headers": "Authorization: x"}, TypeError, "headers"),
        ({"headers": 42}, TypeError, "headers"),
        ({"query_params": "token=x"}, TypeError, "query_params"),
        ({"max_size": -1}, ValueError, "max_size"),
        ({"max_size": 0}, ValueError, "max_size"),
        ({"max_size": 1.5}, TypeError, "max_size"),
        ({"max_size": True}, TypeError, "max_size"),
        ({"event_queue_size": 0}, ValueError, "event_queue_size"),
        ({"event_queue_size": "10"}, TypeError, "event_queue_size"),
        ({"message_encoder": None}, TypeError, "message_encoder"),
        ({"message_encoder": "json"}, TypeError, "message_encoder"),
        ({"token_provider": "secret"}, TypeError, "token_provider"),
        ({"ssl": True}, TypeError, "ssl"),
        ({"proxy": 8080}, TypeError, "proxy"),
        ({"label": 3}, TypeError, "label"),
    ],
)
def test_a_bad_option_is_refused_by_name(
    options: dict[str, Any], error: type[Exception], named: str
) -> None:
    with pytest.raises(error, match=named):
        WebSocketClient(URL, decode_message, **options)


@pytest.mark.parametrize(
    ("position", "named"),
    [
        (1, "event_decoder"),
        (2, "ping_request_builder"),
        (3, "on_connection_established"),
        (4, "on_connected"),
    ],
)
def test_a_callable_that_is_not_callable_is_refused_by_name(position: int, named: str) -> None:
    args: list[Any] = [URL, decode_message, None, None, None]
    args[position] = "not callable"
    with pytest.raises(TypeError, match=named):
        WebSocketClient(*args)


def test_event_decoder_none_is_refused_instead_of_an_endless_auth_timeout_loop() -> None:
    with pytest.raises(TypeError, match="event_decoder"):
        WebSocketClient(URL, None)  # type: ignore[arg-type]


def test_an_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="slow_subscriber"):
        WebSocketClient(URL, decode_message, slow_subscriber_wait=1.0)  # type: ignore[call-arg]


def test_good_settings_pass_through_unchanged() -> None:
    settings = ClientSettings.check(
        URL,
        json.loads,
        None,
        None,
        None,
        subprotocols=("graphql-transport-ws",),
        headers={"X-A": "1"},
        ping_interval=None,
        idle_timeout=30,
        max_size=None,
    )
    assert settings.subprotocols == ("graphql-transport-ws",)
    assert settings.ping_interval is None
    assert settings.idle_timeout == 30.0
    assert settings.max_size is None
    core = settings.core_config(None, print)
    assert (core.has_auth_hook, core.has_connected_hook, core.idle_timeout) == (False, True, 30.0)


def test_an_unknown_option_is_refused_by_check_itself() -> None:
    with pytest.raises(TypeError, match="'ping_timeout'"):
        ClientSettings.check(URL, decode_message, None, None, None, ping_timeout=3.0)  # type: ignore[call-arg]


# -- one source of truth: the ClientSettings fields ----------------------------------------

DEFAULTS = {field.name: field.default for field in dataclasses.fields(ClientSettings)}


def test_every_option_has_exactly_one_default_the_settings_field_of_its_name() -> None:
    # One field per option, of the same name, each with a plain default ...
    assert ClientOptions.__optional_keys__ == DEFAULTS.keys()
    assert not ClientOptions.__required_keys__
    assert dataclasses.MISSING not in DEFAULTS.values()
    # ... and no signature restates one: options pass through as **options.
    for function in (ClientSettings.check, WebSocketClient.__init__):
        parameters = inspect.signature(function).parameters.values()
        restated = [p.name for p in parameters if p.name in DEFAULTS]
        assert not restated, f"{function.__qualname__} restates {restated}"
        assert inspect.Parameter.VAR_KEYWORD in {p.kind for p in parameters}


@pytest.mark.parametrize("config", [CoreConfig, EngineConfig])
def test_the_core_and_engine_configs_have_no_defaults_of_their_own(config: type) -> None:
    defaulted = [
        field.name
        for field in dataclasses.fields(config)
        if field.default is not dataclasses.MISSING
        or field.default_factory is not dataclasses.MISSING
    ]
    assert not defaulted, f"{config.__name__} restates defaults: {defaulted}"


def test_the_configs_built_from_the_defaults_carry_the_settings_defaults() -> None:
    settings = ClientSettings.check(URL, decode_message, None, None, None)
    assert settings == ClientSettings()
    core = settings.core_config(None, None)
    from_settings = {f.name for f in dataclasses.fields(CoreConfig)} - {
        "has_auth_hook",
        "has_connected_hook",
        "has_token_provider",
    }
    assert from_settings <= DEFAULTS.keys()
    assert {name: getattr(core, name) for name in from_settings} == {
        name: DEFAULTS[name] for name in from_settings
    }
    assert (core.has_auth_hook, core.has_connected_hook, core.has_token_provider) == (
        False,
        False,
        False,
    )
    engine = settings.engine_config(URL, None, None)
    from_settings = {f.name for f in dataclasses.fields(EngineConfig)} - {
        "url",
        "before_attempt",
        "logger",
    }
    assert from_settings <= DEFAULTS.keys()
    assert {name: getattr(engine, name) for name in from_settings} == {
        name: DEFAULTS[name] for name in from_settings
    }
    assert (engine.url, engine.before_attempt, engine.logger) == (URL, None, None)


def test_the_configs_carry_what_was_set() -> None:
    async def fetch() -> None:
        return None

    settings = ClientSettings.check(
        URL, decode_message, None, print, None, connect_timeout=2, ping_interval=None,
        ack_required=False, token_provider=lambda: "t", subprotocols=["p"], proxy=None,
    )  # fmt: skip
    core = settings.core_config(print, None)
    assert (core.connect_timeout, core.ping_interval, core.ack_required) == (2.0, None, False)
    assert (core.has_auth_hook, core.has_connected_hook, core.has_token_provider) == (
        True,
        False,
        True,
    )
    engine = settings.engine_config(URL, fetch, "logger")
    assert (engine.subprotocols, engine.proxy, engine.before_attempt, engine.logger) == (
        ("p",),
        None,
        fetch,
        "logger",
    )


def test_checking_settings_loads_no_network_stack() -> None:
    code = (
        "import sys, json, statesock.settings as s\n"
        "s.ClientSettings.check('ws://x/', json.loads, None, None, None).core_config(None, None)\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('websockets', 'asyncio')]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


# -- recovery ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"policy": None}, TypeError, "policy"),
        ({"stable_after": -1}, ValueError, "stable_after"),
        ({"stable_after": NAN}, ValueError, "stable_after"),
        ({"send_buffer_size": -1}, ValueError, "send_buffer_size"),
        ({"send_buffer_size": 2.5}, TypeError, "send_buffer_size"),
        ({"send_ttl": 0}, ValueError, "send_ttl"),
        ({"send_ttl": INF}, ValueError, "send_ttl"),
        ({"strategy": "exponential"}, TypeError, "strategy"),
    ],
)
def test_a_bad_recovery_option_is_refused_by_name(
    options: dict[str, Any], error: type[Exception], named: str
) -> None:
    client = WebSocketClient(URL, decode_message)
    with pytest.raises(error, match=named):
        ConnectionRecoveryHandler(client, **options)


def test_a_second_recovery_handler_is_refused() -> None:
    client = WebSocketClient(URL, decode_message)
    ConnectionRecoveryHandler(client)
    with pytest.raises(RuntimeError, match="already has a recovery handler"):
        ConnectionRecoveryHandler(client)


# -- what each refusal says: the option, the rule and the value (secrets masked) ----------------

SETTINGS_REFUSALS: list[tuple[dict[str, Any], dict[str, Any], type[Exception], str]] = [
    (
        {"proxy": "//proxy:8080"},
        {},
        ValueError,
        (
            "proxy must be True, None, False or an http(s):// or socks URL with a host (scheme "
            "'missing' is not one of http, https, socks4, socks4a, socks5, socks5h), not "
            "'//proxy:8080'"
        ),
    ),
    ({"bogus": 1}, {}, TypeError, "WebSocketClient() got an unexpected keyword argument 'bogus'"),
    ({}, {"event_decoder": None}, TypeError, "event_decoder must be callable, not None"),
    ({}, {"event_decoder": 5}, TypeError, "event_decoder must be callable, not 5"),
    ({}, {"ping_request_builder": 5}, TypeError, "ping_request_builder must be callable, not 5"),
    (
        {},
        {"on_connection_established": "x"},
        TypeError,
        "on_connection_established must be callable, not 'x'",
    ),
    ({}, {"on_connected": 3}, TypeError, "on_connected must be callable, not 3"),
    ({"message_encoder": None}, {}, TypeError, "message_encoder must be callable, not None"),
    ({"message_encoder": 5}, {}, TypeError, "message_encoder must be callable, not 5"),
    ({"token_provider": "t"}, {}, TypeError, "token_provider must be callable, not 't'"),
    (
        {"subprotocols": "graphql"},
        {},
        TypeError,
        "subprotocols must be a sequence of names, not the string 'graphql'",
    ),
    (
        {"subprotocols": b"graphql"},
        {},
        TypeError,
        "subprotocols must be a sequence of names, not the string b'graphql'",
    ),
    (
        {"subprotocols": ["a", ""]},
        {},
        TypeError,
        "subprotocols must be non-empty strings, not ('a', '')",
    ),
    (
        {"subprotocols": ["a", 1]},
        {},
        TypeError,
        "subprotocols must be non-empty strings, not ('a', 1)",
    ),
    (
        {"headers": "X-A: 1"},
        {},
        TypeError,
        ("headers must be a mapping, (name, value) pairs or a callable, not 'X-A: 1'"),
    ),
    (
        {"headers": ["X-A: 1"]},
        {},
        TypeError,
        (
            "headers must be a mapping, (name, value) pairs or a callable; item 0 "
            "is not a pair: 'X-A: 1'"
        ),
    ),
    (
        {"headers": [("X-A", "1", "2")]},
        {},
        TypeError,
        (
            "headers must be a mapping, (name, value) pairs or a callable; item 0 "
            "is not a pair: ('X-A', '1', '2')"
        ),
    ),
    (
        {"headers": 5},
        {},
        TypeError,
        "headers must be a mapping, (name, value) pairs or a callable, not 5",
    ),
    ({"headers": {1: "a"}}, {}, TypeError, "headers names must be str, not 1"),
    (
        {"headers": {"bad name": "a"}},
        {},
        ValueError,
        "headers name 'bad name' is not a valid HTTP field name",
    ),
    ({"headers": {"X-A": 1}}, {}, TypeError, "headers value of 'X-A' must be a str, not 1"),
    (
        {"headers": {"Authorization": 1}},
        {},
        TypeError,
        "headers value of 'Authorization' must be a str, not [REDACTED]",
    ),
    (
        {"headers": {"X-A": "a\r\nX-B: b"}},
        {},
        ValueError,
        (
            "headers value of 'X-A' must not contain CR, LF or NUL (it would "
            "inject header lines), not 'a\\r\\nX-B: b'"
        ),
    ),
    (
        {"headers": {"Authorization": "Bearer x\nX-B: b"}},
        {},
        ValueError,
        (
            "headers value of 'Authorization' must not contain CR, LF or NUL (it "
            "would inject header lines), not [REDACTED]"
        ),
    ),
    (
        {"query_params": {"a": None}},
        {},
        TypeError,
        "query_params value of 'a' must be a str or a number, not None",
    ),
    (
        {"query_params": {"a": True}},
        {},
        TypeError,
        "query_params value of 'a' must be a str or a number, not True",
    ),
    (
        {"query_params": {"token": [1]}},
        {},
        TypeError,
        ("query_params value of 'token' must be a str or a number, not [REDACTED]"),
    ),
    (
        {"query_params": "a=1"},
        {},
        TypeError,
        ("query_params must be a mapping, (name, value) pairs or a callable, not 'a=1'"),
    ),
    ({"ssl": "yes"}, {}, TypeError, "ssl must be an ssl.SSLContext or None, not 'yes'"),
    ({"max_size": "1"}, {}, TypeError, "max_size must be an int or None, not '1'"),
    ({"max_size": True}, {}, TypeError, "max_size must be an int or None, not True"),
    ({"max_size": 0}, {}, ValueError, "max_size must be positive or None, not 0"),
    ({"event_queue_size": 1.5}, {}, TypeError, "event_queue_size must be an int, not 1.5"),
    ({"event_queue_size": True}, {}, TypeError, "event_queue_size must be an int, not True"),
    (
        {"event_queue_size": 0},
        {},
        ValueError,
        f"event_queue_size must be in 1..{MAX_QUEUE_SIZE}, not 0",
    ),
    (
        {"event_queue_size": MAX_QUEUE_SIZE + 1},
        {},
        ValueError,
        f"event_queue_size must be in 1..{MAX_QUEUE_SIZE}, not 1000001",
    ),
    (
        {"connect_timeout": "1"},
        {},
        TypeError,
        "connect_timeout must be a number of seconds, not '1'",
    ),
    (
        {"connect_timeout": True},
        {},
        TypeError,
        "connect_timeout must be a number of seconds, not True",
    ),
    (
        {"auth_timeout": 0},
        {},
        ValueError,
        "auth_timeout must be a positive, finite number of seconds, not 0",
    ),
    (
        {"close_timeout": INF},
        {},
        ValueError,
        "close_timeout must be a positive, finite number of seconds, not inf",
    ),
    (
        {"pong_timeout": -1},
        {},
        ValueError,
        "pong_timeout must be a positive, finite number of seconds, not -1",
    ),
    (
        {"ping_interval": 0},
        {},
        ValueError,
        "ping_interval must be a positive, finite number of seconds, not 0",
    ),
    ({"idle_timeout": "x"}, {}, TypeError, "idle_timeout must be a number of seconds, not 'x'"),
    (
        {"protocol_keepalive": NAN},
        {},
        ValueError,
        ("protocol_keepalive must be a positive, finite number of seconds, not nan"),
    ),
    (
        {"stall_timeout": -5},
        {},
        ValueError,
        "stall_timeout must be a positive, finite number of seconds, not -5",
    ),
    (
        {"ping_interval": 3, "pong_timeout": 3},
        {},
        ValueError,
        "pong_timeout (3 s) must be shorter than ping_interval (3 s)",
    ),
    (
        {"ping_interval": 2.5, "pong_timeout": 4},
        {},
        ValueError,
        "pong_timeout (4 s) must be shorter than ping_interval (2.5 s)",
    ),
    ({"proxy": 5}, {}, TypeError, "proxy must be True, None, False or a URL, not 5"),
    (
        {"proxy": "not a url"},
        {},
        ValueError,
        (
            "proxy must be True, None, False or an http(s):// or socks URL with a "
            "host (empty, or with whitespace or control characters), not 'not a "
            "url'"
        ),
    ),
    (
        {"proxy": ""},
        {},
        ValueError,
        (
            "proxy must be True, None, False or an http(s):// or socks URL with a "
            "host (empty, or with whitespace or control characters), not ''"
        ),
    ),
    (
        {"proxy": "ws://proxy:8080"},
        {},
        ValueError,
        (
            "proxy must be True, None, False or an http(s):// or socks URL with a "
            "host (scheme 'ws' is not one of http, https, socks4, socks4a, socks5, "
            "socks5h), not 'ws://proxy:8080'"
        ),
    ),
    (
        {"proxy": "http://"},
        {},
        ValueError,
        (
            "proxy must be True, None, False or an http(s):// or socks URL with a "
            "host (no host), not 'http://'"
        ),
    ),
    (
        {"proxy": "http://proxy:0"},
        {},
        ValueError,
        (
            "proxy must be True, None, False or an http(s):// or socks URL with a "
            "host (port 0), not 'http://proxy:0'"
        ),
    ),
    (
        {"proxy": "http://proxy:99999"},
        {},
        ValueError,
        (
            "proxy must be True, None, False or an http(s):// or socks URL with a "
            "host (Port out of range 0-65535), not 'http://proxy:99999'"
        ),
    ),
    (
        {"proxy": "http://proxy:8080/path"},
        {},
        ValueError,
        (
            "proxy must be True, None, False or an http(s):// or socks URL with a "
            "host (a path, query or fragment means nothing to a proxy), not "
            "'http://proxy:8080/path'"
        ),
    ),
    (
        {"proxy": "http://proxy:8080?x=1"},
        {},
        ValueError,
        (
            "proxy must be True, None, False or an http(s):// or socks URL with a "
            "host (a path, query or fragment means nothing to a proxy), not "
            "'http://proxy:8080?x=1'"
        ),
    ),
    (
        {"proxy": "http://user@proxy:8080"},
        {},
        ValueError,
        (
            "proxy must be True, None, False or an http(s):// or socks URL with a "
            "host (a user name without a password), not "
            "'http://[REDACTED]@proxy:8080'"
        ),
    ),
    (
        {"proxy": "http://u:secret@proxy:8080/x"},
        {},
        ValueError,
        (
            "proxy must be True, None, False or an http(s):// or socks URL with a "
            "host (a path, query or fragment means nothing to a proxy), not "
            "'http://u:[REDACTED]@proxy:8080/x'"
        ),
    ),
    ({"label": 5}, {}, TypeError, "label must be a string, not 5"),
    (
        {"label": "a\nb"},
        {},
        ValueError,
        (
            "label must not contain control, format or line-separator characters "
            "(they would forge or hide log lines), not 'a\\nb'"
        ),
    ),
    (
        {"label": "a\x1b[31mb"},
        {},
        ValueError,
        (
            "label must not contain control, format or line-separator characters "
            "(they would forge or hide log lines), not 'a\\x1b[31mb'"
        ),
    ),
    (
        {"label": "a\u200bb"},
        {},
        ValueError,
        (
            "label must not contain control, format or line-separator characters "
            "(they would forge or hide log lines), not 'a\\u200bb'"
        ),
    ),
    (
        {"label": "a\u2028b"},
        {},
        ValueError,
        (
            "label must not contain control, format or line-separator characters "
            "(they would forge or hide log lines), not 'a\\u2028b'"
        ),
    ),
    (
        {"meter_provider": object},
        {},
        TypeError,
        ("meter_provider must be an OpenTelemetry MeterProvider or None, not <class 'object'>"),
    ),
    (
        {"meter_provider": 5},
        {},
        TypeError,
        "meter_provider must be an OpenTelemetry MeterProvider or None, not 5",
    ),
    ({"ack_required": "false"}, {}, TypeError, "ack_required must be True or False, not 'false'"),
    ({"compression": "yes"}, {}, TypeError, "compression must be True or False, not 'yes'"),
    ({"transport": 5}, {}, TypeError, "transport must be a str, not 5"),
    (
        {"transport": "aiohttp"},
        {},
        ValueError,
        "transport must be one of 'websockets', 'picows', not 'aiohttp'",
    ),
    (
        {"transport": "picows", "compression": True},
        {},
        ValueError,
        (
            "compression=True cannot be honoured with transport='picows': picows "
            "has no permessage-deflate; leave compression unset (None: the "
            "transport's default, off for picows) or use transport='websockets'"
        ),
    ),
    (
        {"transport": "picows", "proxy": "socks4a://p:1080"},
        {},
        ValueError,
        (
            "proxy: transport='picows' cannot use a socks4a:// proxy (its SOCKS "
            "client resolves names locally for SOCKS4); use socks5:// or "
            "transport='websockets', not 'socks4a://p:1080'"
        ),
    ),
    (
        {"transport": "picows", "proxy": "SOCKS4A://p:1080"},
        {},
        ValueError,
        (
            "proxy: transport='picows' cannot use a socks4a:// proxy (its SOCKS "
            "client resolves names locally for SOCKS4); use socks5:// or "
            "transport='websockets', not 'SOCKS4A://p:1080'"
        ),
    ),
]


def _decode(data: str | bytes) -> Any:
    return data


@pytest.mark.parametrize(
    ("options", "positional", "kind", "message"),
    SETTINGS_REFUSALS,
    ids=[message[:60] for *_, message in SETTINGS_REFUSALS],
)
def test_each_refusal_says_the_option_the_rule_and_the_value(
    options: dict[str, Any], positional: dict[str, Any], kind: type[Exception], message: str
) -> None:
    hooks = {
        "event_decoder": _decode,
        "ping_request_builder": None,
        "on_connection_established": None,
        "on_connected": None,
        **positional,
    }
    with pytest.raises(kind) as refused:
        ClientSettings.check(URL, *hooks.values(), **options)
    assert str(refused.value) == message


def test_a_coroutine_function_cannot_decode() -> None:
    async def decode(data: str | bytes) -> Any:
        return data

    with pytest.raises(TypeError) as refused:
        ClientSettings.check(URL, decode, None, None, None)
    assert str(refused.value) == "event_decoder must be a plain function, not a coroutine function"


@pytest.mark.parametrize(
    "options",
    [
        {"max_size": 1},
        {"max_size": None},
        {"event_queue_size": 1},
        {"event_queue_size": MAX_QUEUE_SIZE},
        {"connect_timeout": 1e-9, "auth_timeout": 0.5, "close_timeout": 1},
        {"ping_interval": None, "pong_timeout": 100},
        {"ping_interval": 3.5, "pong_timeout": 3},
        {"idle_timeout": 0.5, "protocol_keepalive": 0.5, "stall_timeout": None},
        {"proxy": False},
        {"proxy": None},
        {"proxy": "http://proxy:8080"},
        {"proxy": "https://proxy/"},
        {"proxy": "socks5h://user:pass@proxy:1080"},
        {"label": "Zürich 1"},
        {"compression": False},
        {"compression": True},
        {"headers": [("X-A", "1")], "query_params": [("a", 1), ("b", 2.5), ("c", "x")]},
        {"headers": lambda: {"X-A": "1"}, "query_params": lambda: {}},
        {"subprotocols": ["a", "b"]},
        {"transport": "picows", "proxy": "socks5://p:1080"},
        {"ack_required": False, "token_provider": lambda: "t"},
    ],
)
def test_the_edges_of_what_is_accepted(options: dict[str, Any]) -> None:
    settings = ClientSettings.check(URL, _decode, None, None, None, **options)
    for name, value in options.items():
        assert getattr(settings, name) == (tuple(value) if name == "subprotocols" else value)


def test_the_timeouts_are_kept_as_floats() -> None:
    settings = ClientSettings.check(
        URL, _decode, None, None, None, connect_timeout=3, ping_interval=7
    )
    assert type(settings.connect_timeout) is float and settings.connect_timeout == 3.0
    assert type(settings.ping_interval) is float and settings.ping_interval == 7.0


def test_what_the_encoder_returns_must_be_text_or_bytes() -> None:
    settings = ClientSettings.check(URL, _decode, None, None, None, message_encoder=lambda m: m)
    assert settings.encode("text") == "text"
    assert settings.encode(b"bytes") == b"bytes"
    with pytest.raises(TypeError) as refused:
        settings.encode({"token": "abc"})
    assert str(refused.value) == (
        "message_encoder must return str or bytes, not dict: {'token': '[REDACTED]'}"
    )


# -- what reaches the engine, and the refusals' exact words ----------------------------------


def test_compression_and_protocol_keepalive_reach_the_engine_as_set() -> None:
    for compression in (False, True, None):
        settings = ClientSettings.check(
            URL, _decode, None, None, None, compression=compression, protocol_keepalive=5
        )
        engine = settings.engine_config(URL, None, None)
        assert engine.compression is compression
        assert engine.protocol_keepalive == 5.0


def test_an_unknown_transport_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError) as refused:
        ClientSettings.check(URL, _decode, None, None, None, transport="aiohttp")
    assert str(refused.value) == "transport must be one of 'websockets', 'picows', not 'aiohttp'"


def test_a_pair_that_is_not_a_sequence_is_named_by_its_index() -> None:
    with pytest.raises(TypeError) as refused:
        ClientSettings.check(URL, _decode, None, None, None, headers=[("X-A", "1"), 5])
    assert str(refused.value) == (
        "headers must be a mapping, (name, value) pairs or a callable; item 1 is not a pair: 5"
    )


def test_a_header_value_may_hold_any_printable_character() -> None:
    value = "XYZ Bearer-ish 0123 ~!@#$%^&*()"
    settings = ClientSettings.check(URL, _decode, None, None, None, headers={"X-Key": value})
    assert settings.headers == {"X-Key": value}


@pytest.fixture
def fast_transport_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings only ask whether the package is there: these tests need no picows."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: object() if name == "picows" else real(name, *args),
    )


@pytest.mark.usefixtures("fast_transport_installed")
def test_compression_is_refused_with_the_fast_transport_in_so_many_words() -> None:
    with pytest.raises(ValueError) as refused:
        ClientSettings.check(URL, _decode, None, None, None, transport="picows", compression=True)
    assert str(refused.value) == (
        "compression=True cannot be honoured with transport='picows': picows has no "
        "permessage-deflate; leave compression unset (None: the transport's default, "
        "off for picows) or use transport='websockets'"
    )
    off = ClientSettings.check(
        URL, _decode, None, None, None, transport="picows", compression=False
    )
    assert off.compression is False


@pytest.mark.usefixtures("fast_transport_installed")
def test_a_socks4a_proxy_is_refused_with_the_fast_transport_whatever_its_case() -> None:
    with pytest.raises(ValueError) as refused:
        ClientSettings.check(
            URL, _decode, None, None, None, transport="picows", proxy="socks4a://u:pw@h:1080"
        )
    assert str(refused.value) == (
        "proxy: transport='picows' cannot use a socks4a:// proxy (its SOCKS client "
        "resolves names locally for SOCKS4); use socks5:// or transport='websockets', "
        "not 'socks4a://u:[REDACTED]@h:1080'"
    )
    with pytest.raises(ValueError, match="socks4a"):
        ClientSettings.check(
            URL, _decode, None, None, None, transport="picows", proxy="SOCKS4A://h:1080"
        )
    # The websockets transport takes it (python-socks does SOCKS4a there).
    ClientSettings.check(URL, _decode, None, None, None, proxy="socks4a://h:1080")


def test_a_transport_that_is_not_installed_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "picows" else real(name, *a)
    )
    with pytest.raises(ImportError) as missing:
        ClientSettings.check(URL, _decode, None, None, None, transport="picows")
    assert missing.value.name == "picows"
    assert str(missing.value) == (
        "transport='picows' needs the picows package, which is not installed: "
        "pip install 'statesock[fast]'"
    )


# -- settings checked once per set of inputs ----------------------------------------------------


def test_clients_made_alike_share_one_checked_settings_object() -> None:
    options: dict[str, Any] = {"ack_required": False, "ping_interval": 20.0, "label": "a"}
    first = ClientSettings.check(URL, _decode, None, None, None, **options)
    assert ClientSettings.check(URL, _decode, None, None, None, **options) is first
    assert ClientSettings.check(URL, _decode, None, None, None, **options, proxy=False) != first
    # A value equal to a checked one but of another type is checked afresh, and refused.
    with pytest.raises(TypeError, match="ack_required must be True or False"):
        ClientSettings.check(URL, _decode, None, None, None, **{**options, "ack_required": 0})
    whole = ClientSettings.check(URL, _decode, None, None, None, ping_interval=20)
    assert type(whole.ping_interval) is float
    # Inputs that could change behind a key (a mapping, a closure) are checked every time.
    headers = {"X-A": "1"}
    assert ClientSettings.check(URL, _decode, None, None, None, headers=headers) is not (
        ClientSettings.check(URL, _decode, None, None, None, headers=headers)
    )
    local = 1

    def closure(data: str | bytes) -> Any:
        return local

    assert ClientSettings.check(URL, closure, None, None, None) is not (
        ClientSettings.check(URL, closure, None, None, None)
    )


def test_a_changed_default_is_seen_by_the_next_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from statesock import settings as settings_module

    assert ClientSettings.check(URL, _decode, None, None, None).event_queue_size == 1024
    monkeypatch.setitem(settings_module._DEFAULTS, "event_queue_size", 7)
    assert ClientSettings.check(URL, _decode, None, None, None).event_queue_size == 7


def test_a_transport_checked_before_is_asked_again_whether_it_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if importlib.util.find_spec("picows") is None:  # pragma: no cover - CI installs it
        pytest.skip("picows is not installed")
    ClientSettings.check(URL, _decode, None, None, None, transport="picows")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "picows" else real(name, *a)
    )
    with pytest.raises(ImportError, match="needs the picows package"):
        ClientSettings.check(URL, _decode, None, None, None, transport="picows")


def test_the_core_configuration_of_shared_settings_is_shared_by_hook_presence() -> None:
    settings = ClientSettings.check(URL, _decode, None, None, None, ack_required=False)
    plain = settings.core_config(None, None)
    assert settings.core_config(None, None) is plain
    with_hook = settings.core_config(print, None)
    assert with_hook.has_auth_hook and not plain.has_auth_hook
    assert settings.core_config(None, print).has_connected_hook
    other = ClientSettings.check(URL, _decode, None, None, None, ack_required=True)
    assert other.core_config(None, None).ack_required and not plain.ack_required


def test_a_subclass_checked_with_its_bases_inputs_gets_settings_of_its_own_class() -> None:
    class Tuned(ClientSettings):
        pass

    base = ClientSettings.check(URL, _decode, None, None, None, label="subclassed")
    tuned = Tuned.check(URL, _decode, None, None, None, label="subclassed")
    assert type(base) is ClientSettings and type(tuned) is Tuned
    assert Tuned.check(URL, _decode, None, None, None, label="subclassed") is tuned
    assert ClientSettings.check(URL, _decode, None, None, None, label="subclassed") is base


def test_settings_checked_with_the_same_plain_functions_as_options_are_shared() -> None:
    options: dict[str, Any] = {"message_encoder": json.dumps, "token_provider": _token}
    first = ClientSettings.check(URL, _decode, None, None, None, **options)
    assert ClientSettings.check(URL, _decode, None, None, None, **options) is first
    assert first.message_encoder is json.dumps and first.token_provider is _token


def _token() -> str:
    return "t"


def test_the_checked_settings_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rule: at most ``_CHECKED_MAX`` checked settings are kept; the check past the bound
    starts the memo afresh (the first ones kept are checked again, into new objects)."""
    from statesock import settings as settings_module

    monkeypatch.setattr(settings_module, "_checked", {})
    bound = settings_module._CHECKED_MAX

    def check(n: int) -> ClientSettings:
        return ClientSettings.check(URL, _decode, None, None, None, label=f"kept-{n}")

    first = check(0)
    for n in range(1, bound):
        check(n)
    assert len(settings_module._checked) == bound
    assert check(0) is first  # the bound reached: all still kept
    past = check(bound)
    assert len(settings_module._checked) <= bound
    assert check(bound) is past
    assert check(0) is not first and check(0) == first


def test_the_engine_config_class_is_imported_on_the_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from statesock import settings as settings_module

    monkeypatch.setattr(settings_module, "_engine_config", None)  # as in a fresh process
    settings = ClientSettings.check(URL, _decode, None, None, None)
    assert type(settings.engine_config(URL, None, None)) is EngineConfig
    assert settings_module._engine_config is EngineConfig  # kept for the next ones
    assert type(settings.engine_config(URL, None, None)) is EngineConfig
