"""6. State machine cost: µs per trigger, ConnectionMachine vs a bare transitions.Machine.

Both run the same cycle (connect, opened, authenticated, pong, disconnect, closed) over the
same (trigger, source, dest) table; the bare machine has no guards, records or listeners.
"""

from __future__ import annotations

import time
from typing import Any

from transitions import Machine

from statesock.events import HealthCheckInfo
from statesock.machine import RULES, ConnectionMachine, ConnectionState, Outcome
from statesock.sources import NoPongReceived
from tests.bench.common import Result

TRIGGERS_PER_CYCLE = 6


def _ours(cycles: int) -> float:
    machine = ConnectionMachine(time.monotonic)
    health = HealthCheckInfo("c")
    source = NoPongReceived()
    started = time.perf_counter()
    for _ in range(cycles):
        machine.connect()
        machine.opened()
        machine.authenticated(health)
        machine.pong(health)
        machine.disconnect(source)
        machine.closed()
    return (time.perf_counter() - started) / (cycles * TRIGGERS_PER_CYCLE) * 1e6


class _Model:
    pass


def _bare(cycles: int) -> float:
    model = _Model()
    machine = Machine(
        model=model,
        states=list(ConnectionState),
        initial=ConnectionState.INITIALIZED,
        auto_transitions=False,
        send_event=True,
        queued=True,
    )
    seen: set[tuple[str, ConnectionState]] = set()
    for rule in RULES:
        if rule.outcome is Outcome.NOOP:
            continue
        sources: list[Any] = [s for s in rule.sources if (rule.trigger.value, s) not in seen]
        seen.update((rule.trigger.value, s) for s in sources)
        if sources:
            machine.add_transition(rule.trigger.value, sources, rule.dest)
    trigger = model.trigger  # type: ignore[attr-defined]
    started = time.perf_counter()
    for _ in range(cycles):
        trigger("connect")
        trigger("opened")
        trigger("authenticated")
        trigger("pong")
        trigger("disconnect")
        trigger("closed")
    return (time.perf_counter() - started) / (cycles * TRIGGERS_PER_CYCLE) * 1e6


def run(full: bool = False) -> Result:
    cycles, repeats = (50_000, 9) if full else (10_000, 7)
    ours: list[float] = []
    bare: list[float] = []
    for round_ in range(repeats):
        if round_ % 2 == 0:
            ours.append(_ours(cycles))
            bare.append(_bare(cycles))
        else:
            bare.append(_bare(cycles))
            ours.append(_ours(cycles))
    result = Result("state machine cost", "µs/trigger", ours, bare, "bare transitions.Machine")
    result.notes.append("ours adds guards, records with seq and timing, listener delivery")
    return result
