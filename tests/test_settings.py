"""Every bad setting is refused at construction, with an error that names it."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from statesock.client import WebSocketClient
from statesock.recovery import ConnectionRecoveryHandler
from statesock.settings import ClientSettings
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
