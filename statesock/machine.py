"""The connection state machine: every rule about states lives in this module.

Theory of operation
-------------------
A client's lifecycle is one of six states. Nothing assigns a state directly: the connection
core (:mod:`statesock.core`, the only owner of a client's machine) *fires triggers* at a
:class:`ConnectionMachine`, which looks the trigger up in :data:`RULES` and either applies the
first rule whose guard accepts it or raises :class:`InvalidTransition` with the state left
unchanged. Users read the state and receive records; they cannot fire triggers.

::

    initialized ─connect─► connecting ─opened─► authenticating ─authenticated─► connected
                               │                      │                             │
                               └──────── disconnect(source) ──► disconnecting ◄─────┘
                               └──────── closed(source) ─┐           │ closed
                                                         ▼           ▼
                                                      disconnected ◄─┘ ─connect─► connecting

A rule has one of three outcomes:

* a *change*: the state moves; a :class:`StateChange` is recorded;
* an *internal transition*: the state stays but something about it changes (a pong updates
  the health info; a user disconnect replaces the stored source); an
  :class:`InternalTransition` is recorded;
* a *no-op*: the trigger is legal and means nothing now (``connect`` while already active);
  nothing is recorded.

``disconnecting`` and ``disconnected`` always carry the disconnection source; no other state
does. A user's disconnect sticks: once stored, no other source replaces it, and a reconnect
(``connect(reconnect=True)``, what the core fires when recovery decides to reconnect) is
refused until the user connects again. ``connect`` while ``disconnecting`` is remembered and
fired as soon as the close completes.

Firing a trigger *returns* its records (a list: empty for a no-op, two when a close completes
and the connect remembered while disconnecting follows), each with a gap-free ``seq``. The
machine calls nobody: it has no listeners, and whoever fires a trigger delivers the records
(websockets' ``events_received()`` model). The machine is pure and synchronous: it imports no
asyncio and never reads the clock itself (its owner passes a ``clock`` callable that returns
the time of the input being handled).

What lives outside the table, in the core, is everything that is not a state rule: which
socket is current (so a late event from an old socket is dropped before it could become a
trigger), which trigger an input means in the current state (a health-check answer is the
ack in authenticating and a pong in connected), the deadlines and the ping cadence that fire
``disconnect``, and recovery's decision to fire ``connect(reconnect=True)``.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from transitions import EventData, Machine, MachineError

from .events import HealthCheckInfo
from .exceptions import InvalidTransition
from .lean_transitions import LeanMachine, fits
from .sources import DisconnectionSource, UserInitiated
from .states import ConnectionState, Trigger

__all__ = [
    "ACTIVE_STATES",
    "RECONNECT_DETAIL",
    "RULES",
    "USER_CONNECT_DETAIL",
    "ConnectionMachine",
    "ConnectionSnapshot",
    "ConnectionState",
    "InternalTransition",
    "Record",
    "Rule",
    "StateChange",
    "Trigger",
]


_S = ConnectionState
_ACTIVE = (_S.CONNECTING, _S.AUTHENTICATING, _S.CONNECTED)
_DOWN = (_S.DISCONNECTING, _S.DISCONNECTED)
ACTIVE_STATES = frozenset(_ACTIVE)


class Outcome(enum.Enum):
    CHANGE = "change"
    INTERNAL = "internal"
    NOOP = "noop"


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table. ``guard`` names a predicate of :class:`_Guards`."""

    trigger: Trigger
    sources: tuple[ConnectionState, ...]
    dest: ConnectionState | None
    outcome: Outcome
    guard: str | None


# The whole behaviour. For each (trigger, state) the first row whose guard passes applies;
# when none does, the trigger is refused.
_C, _I, _N = Outcome.CHANGE, Outcome.INTERNAL, Outcome.NOOP
# fmt: off
T = Trigger
RULES: tuple[Rule, ...] = (
    #    trigger          from                               to                 kindguard
    # user connect(), or a reconnect unless the user disconnected
    Rule(T.CONNECT,       (_S.INITIALIZED, _S.DISCONNECTED), _S.CONNECTING,     _C, "_can_connect"),
    # already active: one socket at a time
    Rule(T.CONNECT,       _ACTIVE,                           None,              _N, None),
    # remembered: connect once the close completes
    Rule(T.CONNECT,       (_S.DISCONNECTING,),               None,              _N, "_can_connect"),
    # WebSocket handshake done
    Rule(T.OPENED,        (_S.CONNECTING,),                  _S.AUTHENTICATING, _C, None),
    # server ack, or at once without an ack step
    Rule(T.AUTHENTICATED, (_S.AUTHENTICATING,),              _S.CONNECTED,      _C, None),
    # health info updated
    Rule(T.PONG,          (_S.CONNECTED,),                   None,              _I, None),
    # user, ping controller, recovery, timeouts
    Rule(T.DISCONNECT,    _ACTIVE,                           _S.DISCONNECTING,  _C, None),
    # a user disconnect replaces the stored source
    Rule(T.DISCONNECT,    _DOWN,                             None,              _I, "_user_wins"),
    # already going down: a user source stays, otherwise the first source stays
    Rule(T.DISCONNECT,    _DOWN,                             None,              _N, None),
    # a user disconnect before any connect does nothing
    Rule(T.DISCONNECT,    (_S.INITIALIZED,),                 None,              _N, "_is_user"),
    # socket closed or connect failed
    Rule(T.CLOSED,        _ACTIVE,                           _S.DISCONNECTED,   _C, "_has_source"),
    # close completed; keeps the stored source
    Rule(T.CLOSED,        (_S.DISCONNECTING,),               _S.DISCONNECTED,   _C, None),
)
del T
# fmt: on


