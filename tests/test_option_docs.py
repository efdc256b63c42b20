"""Every option has one written meaning, and help() shows it with its default and unit."""

from __future__ import annotations

import dataclasses
import inspect
import pydoc

from statesock import WebSocketClient
from statesock.option_docs import OPTIONS
from statesock.recovery import ConnectionRecoveryHandler
from statesock.settings import ClientOptions, ClientSettings


def test_every_client_option_and_only_they_have_a_meaning() -> None:
    fields = [field.name for field in dataclasses.fields(ClientSettings)]
    assert sorted(OPTIONS["client"]) == sorted(fields) == sorted(ClientOptions.__annotations__)
    assert all(meaning.strip() for _unit, meaning in OPTIONS["client"].values())


def test_every_recovery_option_and_only_they_have_a_meaning() -> None:
    parameters = list(inspect.signature(ConnectionRecoveryHandler).parameters)
    assert sorted(OPTIONS["recovery"]) == sorted(parameters)
    assert all(meaning.strip() for _unit, meaning in OPTIONS["recovery"].values())


def test_help_of_the_client_shows_every_option_with_its_default() -> None:
    text = pydoc.render_doc(WebSocketClient.__init__, renderer=pydoc.TextDoc())
    for field in dataclasses.fields(ClientSettings):
        assert f"{field.name} (default {field.default!r}" in text
    assert "ping_interval (default 25.0, seconds):" in text


def test_help_of_the_recovery_handler_shows_every_option() -> None:
    text = pydoc.render_doc(ConnectionRecoveryHandler.__init__, renderer=pydoc.TextDoc())
    for name in inspect.signature(ConnectionRecoveryHandler).parameters:
        assert f"\n{name} (default " in text or f" {name} (default " in text
