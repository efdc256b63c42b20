"""LeanMachine: a transitions.Machine that skips only the steps that do nothing.

The rule: whatever is registered on it, and whatever transitions' log level, a LeanMachine
calls the same callbacks in the same order, ends in the same states, returns and raises the
same, and logs the same lines as a plain ``transitions.Machine``; with nothing registered but
conditions and ``after`` callbacks and the log off, it skips transitions' own steps.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import pytest
from transitions import Event, EventData, Machine, MachineError, State, Transition

from statesock import lean_transitions
from statesock.lean_transitions import LeanMachine

pytestmark = pytest.mark.skipif(
    not lean_transitions.fits(), reason="the installed transitions is older than 0.9.1"
)


class Light(enum.Enum):
    OFF = "off"
    ON = "on"
    BROKEN = "broken"


class Model:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.allowed = True

    def named_after(self, *args: Any, **kwargs: Any) -> None:  # an ``after`` given by name
        self.calls.append("named_after")


def _seen(args: tuple[Any, ...]) -> str:
    """What a callback was given: the event's state and transition, or its plain arguments."""
    if len(args) == 1 and isinstance(args[0], EventData):
        event = args[0]
        state = event.state.name if event.state is not None else None
        transition = event.transition
        moving = (transition.source, transition.dest) if transition is not None else None
        return f"event in {state}, {moving}"
    return f"{len(args)} arguments"


def _recorder(calls: list[str], name: str) -> Callable[..., None]:
    def record(*args: Any, **kwargs: Any) -> None:
        calls.append(f"{name}: {_seen(args)}")

    return record


def _raiser(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("after failed")


def _final(machine: Machine, calls: list[str]) -> None:
    machine.get_state(Light.BROKEN).final = True
    machine.on_final = [_recorder(calls, "on_final")]  # type: ignore[attr-defined]


def _on_exception(machine: Machine, calls: list[str]) -> None:
    machine.get_transitions("smash")[0].add_callback("after", _raiser)
    machine.on_exception = [_recorder(calls, "on_exception")]


# Each configuration registers something on the machine (or sets its log), through
# ``configure(machine, calls)``; "nothing" is the lean path itself.
CONFIGURATIONS: dict[str, Callable[[Machine, list[str]], None]] = {
    "nothing": lambda m, calls: None,
    "prepare": lambda m, calls: m.get_transitions("flip")[0].add_callback(
        "prepare", _recorder(calls, "prepare")
    ),
    "before": lambda m, calls: m.get_transitions("flip")[0].add_callback(
        "before", _recorder(calls, "before")
    ),
    "before_state_change": lambda m, calls: setattr(
        m, "before_state_change", [_recorder(calls, "before_state_change")]
    ),
    "after_state_change": lambda m, calls: setattr(
        m, "after_state_change", [_recorder(calls, "after_state_change")]
    ),
    "on_enter": lambda m, calls: m.get_state(Light.ON).add_callback(
        "enter", _recorder(calls, "on_enter")
    ),
    "on_exit": lambda m, calls: m.get_state(Light.OFF).add_callback(
        "exit", _recorder(calls, "on_exit")
    ),
    "final": _final,
    "after by name": lambda m, calls: m.get_transitions("flip")[0].add_callback(
        "after", "named_after"
    ),
    "send_event off": lambda m, calls: setattr(m, "send_event", False),
    "prepare_event": lambda m, calls: setattr(
        m, "prepare_event", [_recorder(calls, "prepare_event")]
    ),
    "finalize_event": lambda m, calls: setattr(
        m, "finalize_event", [_recorder(calls, "finalize_event")]
    ),
    "on_exception": _on_exception,
}


def _build(kind: type[Machine], calls: list[str], model: Model, queued: bool = True) -> Machine:
    machine = kind(
        model=model,
        states=list(Light),
        initial=Light.OFF,
        auto_transitions=False,
        send_event=True,
        queued=queued,
    )

    def allowed(*args: Any, **kwargs: Any) -> bool:
        calls.append(f"condition: {_seen(args)}")
        return model.allowed

    machine.add_transition(
        "flip", Light.OFF, Light.ON, conditions=[allowed], after=[_recorder(calls, "after flip")]
    )
    machine.add_transition("flip", Light.ON, Light.OFF, after=[_recorder(calls, "after back")])
    machine.add_transition("tap", [Light.OFF, Light.ON], None, after=[_recorder(calls, "tap")])
    machine.add_transition(
        "smash", [Light.OFF, Light.ON], Light.BROKEN, after=[_recorder(calls, "after smash")]
    )
    return machine


def _run(
    kind: type[Machine], configuration: str, queued: bool = True
) -> tuple[list[Any], list[str]]:
    """What a machine of ``kind`` does for a fixed series of triggers: each trigger's result
    or error with the state after it, and the callbacks it called with what they were given
    (a queued machine's trigger always says True; an unqueued one's says whether it moved)."""
    calls: list[str] = []
    model = Model(calls)
    machine = _build(kind, calls, model, queued)
    CONFIGURATIONS[configuration](machine, calls)
    outcomes: list[Any] = []
    for trigger, allowed in [
        ("flip", False),  # the condition refuses: no change
        ("flip", True),
        ("tap", True),  # an internal transition
        ("flip", True),
        ("smash", True),
        ("flip", True),  # nothing goes from broken
    ]:
        model.allowed = allowed
        try:
            outcomes.append(machine.events[trigger].trigger(model))
        except (MachineError, RuntimeError) as exc:
            outcomes.append(f"{type(exc).__name__}: {exc}")
        outcomes.append(model.state)  # type: ignore[attr-defined]  # transitions adds it
    return outcomes, calls


def _logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (r.levelname, re.sub(r" at 0x[0-9a-f]+|@\d+", "", r.getMessage()))
        for r in caplog.records
        if r.name.startswith("transitions")
    ]