def _first_rules(trigger: Trigger) -> dict[ConnectionState, Rule]:
    """For each state, the first rule of ``trigger`` that names it (the one tried first)."""
    first: dict[ConnectionState, Rule] = {}
    for rule in RULES:
        if rule.trigger is trigger:
            for state in rule.sources:
                first.setdefault(state, rule)
    return first


# The states where a pong is an internal transition that no guard can refuse: there
# ConnectionMachine.pong makes the record itself (read off the table, never written twice).
_PONG_UPDATES_HEALTH = frozenset(
    state
    for state, rule in _first_rules(Trigger.PONG).items()
    if rule.outcome is Outcome.INTERNAL and rule.guard is None
)

_USER_ONLY = "the user disconnected; only the user's connect() may follow"
_NEEDS_SOURCE = "closed from an active state needs a source"
_REFUSALS: dict[tuple[Trigger, ConnectionState], str] = {
    (Trigger.CONNECT, _S.DISCONNECTED): _USER_ONLY,
    (Trigger.CONNECT, _S.DISCONNECTING): _USER_ONLY,
    (Trigger.CLOSED, _S.CONNECTING): _NEEDS_SOURCE,
    (Trigger.CLOSED, _S.AUTHENTICATING): _NEEDS_SOURCE,
    (Trigger.CLOSED, _S.CONNECTED): _NEEDS_SOURCE,
    (Trigger.DISCONNECT, _S.INITIALIZED): "nothing to disconnect before the first connect",
}


@dataclass(frozen=True, slots=True)
class StateChange:
    """The state moved from ``previous`` to ``current``.

    ``source`` is the disconnection source of ``current`` (None unless it is disconnecting or
    disconnected); ``in_state`` is how long the client was in ``previous``, in seconds;
    ``reconnect`` is True for a connect that recovery fired (False for the user's).
    """

    previous: ConnectionState
    current: ConnectionState
    trigger: Trigger
    source: DisconnectionSource | None
    seq: int
    at: float
    in_state: float
    detail: str = ""
    reconnect: bool = False


@dataclass(frozen=True, slots=True)
class InternalTransition:
    """The state stayed ``state`` but its data changed (health info or stored source)."""

    state: ConnectionState
    trigger: Trigger
    source: DisconnectionSource | None
    previous_source: DisconnectionSource | None
    seq: int
    at: float
    in_state: float
    detail: str = ""


Record = StateChange | InternalTransition

# ``StateChange.detail`` of a connect says who fired it.
RECONNECT_DETAIL = "reconnect"
USER_CONNECT_DETAIL = "user connect"
Listener = Callable[[Record], None]
"""What the shell hands each record to (``client.add_listener``); the machine calls nobody."""


@dataclass(frozen=True, slots=True)
class ConnectionSnapshot:
    """What ``client.state`` returns: immutable, safe to keep."""

    state: ConnectionState
    source: DisconnectionSource | None
    health: HealthCheckInfo


def _run_rule(rule: Rule) -> Callable[[EventData], None]:
    def effect(event: EventData) -> None:
        model = cast(ConnectionMachine, event.model)
        model._on_rule(rule, event)

    return effect


_per_thread = threading.local()


def _shared_machine() -> Machine:
    """The one transitions.Machine of this thread, shared by every ConnectionMachine.

    A machine per client would cost about 25 KiB each (transitions binds a dozen methods
    onto every model); sharing it costs nothing per client. Each ConnectionMachine is a
    model that is never registered with the machine (registering would keep it alive
    forever): its triggers go straight to the machine's events. One machine per thread,
    because a transitions queue must not be shared between threads.
    """
    machine: Machine | None = getattr(_per_thread, "machine", None)
    if machine is None:
        machine = _per_thread.machine = _build_machine()
    return machine


