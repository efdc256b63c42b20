"""Helpers shared between test files (one module, so no test module imports another).

What lives where:

* ``tests/support.py`` (this module): plain data and functions used by more than one test
  file, one section each (the connection path's ``DOWN`` and ``LEGAL_CHANGES``, used by the
  machine, client, soak and simulation tests, ...). A test module (``tests/test_*.py``)
  never imports another test module; what two of them share is moved here.
* ``tests/conftest.py``: pytest fixtures, and the client helpers many tests import from it
  (``make_client``, ``virtual_time``, ...), as pytest's convention for shared test code.
* ``tests/core_world.py``: the fake world the sans-I/O core is simulated in (clock, sockets,
  server, network, app), the situations a world can be driven to (``SITUATIONS``,
  ``reach``) and ``random_walk``; used by tests/test_core_simulation.py and by
  ``make soak`` (tests/soak_core.py).
* ``tests/bench/``: the benchmarks and what they share (``tests/bench/common.py``: a server
  in a child process, ``ServerProcess``, which tests/test_delivery.py borrows from there).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from statesock.core_io import CoreConfig, RecoveryConfig
from statesock.events import HealthCheckInfo
from statesock.machine import ConnectionMachine, ConnectionState, Record, Trigger
from statesock.recovery import ConnectionRecoveryHandler
from statesock.settings import ClientSettings

# -- a machine with a shell's delivery ------------------------------------------------------


class Recording(ConnectionMachine):
    """A ConnectionMachine that keeps every record its triggers returned, and hands each to
    ``sinks`` (a TransitionLogger, say), as the shell does: the test plays the shell."""

    __slots__ = ("records", "sinks")

    def __init__(self, clock: Callable[[], float], *sinks: Callable[[Record], object]) -> None:
        super().__init__(clock)
        self.records: list[Record] = []
        self.sinks = sinks

    def fire(self, trigger: Trigger, **kwargs: Any) -> list[Record]:
        return self._keep(super().fire(trigger, **kwargs))

    def pong(self, health: HealthCheckInfo) -> list[Record]:
        return self._keep(super().pong(health))

    def _keep(self, records: list[Record]) -> list[Record]:
        self.records += records
        for record in records:
            for sink in self.sinks:
                sink(record)
        return records


# -- configurations with the library's own defaults ----------------------------------------


def core_config(**overrides: Any) -> CoreConfig:
    """The core's configuration of a client made with every default (no hook, no token
    provider), with ``overrides``: the defaults come from ClientSettings, their one source."""
    config = ClientSettings().core_config(None, None)
    return dataclasses.replace(config, **overrides)


_RECOVERY_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(ConnectionRecoveryHandler).parameters.items()
    if parameter.default is not inspect.Parameter.empty
}


def recovery_config_with(policy: Any, strategy: Any, **overrides: Any) -> RecoveryConfig:
    """A RecoveryConfig with ConnectionRecoveryHandler's defaults (their one source), the
    given policy and strategy, and ``overrides`` (RecoveryConfig's field names)."""
    defaults = _RECOVERY_DEFAULTS
    fields: dict[str, Any] = {
        "stable_after": float(defaults["stable_after"]),
        "buffer_size": defaults["send_buffer_size"],
        "buffer_ttl": float(defaults["send_ttl"]),
        "retry_first_connect": defaults["retry_first_connect"],
    }
    fields.update(overrides)
    return RecoveryConfig(policy, strategy, **fields)


# -- the connection path: what any record of the machine must obey ------------------------

S = ConnectionState

# The states that carry a disconnection source, and only they.
DOWN = {S.DISCONNECTING, S.DISCONNECTED}

# Every (previous, current, trigger) a record may show. Written out by hand from DESIGN.md,
# not derived from machine.RULES.
LEGAL_CHANGES = {
    (S.INITIALIZED, S.CONNECTING, "connect"),
    (S.DISCONNECTED, S.CONNECTING, "connect"),
    (S.CONNECTING, S.AUTHENTICATING, "opened"),
    (S.AUTHENTICATING, S.CONNECTED, "authenticated"),
    (S.CONNECTING, S.DISCONNECTING, "disconnect"),
    (S.AUTHENTICATING, S.DISCONNECTING, "disconnect"),
    (S.CONNECTED, S.DISCONNECTING, "disconnect"),
    (S.CONNECTING, S.DISCONNECTED, "closed"),
    (S.AUTHENTICATING, S.DISCONNECTED, "closed"),
    (S.CONNECTED, S.DISCONNECTED, "closed"),
    (S.DISCONNECTING, S.DISCONNECTED, "closed"),
}


# -- log lines (test_log_reader, test_cli, test_report) -----------------------------------

import json  # noqa: E402
from pathlib import Path  # noqa: E402

from structlog.testing import capture_logs  # noqa: E402

from statesock.sources import NoPongReceived, ServerInitiated, UserInitiated  # noqa: E402
from statesock.transition_log import TransitionLogger  # noqa: E402


def logged_machine(label: str, clock: Callable[[], float] = lambda: 0.0) -> Recording:
    """A machine whose records go to a TransitionLogger as they are fired, the way the client
    delivers them: ``logged_machine("c1").connect()`` logs and returns the records."""
    return Recording(clock, TransitionLogger(label))


def session_lines(client: str = "c1", *, plain: bool = False) -> list[str]:
    """A real session's log, as an app writing structlog JSON lines would have it: 14
    records, two reconnects (outages of 1.5 s and 4 s), three disconnections.

    ``plain`` drops the writer's ``run`` and ``ts`` (what older writers produced).
    """
    now = [0.0]
    machine = logged_machine(client, lambda: now[0])

    def at(t: float) -> None:
        now[0] = t

    with capture_logs() as logs:
        machine.connect()
        at(0.1)
        machine.opened()
        at(0.2)
        machine.authenticated()
        at(60.0)
        machine.disconnect(NoPongReceived())
        at(60.1)
        machine.closed()
        at(61.0)
        machine.connect(reconnect=True)
        at(61.5)
        machine.opened()
        machine.authenticated()
        at(100.0)
        machine.closed(ServerInitiated(1011, "overloaded"))
        at(104.0)
        machine.connect(reconnect=True)
        machine.opened()
        machine.authenticated()
        at(200.0)
        machine.disconnect(UserInitiated())
        machine.closed()
    entries = [dict(entry) for entry in logs]
    assert entries and all(e["event"] == "transition" for e in entries)
    if plain:
        for entry in entries:
            entry.pop("run", None)
            entry.pop("ts", None)
    return [json.dumps(entry) for entry in entries]


def write(tmp_path: Path, lines: list[str], name: str = "log.jsonl") -> Path:
    """``lines`` as a log file in ``tmp_path``, one per line."""
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def fleet_lines(clients: int, cycles: int) -> list[str]:
    """``clients`` clients, each connecting and dropping ``cycles`` times, with wall times."""
    lines = []
    for c in range(clients):
        seq, t, state = 0, 1_796_000_000.0 + c, "initialized"
        for cycle in range(cycles):
            connect = {"reconnect": bool(cycle), "detail": "reconnect" if cycle else "user connect"}
            for dst, trigger, extra in (
                ("connecting", "connect", connect),
                ("authenticating", "opened", {}),
                ("connected", "authenticated", {}),
                ("disconnected", "closed", {"source": "server", "code": 1011}),
            ):
                seq += 1
                t += 1.0 + (c % 7)
                record = {"event": "transition", "client": f"feed-{c:04d}", "run": "r", "seq": seq}
                record.update(src=state, dst=dst, trigger=trigger, ts=t, at=t - 1_796_000_000)
                record.update(in_state_ms=1000.0, **extra)
                lines.append(json.dumps(record))
                state = dst
    return lines