# -- the same as a plain machine --------------------------------------------------------------


@pytest.mark.parametrize("queued", [True, False], ids=["queued", "unqueued"])
@pytest.mark.parametrize("configuration", list(CONFIGURATIONS))
@pytest.mark.parametrize("level", ["DEBUG", "INFO", "WARNING"])
def test_a_lean_machine_does_and_logs_what_a_plain_one_does(
    configuration: str, level: str, queued: bool, caplog: pytest.LogCaptureFixture
) -> None:
    seen = []
    for kind in (Machine, LeanMachine):
        caplog.clear()
        with caplog.at_level(level, logger="transitions"):
            outcome = _run(kind, configuration, queued)
        seen.append((outcome, _logged(caplog)))
    assert seen[0] == seen[1]
    (outcomes, calls), lines = seen[1]
    assert outcomes[-1] is Light.BROKEN or any(c.startswith("on_exception") for c in calls)
    assert bool(lines) == (level != "WARNING")  # transitions logs at INFO and DEBUG only


# -- and the lean path taken when nothing needs transitions' own steps ------------------------


def _count_own_steps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """transitions' own steps the lean classes override or skip, counted as they run."""
    ran: list[str] = []
    for cls, name in (
        (Event, "_trigger"),
        (Transition, "execute"),
        (Transition, "_change_state"),
        (State, "enter"),
        (State, "exit"),
    ):
        original = getattr(cls, name)

        def counted(
            self: Any, event_data: Any, _original: Any = original, _name: str = name
        ) -> Any:
            ran.append(_name)
            return _original(self, event_data)

        monkeypatch.setattr(cls, name, counted)
    return ran


def test_with_nothing_registered_and_the_log_off_transitions_own_steps_are_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran = _count_own_steps(monkeypatch)
    outcomes, calls = _run(LeanMachine, "nothing")
    assert ran == ["_trigger"]  # only the last flip's refusal: transitions' own, with its text
    assert calls == [
        "condition: event in OFF, ('OFF', 'ON')",  # refused
        "condition: event in OFF, ('OFF', 'ON')",
        "after flip: event in ON, ('OFF', 'ON')",
        "tap: event in ON, ('ON', None)",
        "after back: event in OFF, ('ON', 'OFF')",
        "after smash: event in BROKEN, ('OFF', 'BROKEN')",
    ]
    assert outcomes[-2:] == [
        'MachineError: "Can\'t trigger event flip from state BROKEN!"',
        Light.BROKEN,
    ]


@pytest.mark.parametrize("configuration", [c for c in CONFIGURATIONS if c != "nothing"])
def test_anything_registered_that_the_lean_path_skips_runs_through_transitions_own_steps(
    configuration: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = _count_own_steps(monkeypatch)
    _run(LeanMachine, configuration)
    if configuration in ("after by name", "send_event off"):
        return  # steps the lean path takes itself; the comparison above holds them
    assert ran != []


def test_transitions_log_on_makes_the_lean_machine_take_transitions_own_steps(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ran = _count_own_steps(monkeypatch)
    with caplog.at_level("INFO", logger="transitions"):
        _run(LeanMachine, "nothing")
    assert {"_trigger", "execute", "_change_state", "enter", "exit"} <= set(ran)


# -- states by name or by member --------------------------------------------------------------


def test_a_state_is_found_by_its_name_or_its_enum_member_in_one_dict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    machine = _build(LeanMachine, [], Model([]))
    plain_get_state = Machine.get_state
    monkeypatch.setattr(Machine, "get_state", lambda *args: pytest.fail("not in the dict"))
    for state in Light:
        assert (
            machine.get_state(state) is machine.get_state(state.name) is machine.states[state.name]
        )
    monkeypatch.setattr(Machine, "get_state", plain_get_state)
    with pytest.raises(ValueError, match="State 'dimmed' is not a registered state"):
        machine.get_state("dimmed")  # transitions' own error


def test_states_added_later_are_found_too_with_their_options() -> None:
    calls: list[str] = []
    machine = _build(LeanMachine, calls, Model(calls))
    machine.add_states(["dimmed"], on_enter=[_recorder(calls, "dimmed")])
    assert machine.get_state("dimmed") is machine.states["dimmed"]
    machine.add_transition("dim", Light.OFF, "dimmed")
    machine.events["dim"].trigger(machine.models[0])
    assert calls == ["dimmed: event in dimmed, ('OFF', 'dimmed')"]


def test_a_machine_with_no_states_yet_finds_none() -> None:
    machine = LeanMachine(model=None, states=None, initial=None)
    with pytest.raises(ValueError, match="not a registered state"):
        machine.get_state("anything")


# -- which transitions it fits ------------------------------------------------------------------


def test_the_lean_classes_fit_transitions_from_0_9_1_on() -> None:
    installed = tuple(int(part) for part in version("transitions").split(".")[:3])
    assert lean_transitions.fits() == (installed >= (0, 9, 1))


def test_a_transitions_without_the_overridden_internals_does_not_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def old_trigger(self: Any, model: Any, *args: Any, **kwargs: Any) -> bool:  # 0.7 - 0.8
        return False

    class OldState:  # before 0.9.1: no final
        def __init__(self, name: str, on_enter: Any = None, on_exit: Any = None) -> None:
            pass

    assert lean_transitions.fits()
    with monkeypatch.context() as patch:
        patch.setattr(Event, "_trigger", old_trigger)
        assert not lean_transitions.fits()
    with monkeypatch.context() as patch:
        patch.setattr(lean_transitions, "State", OldState)
        assert not lean_transitions.fits()