def _build_machine(kind: type[Machine] | None = None) -> Machine:
    """A transitions machine of ``kind`` that applies :data:`RULES`: by default the lean one
    (:mod:`statesock.lean_transitions`) where it fits the installed transitions (tests build
    a plain ``transitions.Machine`` too, to hold the lean one to it)."""
    if kind is None:
        kind = LeanMachine if fits() else Machine
    machine = kind(
        model=None,
        states=list(ConnectionState),
        initial=ConnectionState.INITIALIZED,
        auto_transitions=False,
        send_event=True,
        queued=True,
        ignore_invalid_triggers=False,
        model_attribute="_state",
    )
    for rule in RULES:
        machine.add_transition(
            trigger=rule.trigger.value,
            source=list(rule.sources),
            dest=rule.dest,
            conditions=[rule.guard] if rule.guard else None,
            after=[_run_rule(rule)],
        )
    return machine


class ConnectionMachine:
    """One client's state, disconnection source and health info, changed only by triggers.

    It is the *model* of the thread's shared transitions.Machine: ``_state`` is the model
    attribute, and the ``_can_connect`` / ``_user_wins`` / ``_is_user`` / ``_has_source``
    predicates are the rules' guards.
    """

    __slots__ = (
        "__weakref__",
        "_applied",
        "_clock",
        "_connect_after_close",
        "_entered_at",
        "_health",
        "_matched",
        "_pending_reconnect",
        "_seq",
        "_source",
        "_state",
        "_transitions",
    )

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._seq = 0
        self._source: DisconnectionSource | None = None
        self._health = HealthCheckInfo()
        self._connect_after_close = False
        self._pending_reconnect = False
        self._entered_at = clock()
        self._applied: list[Record] = []
        self._matched = False
        self._state = ConnectionState.INITIALIZED
        # This thread's shared transitions.Machine, which applies RULES (a client belongs to
        # its loop's thread).
        self._transitions = _shared_machine()

    def start_clock(self, at: float) -> None:
        """Count the time in ``initialized`` from ``at`` (the owner's clock may only start
        running after the machine was made); has no effect once a record exists."""
        if self._seq == 0:
            self._entered_at = at

    # -- guards (named in RULES) -------------------------------------------------------

    def _can_connect(self, event: EventData) -> bool:
        reconnect = bool(event.kwargs.get("reconnect", False))
        return not (reconnect and isinstance(self._source, UserInitiated))

    def _user_wins(self, event: EventData) -> bool:
        source = event.kwargs.get("source")
        return isinstance(source, UserInitiated) and not isinstance(self._source, UserInitiated)

    def _is_user(self, event: EventData) -> bool:
        return isinstance(event.kwargs.get("source"), UserInitiated)

    def _has_source(self, event: EventData) -> bool:
        return isinstance(event.kwargs.get("source"), DisconnectionSource)

    # -- reading -------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def source(self) -> DisconnectionSource | None:
        return self._source

    @property
    def health(self) -> HealthCheckInfo:
        return self._health

    @property
    def connect_pending(self) -> bool:
        """A ``connect`` arrived while disconnecting and will fire when the close completes."""
        return self._connect_after_close

    @property
    def reconnect_allowed(self) -> bool:
        """False while a user disconnect is stored: recovery must not fire ``connect``."""
        return not isinstance(self._source, UserInitiated)

    def snapshot(self) -> ConnectionSnapshot:
        return ConnectionSnapshot(self.state, self._source, self._health)

    # -- triggers ------------------------------------------------------------------------

    def connect(self, *, reconnect: bool = False) -> list[Record]:
        """User connect (``reconnect=False``) or recovery's reconnect (``reconnect=True``)."""
        return self.fire(Trigger.CONNECT, reconnect=reconnect)

    def opened(self) -> list[Record]:
        return self.fire(Trigger.OPENED)

    def authenticated(self, health: HealthCheckInfo | None = None) -> list[Record]:
        return self.fire(Trigger.AUTHENTICATED, health=health)

    def pong(self, health: HealthCheckInfo) -> list[Record]:
        """The hot path (one per health check). Where :data:`RULES` make a pong an unguarded
        internal transition (connected), its record is made here: transitions' dispatch (an
        event object, its queue, the rule's callback) does nothing a pong needs. Anywhere
        else it goes through the table like every trigger, and is refused there."""
        state = self._state
        if state not in _PONG_UPDATES_HEALTH:
            return self._apply(Trigger.PONG, {"health": health})
        now = self._clock()
        self._seq += 1
        self._health = health
        source = self._source
        return [
            InternalTransition(
                state, Trigger.PONG, source, source, self._seq, now,
                max(now - self._entered_at, 0.0), _round_trip(health),
            )
        ]  # fmt: skip

    def disconnect(self, source: DisconnectionSource) -> list[Record]:
        return self.fire(Trigger.DISCONNECT, source=source)

    def closed(self, source: DisconnectionSource | None = None) -> list[Record]:
        return self.fire(Trigger.CLOSED, source=source)

    def fire(self, trigger: Trigger, **kwargs: Any) -> list[Record]:
        """Apply ``trigger`` now and return its records, in order (empty for a no-op).

        Raises :class:`InvalidTransition` (state unchanged) when no rule accepts it.
        """
        source = kwargs.get("source")
        if source is not None and not isinstance(source, DisconnectionSource):
            raise TypeError(f"source must be a DisconnectionSource, not {type(source).__name__}")
        if trigger is Trigger.DISCONNECT and source is None:
            raise TypeError("disconnect needs a source")
        records = self._apply(trigger, kwargs)
        if self._connect_after_close and self.state is ConnectionState.DISCONNECTED:
            self._connect_after_close = False
            records += self._apply(Trigger.CONNECT, {"reconnect": self._pending_reconnect})
        return records

    # -- internals -----------------------------------------------------------------------

    def _apply(self, trigger: Trigger, kwargs: dict[str, Any]) -> list[Record]:
        state = self.state
        self._applied = []
        self._matched = False
        try:
            # A StrEnum member hashes and compares as its value: no .value lookup per call.
            self._transitions.events[trigger].trigger(self, **kwargs)
        except MachineError:
            raise InvalidTransition(trigger.value, state.value, "no rule for it") from None
        if not self._matched:
            why = _REFUSALS.get((trigger, state), "no rule accepts it")
            raise InvalidTransition(trigger.value, state.value, why)
        return self._applied

    def _on_rule(self, rule: Rule, event: EventData) -> None:
        """The effect of the rule transitions chose (called from the shared machine)."""
        self._matched = True
        if rule.outcome is Outcome.NOOP:
            if rule.trigger is Trigger.CONNECT and rule.sources == (_S.DISCONNECTING,):
                # A user's connect wins over a reconnect asked for in the same wait.
                reconnect = bool(event.kwargs.get("reconnect", False))
                if self._connect_after_close:
                    reconnect = reconnect and self._pending_reconnect
                self._connect_after_close = True
                self._pending_reconnect = reconnect
            elif rule.trigger is Trigger.DISCONNECT and isinstance(
                event.kwargs.get("source"), UserInitiated
            ):
                self._connect_after_close = False
            return
        self._applied.append(self._record(rule, event))

    def _record(self, rule: Rule, event: EventData) -> Record:
        now = self._clock()
        in_state = now - self._entered_at
        in_state = max(in_state, 0.0)
        kwargs = event.kwargs
        trigger = rule.trigger
        self._seq += 1
        given = kwargs.get("source")
        previous_source = self._source
        if trigger is Trigger.CONNECT:
            self._source = None
        elif trigger is Trigger.DISCONNECT or (trigger is Trigger.CLOSED and self._source is None):
            # The rules' guards already decided that ``given`` may be stored; a close that
            # completes a disconnect keeps the source the disconnect stored.
            self._source = given
        health = kwargs.get("health")
        if isinstance(health, HealthCheckInfo):
            self._health = health
        if trigger is Trigger.DISCONNECT and isinstance(given, UserInitiated):
            self._connect_after_close = False
        detail = _detail(trigger, kwargs, self._source, self._health)
        if rule.outcome is Outcome.INTERNAL:
            return InternalTransition(
                self.state, trigger, self._source, previous_source, self._seq, now, in_state,
                detail,
            )  # fmt: skip
        previous = rule.sources[0] if len(rule.sources) == 1 else _previous(event)
        self._entered_at = now
        return StateChange(
            previous, self.state, trigger, self._source, self._seq, now, in_state, detail,
            trigger is Trigger.CONNECT and bool(kwargs.get("reconnect")),
        )  # fmt: skip


def _previous(event: EventData) -> ConnectionState:
    assert event.transition is not None
    state = event.transition.source
    return state if isinstance(state, ConnectionState) else ConnectionState[state]


def _detail(
    trigger: Trigger,
    kwargs: dict[str, Any],
    source: DisconnectionSource | None,
    health: HealthCheckInfo,
) -> str:
    if trigger is Trigger.CONNECT:
        return RECONNECT_DETAIL if kwargs.get("reconnect") else USER_CONNECT_DETAIL
    if trigger in (Trigger.DISCONNECT, Trigger.CLOSED) and source is not None:
        return source.close_reason
    if trigger in (Trigger.AUTHENTICATED, Trigger.PONG):
        return _round_trip(health)
    return ""


def _round_trip(health: HealthCheckInfo) -> str:
    if health.round_trip is None:
        return ""
    return f"round trip {health.round_trip * 1000:.1f} ms"
