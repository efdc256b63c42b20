"""Every bad setting is refused at construction, with an error that names it."""

from __future__ import annotations

import dataclasses
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
from statesock.settings import ClientOptions, ClientSettings
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
