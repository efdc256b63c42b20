"""A ``transitions.Machine`` without the steps that do nothing for statesock's table.

Theory of operation
-------------------
transitions takes every trigger through a dozen callback lists (``prepare_event``,
``prepare``, conditions, ``before_state_change``, ``before``, ``on_exit``, ``on_enter``,
``after``, ``after_state_change``, ``finalize_event``, ``on_final``) and as many log calls.
statesock's table (:mod:`statesock.machine`) registers one kind of callback, each rule's
``after`` effect, with its guard as the condition; every other list is empty, and
transitions' log is usually off. Walking the empty lists and building log calls that go
nowhere was a third of a trigger's cost, and connecting takes three triggers.

:class:`LeanMachine` is ``transitions.Machine`` with its own Event, State and Transition
classes, plugged in through transitions' hooks for that (``event_cls``, ``state_cls``,
``transition_cls``). They take transitions' steps in transitions' order and skip only the
lists that are empty, while transitions' log is off. When any list the lean path skips is not
empty, or that log is on (INFO or DEBUG, where it would say something), they are
transitions' own code, so records and log lines stay a plain machine's (a test holds them
to one, on whatever transitions is installed).

The classes override transitions' internals as 0.9.1 and later have them
(``Event._trigger(event_data)``, ``State.final``). :func:`fits` says whether the installed
transitions has them; :mod:`statesock.machine` builds a plain ``Machine`` where it does not
(the floor is 0.7.2).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from transitions import Event, EventData, Machine, State, Transition

__all__ = ["LeanMachine", "fits"]

# transitions' own log: while it is off, the lean path logs nothing it would have logged.
_TRANSITIONS_LOG = logging.getLogger("transitions.core")


def fits() -> bool:
    """Whether the installed transitions has the internals the lean classes override."""
    trigger = list(inspect.signature(Event._trigger).parameters)
    return trigger == ["self", "event_data"] and "final" in inspect.signature(State).parameters


def _log_on() -> bool:
    return _TRANSITIONS_LOG.isEnabledFor(logging.INFO)


class _LeanState(State):
    """Entering or leaving a state with no callbacks calls nothing and logs nothing."""

    def enter(self, event_data: EventData) -> None:
        if self.on_enter or _log_on():
            super().enter(event_data)

    def exit(self, event_data: EventData) -> None:
        if self.on_exit or _log_on():
            super().exit(event_data)


class _LeanTransition(Transition):
    """Conditions, the state change and the ``after`` callbacks, in transitions' order."""

    def execute(self, event_data: EventData) -> bool:
        machine = event_data.machine
        if (
            self.prepare
            or self.before
            or machine.before_state_change
            or machine.after_state_change
            or _log_on()
        ):
            return bool(super().execute(event_data))
        for condition in self.conditions:
            if not condition.check(event_data):
                return False
        if self.dest:  # None: an internal transition, no state change
            dest = machine.get_state(self.dest)
            if machine.get_state(self.source).on_exit or dest.on_enter or dest.final:
                self._change_state(event_data)
            else:  # what _change_state comes to when leaving and entering do nothing
                machine.set_state(dest, event_data.model)
                event_data.state = dest
        for func in self.after:
            if isinstance(func, str) or not machine.send_event:  # resolved by Machine.callback
                machine.callback(func, event_data)
            else:  # what Machine.callback comes to for a callable, with send_event
                func(event_data)
        return True


class _LeanEvent(Event):
    """The current state's transitions tried in order until one applies."""

    def _trigger(self, event_data: EventData) -> bool:
        machine = self.machine
        state = machine.get_model_state(event_data.model)
        candidates = self.transitions.get(state.name)
        if (
            candidates is None  # nothing from this state: transitions' own refusal
            or machine.prepare_event
            or machine.finalize_event
            or machine.on_exception
            or _log_on()
        ):
            return bool(super()._trigger(event_data))
        event_data.state = state
        for transition in candidates:
            event_data.transition = transition
            if transition.execute(event_data):
                event_data.result = True
                break
        return bool(event_data.result)


class LeanMachine(Machine):
    """``transitions.Machine`` with the lean classes (see the module docstring), and its states
    looked up in one dict by name or by enum member (transitions converts a member to its
    name on every look-up)."""

    event_cls = _LeanEvent
    state_cls = _LeanState
    transition_cls = _LeanTransition

    # Until the first states are added (read-only: each machine gets its own dict).
    _lookup: Mapping[Any, State] = MappingProxyType({})

    def add_states(self, *args: Any, **kwargs: Any) -> None:
        super().add_states(*args, **kwargs)
        lookup: dict[Any, State] = {}
        for name, state in self.states.items():
            lookup[name] = state
            lookup[state.value] = state  # the enum member, for an enum state
        self._lookup = lookup

    def get_state(self, state: Any) -> State:
        found = self._lookup.get(state)
        return found if found is not None else super().get_state(state)
