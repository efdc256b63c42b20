"""One trigger: CPU per trigger of the client's state machine against a bare transitions.Machine.

Ours is what a client runs per trigger: a :class:`ConnectionMachine` whose returned records
go to the client's transition logger, while the app's logging is on but filtered above INFO (two
set-ups: structlog configured with a WARNING filtering logger; structlog not configured and
the standard library logger ``statesock`` at WARNING). The anchor is a bare queued
``transitions.Machine`` (``auto_transitions=False``, ``send_event=True``, ``queued=True``)
with the same states and (trigger, source, dest) table, and no guards, records or listeners.
Both run the same cycle: connect, opened, authenticated, pong, disconnect, closed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import structlog
from transitions import Machine

from statesock.events import HealthCheckInfo
from statesock.machine import RULES, ConnectionMachine, ConnectionState, Outcome
from statesock.sources import NoPongReceived
from statesock.transition_log import LOGGER_NAME, TransitionLogger
from tests.bench.common import Result

TRIGGERS_PER_CYCLE = 6


def _ours(cycles: int) -> float:
    machine = ConnectionMachine(time.monotonic)
    log = TransitionLogger("bench")  # the shell hands every returned record to it
    health = HealthCheckInfo("c")
    source = NoPongReceived()
    started = time.process_time()
    for _ in range(cycles):
        for records in (
            machine.connect(),
            machine.opened(),
            machine.authenticated(health),
            machine.pong(health),
            machine.disconnect(source),
            machine.closed(),
        ):
            for record in records:
                log(record)
    return (time.process_time() - started) / (cycles * TRIGGERS_PER_CYCLE) * 1e6


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
    started = time.process_time()
    for _ in range(cycles):
        trigger("connect")
        trigger("opened")
        trigger("authenticated")
        trigger("pong")
        trigger("disconnect")
        trigger("closed")
    return (time.process_time() - started) / (cycles * TRIGGERS_PER_CYCLE) * 1e6


def _structlog_filtered() -> Callable[[], None]:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    return structlog.reset_defaults


def _stdlib_filtered() -> Callable[[], None]:
    structlog.reset_defaults()
    logger = logging.getLogger(LOGGER_NAME)
    level = logger.level
    logger.setLevel(logging.WARNING)
    return lambda: logger.setLevel(level)


def _measure(setup: Callable[[], Callable[[], None]], cycles: int, repeats: int) -> Result:
    was_configured = structlog.is_configured()
    config = structlog.get_config()
    undo = setup()
    ours: list[float] = []
    bare: list[float] = []
    try:
        _ours(cycles // 10)
        _bare(cycles // 10)
        for round_ in range(repeats):
            for side in ("ours", "bare") if round_ % 2 == 0 else ("bare", "ours"):
                if side == "ours":
                    ours.append(_ours(cycles))
                else:
                    bare.append(_bare(cycles))
    finally:
        undo()
        if was_configured:
            structlog.configure(**config)
    return Result("", "µs CPU", ours, bare, "bare queued transitions.Machine")


def run(full: bool = False) -> list[Result]:
    cycles, repeats = (30_000, 9) if full else (3_000, 7)
    results = []
    for label, setup in (
        ("structlog at WARNING", _structlog_filtered),
        ("stdlib logger at WARNING", _stdlib_filtered),
    ):
        result = _measure(setup, cycles, repeats)
        result.name = f"one trigger (logging on, {label})"
        result.check(1.2)
        result.notes.append(
            "ConnectionMachine + the client's TransitionLogger; records with seq and timing"
        )
        results.append(result)
    return results
