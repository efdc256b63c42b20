"""The machine's rules, one test per row of DESIGN.md's table and per edge rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import pytest

from statesock import machine as machine_module
from statesock.events import HealthCheckInfo, ServerErrorEvent
from statesock.exceptions import HandshakeRejected, InvalidTransition
from statesock.machine import (
    ConnectionMachine,
    ConnectionSnapshot,
    ConnectionState,
    InternalTransition,
    Record,
    StateChange,
    Trigger,
)
from statesock.sources import (
    DisconnectionSource,
    NoPongReceived,
    ServerInitiated,
    SystemInitiated,
    Timeout,
    UserInitiated,
)
from tests.support import Recording

S = ConnectionState


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[Recording, list[Record], Clock]:
    clock = Clock()
    machine = Recording(clock)
    return machine, machine.records, clock


def drive_to(machine: ConnectionMachine, state: ConnectionState) -> None:
    paths: dict[ConnectionState, list[Callable[[], object]]] = {
        S.INITIALIZED: [],
        S.CONNECTING: [machine.connect],
        S.AUTHENTICATING: [machine.connect, machine.opened],
        S.CONNECTED: [machine.connect, machine.opened, machine.authenticated],
        S.DISCONNECTING: [
            machine.connect,
            machine.opened,
            lambda: machine.disconnect(ServerInitiated(1011)),
        ],
        S.DISCONNECTED: [machine.connect, lambda: machine.closed(ServerInitiated(1006))],
    }
    for step in paths[state]:
        step()
    assert machine.state is state


def test_happy_path_records_each_change_in_order() -> None:
    machine, records, clock = make()
    machine.connect()
    clock.now += 0.5
    machine.opened()
    clock.now += 0.25
    machine.authenticated(HealthCheckInfo(connection_id="c-1"))
    assert [(r.previous, r.current, r.trigger) for r in records if isinstance(r, StateChange)] == [
        (S.INITIALIZED, S.CONNECTING, Trigger.CONNECT),
        (S.CONNECTING, S.AUTHENTICATING, Trigger.OPENED),
        (S.AUTHENTICATING, S.CONNECTED, Trigger.AUTHENTICATED),
    ]
    assert [r.seq for r in records] == [1, 2, 3]
    assert [r.in_state for r in records] == [0.0, 0.5, 0.25]
    assert machine.health.connection_id == "c-1"
    assert machine.source is None


@pytest.mark.parametrize("state", [S.CONNECTING, S.AUTHENTICATING, S.CONNECTED])
def test_disconnect_from_active_state_stores_source(state: ConnectionState) -> None:
    machine, _records, _ = make()
    drive_to(machine, state)
    [record] = machine.disconnect(NoPongReceived())
    assert isinstance(record, StateChange)
    assert (record.previous, record.current) == (state, S.DISCONNECTING)
    assert machine.source == NoPongReceived()
    machine.closed()
    assert machine.state is S.DISCONNECTED
    assert machine.source == NoPongReceived()


@pytest.mark.parametrize("state", [S.CONNECTING, S.AUTHENTICATING, S.CONNECTED])
def test_closed_from_active_state_goes_straight_to_disconnected(state: ConnectionState) -> None:
    machine, _, _ = make()
    drive_to(machine, state)
    machine.closed(ServerInitiated(1011, "overloaded"))
    assert machine.state is S.DISCONNECTED
    assert machine.source == ServerInitiated(1011, "overloaded")


@pytest.mark.parametrize("state", [S.CONNECTING, S.AUTHENTICATING, S.CONNECTED])
def test_closed_without_source_from_active_state_is_refused(state: ConnectionState) -> None:
    machine, _, _ = make()
    drive_to(machine, state)
    with pytest.raises(InvalidTransition, match="needs a source"):
        machine.closed()
    assert machine.state is state


@pytest.mark.parametrize("state", [S.CONNECTING, S.AUTHENTICATING, S.CONNECTED])
def test_connect_while_active_is_a_noop(state: ConnectionState) -> None:
    machine, records, _ = make()
    drive_to(machine, state)
    before = len(records)
    assert machine.connect() == []
    assert machine.connect(reconnect=True) == []
    assert machine.state is state
    assert len(records) == before


def test_connect_while_disconnecting_connects_once_the_close_completes() -> None:
    machine, records, _ = make()
    drive_to(machine, S.DISCONNECTING)
    assert machine.connect() == []
    assert machine.connect_pending
    assert machine.state is S.DISCONNECTING
    machine.closed()
    assert machine.snapshot().state is S.CONNECTING
    assert [(r.previous, r.current) for r in records[-2:] if isinstance(r, StateChange)] == [
        (S.DISCONNECTING, S.DISCONNECTED),
        (S.DISCONNECTED, S.CONNECTING),
    ]
    assert machine.source is None


def test_user_disconnect_cancels_a_remembered_connect() -> None:
    machine, _, _ = make()
    drive_to(machine, S.DISCONNECTING)
    machine.connect()
    machine.disconnect(UserInitiated())
    machine.closed()
    assert machine.state is S.DISCONNECTED
    assert machine.source == UserInitiated()


@pytest.mark.parametrize("state", [S.DISCONNECTING, S.DISCONNECTED])
def test_user_disconnect_replaces_stored_source_as_internal_transition(
    state: ConnectionState,
) -> None:
    machine, records, _ = make()
    drive_to(machine, state)
    old = machine.source
    [record] = machine.disconnect(UserInitiated())
    assert isinstance(record, InternalTransition)
    assert (record.state, record.previous_source, record.source) == (state, old, UserInitiated())
    assert machine.state is state
    assert machine.source == UserInitiated()
    assert records[-1] is record


@pytest.mark.parametrize("state", [S.DISCONNECTING, S.DISCONNECTED])
def test_user_disconnect_sticks_against_later_sources(state: ConnectionState) -> None:
    machine, records, _ = make()
    drive_to(machine, state)
    machine.disconnect(UserInitiated())
    count = len(records)
    assert machine.disconnect(NoPongReceived()) == []
    assert machine.disconnect(UserInitiated()) == []
    if state is S.DISCONNECTING:
        machine.closed()
    assert machine.source == UserInitiated()
    assert len(records) == count + (1 if state is S.DISCONNECTING else 0)


def test_user_disconnect_during_connect_survives_the_engine_reporting_failure() -> None:
    machine, _, _ = make()
    drive_to(machine, S.CONNECTING)
    machine.disconnect(UserInitiated())
    machine.closed(ServerInitiated(1006))
    assert machine.source == UserInitiated()


def test_first_non_user_source_stands_while_going_down() -> None:
    machine, _, _ = make()
    drive_to(machine, S.CONNECTED)
    machine.disconnect(NoPongReceived())
    assert machine.disconnect(Timeout(S.CONNECTED)) == []
    machine.closed(ServerInitiated(1006))
    assert machine.source == NoPongReceived()


def test_reconnect_after_user_disconnect_is_refused_until_user_connects() -> None:
    machine, _, _ = make()
    drive_to(machine, S.CONNECTED)
    machine.disconnect(UserInitiated())
    machine.closed()
    assert not machine.reconnect_allowed
    with pytest.raises(InvalidTransition) as info:
        machine.connect(reconnect=True)
    assert info.value.trigger == "connect"
    assert info.value.state == "disconnected"
    assert "the user disconnected" in str(info.value)
    assert machine.state is S.DISCONNECTED
    machine.connect()
    assert machine.snapshot().state is S.CONNECTING
    assert machine.source is None
    assert machine.reconnect_allowed


def test_reconnect_after_other_sources_is_allowed() -> None:
    machine, _records, _ = make()
    drive_to(machine, S.DISCONNECTED)
    [record] = machine.connect(reconnect=True)
    assert isinstance(record, StateChange)
    assert record.detail == "reconnect"
    assert machine.state is S.CONNECTING


def test_user_disconnect_before_any_connect_is_a_noop() -> None:
    machine, records, _ = make()
    assert machine.disconnect(UserInitiated()) == []
    assert machine.state is S.INITIALIZED
    assert machine.source is None
    assert records == []
    with pytest.raises(InvalidTransition, match="nothing to disconnect"):
        machine.disconnect(NoPongReceived())


def test_pong_is_internal_and_updates_health() -> None:
    machine, _records, clock = make()
    drive_to(machine, S.CONNECTED)
    clock.now += 25
    [record] = machine.pong(HealthCheckInfo("c-9", round_trip=0.012, last_pong_at=clock.now))
    assert isinstance(record, InternalTransition)
    assert record.state is S.CONNECTED
    assert record.detail == "round trip 12.0 ms"
    assert machine.snapshot().health.round_trip == 0.012
    assert machine.state is S.CONNECTED


def test_a_pong_records_what_the_table_would_without_transitions_dispatch() -> None:
    """pong() makes its record itself where the table makes a pong an unguarded internal
    transition; fired through the table (transitions' dispatch), the record is the same."""
    health = HealthCheckInfo("c-9", round_trip=0.012, last_pong_at=30.0, pongs=4)
    fast, _, fast_clock = make()
    table, _, table_clock = make()
    for machine, clock in ((fast, fast_clock), (table, table_clock)):
        drive_to(machine, S.CONNECTED)
        clock.now += 25
    [by_pong] = fast.pong(health)
    [by_table] = table.fire(Trigger.PONG, health=health)
    assert by_pong == by_table
    assert fast.snapshot() == table.snapshot()
    assert {S.CONNECTED} == machine_module._PONG_UPDATES_HEALTH


@pytest.mark.parametrize(("elapsed", "in_state"), [(0.25, 0.25), (-0.5, 0.0)])
def test_a_pong_says_how_long_the_state_has_lasted_from_its_first_instant(
    elapsed: float, in_state: float
) -> None:
    """A pong's in_state is the time since connected was entered, however short (never
    negative: a clock that stepped back reads 0)."""
    health = HealthCheckInfo("c-9", round_trip=0.001, last_pong_at=0.0, pongs=1)
    fast, _, fast_clock = make()
    table, _, table_clock = make()
    for machine, clock in ((fast, fast_clock), (table, table_clock)):
        drive_to(machine, S.CONNECTED)
        clock.now += elapsed
    [by_pong] = fast.pong(health)
    [by_table] = table.fire(Trigger.PONG, health=health)
    assert by_pong.in_state == by_table.in_state == in_state


def test_the_first_rule_of_a_trigger_is_found_for_each_state_it_names() -> None:
    """What the pong's fast path is derived from: for each state, the first rule of the
    trigger that names it, in the table's order (a later rule for the same state is only
    reached when the first one's guard refuses)."""
    for trigger in Trigger:
        expected: dict[ConnectionState, object] = {}
        for rule in machine_module.RULES:
            if rule.trigger is trigger:
                for state in rule.sources:
                    if state not in expected:
                        expected[state] = rule
        assert machine_module._first_rules(trigger) == expected
    first = machine_module._first_rules(Trigger.DISCONNECT)
    assert len(first) > 1 and all(rule.trigger is Trigger.DISCONNECT for rule in first.values())
    assert set(machine_module._first_rules(Trigger.PONG)) >= {S.CONNECTED}


def test_a_pong_where_the_table_has_no_rule_for_it_is_refused_by_the_table() -> None:
    machine, records, _ = make()
    drive_to(machine, S.AUTHENTICATING)
    before, recorded = machine.snapshot(), len(records)
    with pytest.raises(InvalidTransition, match="pong"):
        machine.pong(HealthCheckInfo("c-1", 0.1, 1.0, 1))
    assert machine.snapshot() == before
    assert len(records) == recorded


INVALID = [
    (Trigger.OPENED, S.INITIALIZED),
    (Trigger.OPENED, S.AUTHENTICATING),
    (Trigger.OPENED, S.CONNECTED),
    (Trigger.OPENED, S.DISCONNECTING),
    (Trigger.OPENED, S.DISCONNECTED),
    (Trigger.AUTHENTICATED, S.INITIALIZED),
    (Trigger.AUTHENTICATED, S.CONNECTING),
    (Trigger.AUTHENTICATED, S.CONNECTED),
    (Trigger.AUTHENTICATED, S.DISCONNECTED),
    (Trigger.PONG, S.AUTHENTICATING),
    (Trigger.PONG, S.DISCONNECTING),
    (Trigger.CLOSED, S.INITIALIZED),
    (Trigger.CLOSED, S.DISCONNECTED),
]


@pytest.mark.parametrize(("trigger", "state"), INVALID)
def test_invalid_trigger_raises_and_leaves_state_unchanged(
    trigger: Trigger, state: ConnectionState
) -> None:
    machine, records, _ = make()
    drive_to(machine, state)
    snapshot, count = machine.snapshot(), len(records)
    kwargs = {"source": ServerInitiated(1006)} if trigger is Trigger.CLOSED else {}
    with pytest.raises(InvalidTransition) as info:
        machine.fire(trigger, **kwargs)
    assert info.value.trigger == trigger.value
    assert info.value.state == state.value
    assert f"{trigger.value!r} is not allowed in state {state.value!r}" in str(info.value)
    assert machine.snapshot() == snapshot
    assert len(records) == count


def test_disconnect_needs_a_real_source() -> None:
    machine, _, _ = make()
    drive_to(machine, S.CONNECTED)
    with pytest.raises(TypeError):
        machine.fire(Trigger.DISCONNECT)
    with pytest.raises(TypeError):
        machine.fire(Trigger.DISCONNECT, source="user")
    assert machine.state is S.CONNECTED


def test_a_trigger_returns_its_records_and_calls_nobody() -> None:
    machine = ConnectionMachine(lambda: 0.0)
    assert not hasattr(machine, "add_listener")  # the shell delivers records, not the machine
    connecting = machine.connect()
    assert [(r.seq, r.trigger) for r in connecting] == [(1, Trigger.CONNECT)]
    assert [r.seq for r in machine.opened()] == [2]
    assert machine.connect() == []  # a no-op records nothing


def test_a_completed_close_returns_the_remembered_connect_with_it() -> None:
    machine = ConnectionMachine(lambda: 0.0)
    machine.connect()
    machine.disconnect(UserInitiated())
    assert machine.connect() == []  # remembered while disconnecting
    closed, connecting = machine.closed()
    assert isinstance(closed, StateChange) and closed.current is S.DISCONNECTED
    assert isinstance(connecting, StateChange) and connecting.current is S.CONNECTING
    assert (closed.seq, connecting.seq) == (3, 4)


def test_machines_are_not_kept_alive_by_the_shared_transitions_machine() -> None:
    import gc
    import weakref

    machine, _, _ = make()
    drive_to(machine, S.CONNECTED)
    ref = weakref.ref(machine)
    del machine
    gc.collect()
    assert ref() is None


def test_machines_in_threads_do_not_interfere() -> None:
    import threading

    errors: list[BaseException] = []

    def churn() -> None:
        try:
            for _ in range(300):
                machine = ConnectionMachine(lambda: 0.0)
                drive_to(machine, S.CONNECTED)
                machine.disconnect(NoPongReceived())
                machine.closed()
                assert machine.state is S.DISCONNECTED
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# -- the exhaustive refusal matrix ---------------------------------------------------------
#
# Every reachable situation (a state, and for the two down states the source stored in it)
# x every trigger with every argument it can carry. The expected outcome is written here from
# DESIGN.md's table and edge rules, independently of RULES, so a change to the table that the
# design does not allow fails here.

MATRIX_SOURCES: dict[str, DisconnectionSource] = {
    "user": UserInitiated(),
    "server_close": ServerInitiated(1006, "gone"),
    "server_error": ServerInitiated(error=ServerErrorEvent("maintenance")),
    "server_handshake": ServerInitiated(error=HandshakeRejected(401)),
    "system_network": SystemInitiated(),
    "system_paused": SystemInitiated("app paused"),
    "no_pong": NoPongReceived(),
    "timeout": Timeout(S.CONNECTING),
}

# (state, stored source name or None): how to get there with legal triggers only.
SITUATIONS: list[tuple[ConnectionState, str | None]] = [
    (S.INITIALIZED, None),
    (S.CONNECTING, None),
    (S.AUTHENTICATING, None),
    (S.CONNECTED, None),
    *[(S.DISCONNECTING, name) for name in MATRIX_SOURCES],
    *[(S.DISCONNECTED, name) for name in MATRIX_SOURCES],
]

# A trigger call: (trigger, keyword arguments, label).
CALLS: list[tuple[Trigger, dict[str, object], str]] = [
    (Trigger.CONNECT, {"reconnect": False}, "connect(user)"),
    (Trigger.CONNECT, {"reconnect": True}, "connect(reconnect)"),
    (Trigger.OPENED, {}, "opened"),
    (Trigger.AUTHENTICATED, {}, "authenticated"),
    (Trigger.PONG, {"health": HealthCheckInfo("c-2", 0.5, 1.0, 1)}, "pong"),
    *[
        (Trigger.DISCONNECT, {"source": cast(object, source)}, f"disconnect({name})")
        for name, source in MATRIX_SOURCES.items()
    ],
    (Trigger.CLOSED, {}, "closed(None)"),
    *[
        (Trigger.CLOSED, {"source": cast(object, source)}, f"closed({name})")
        for name, source in MATRIX_SOURCES.items()
    ],
]

ACTIVE = (S.CONNECTING, S.AUTHENTICATING, S.CONNECTED)
DOWN = (S.DISCONNECTING, S.DISCONNECTED)


def reach(machine: ConnectionMachine, state: ConnectionState, stored: str | None) -> None:
    """Drive a fresh machine to ``state`` (storing ``stored``'s source) with legal triggers."""
    if state is not S.INITIALIZED:
        machine.connect()
    if state in (S.AUTHENTICATING, S.CONNECTED, S.DISCONNECTING):
        machine.opened()
    if state in (S.CONNECTED, S.DISCONNECTING):
        machine.authenticated(HealthCheckInfo("c-1"))
    if state is S.DISCONNECTING:
        assert stored is not None
        machine.disconnect(MATRIX_SOURCES[stored])
    if state is S.DISCONNECTED:
        assert stored is not None
        machine.closed(MATRIX_SOURCES[stored])
    assert machine.state is state
    assert machine.source == (MATRIX_SOURCES[stored] if stored else None)


def expected_outcome(
    state: ConnectionState,
    stored: DisconnectionSource | None,
    trigger: Trigger,
    kw: dict[str, object],
) -> tuple[str, ConnectionState, DisconnectionSource | None]:
    """(kind, state after, source after) by DESIGN.md; kind: change/internal/noop/refused."""
    given = kw.get("source")
    assert given is None or isinstance(given, DisconnectionSource)
    user_stored = isinstance(stored, UserInitiated)
    if trigger is Trigger.CONNECT:
        if kw["reconnect"] and user_stored:
            return "refused", state, stored
        if state in (S.INITIALIZED, S.DISCONNECTED):
            return "change", S.CONNECTING, None
        return "noop", state, stored  # active, or disconnecting (remembered)
    if trigger is Trigger.OPENED:
        return (
            ("change", S.AUTHENTICATING, None)
            if state is S.CONNECTING
            else ("refused", state, stored)
        )
    if trigger is Trigger.AUTHENTICATED:
        return (
            ("change", S.CONNECTED, None)
            if state is S.AUTHENTICATING
            else ("refused", state, stored)
        )
    if trigger is Trigger.PONG:
        return ("internal", state, None) if state is S.CONNECTED else ("refused", state, stored)
    if trigger is Trigger.DISCONNECT:
        assert isinstance(given, DisconnectionSource)
        if state in ACTIVE:
            return "change", S.DISCONNECTING, given
        if state in DOWN:
            if isinstance(given, UserInitiated) and not user_stored:
                return "internal", state, given
            return "noop", state, stored
        return (
            ("noop", state, None) if isinstance(given, UserInitiated) else ("refused", state, None)
        )
    assert trigger is Trigger.CLOSED
    if state in ACTIVE:
        return ("change", S.DISCONNECTED, given) if given is not None else ("refused", state, None)
    if state is S.DISCONNECTING:
        return "change", S.DISCONNECTED, stored  # the close completes: the stored source stays
    return "refused", state, stored


MATRIX = [
    pytest.param(state, stored, trigger, kw, id=f"{state.value}[{stored or '-'}]-{label}")
    for state, stored in SITUATIONS
    for trigger, kw, label in CALLS
]


def test_refusal_matrix_is_exhaustive() -> None:
    # 4 active/initial states + 2 down states x 8 stored sources; 22 trigger calls.
    assert len(SITUATIONS) == 4 + 2 * len(MATRIX_SOURCES) == 20
    assert {t for t, _, _ in CALLS} == set(Trigger)
    assert len(CALLS) == 22
    assert len(MATRIX) == 440


@pytest.mark.parametrize(("state", "stored", "trigger", "kw"), MATRIX)
def test_refusal_matrix(
    state: ConnectionState, stored: str | None, trigger: Trigger, kw: dict[str, object]
) -> None:
    check_matrix_case(state, stored, trigger, kw)


def expected_refusal(state: ConnectionState, trigger: Trigger, kw: dict[str, object]) -> str:
    """Why the machine says it refused: a guard's reason, or that no row exists at all."""
    if trigger is Trigger.CONNECT:
        return "the user disconnected; only the user's connect() may follow"
    if trigger is Trigger.CLOSED and state in ACTIVE:
        return "closed from an active state needs a source"
    if trigger is Trigger.DISCONNECT and state is S.INITIALIZED:
        return "nothing to disconnect before the first connect"
    return "no rule for it"


def expected_detail(trigger: Trigger, kw: dict[str, object], source: object) -> str:
    if trigger is Trigger.CONNECT:
        return "reconnect" if kw["reconnect"] else "user connect"
    if trigger in (Trigger.DISCONNECT, Trigger.CLOSED):
        assert isinstance(source, DisconnectionSource)
        return source.close_reason
    if trigger is Trigger.PONG:
        return "round trip 500.0 ms"
    return ""


def check_matrix_case(
    state: ConnectionState, stored: str | None, trigger: Trigger, kw: dict[str, object]
) -> None:
    machine, records, clock = make()
    reach(machine, state, stored)
    stored_source = machine.source
    before, count, pending = machine.snapshot(), len(records), machine.connect_pending
    last_seq = records[-1].seq if records else 0
    clock.now += 1.5
    kind, state_after, source_after = expected_outcome(state, stored_source, trigger, kw)

    if kind == "refused":
        with pytest.raises(InvalidTransition) as info:
            machine.fire(trigger, **kw)
        assert (info.value.trigger, info.value.state) == (trigger.value, state.value)
        assert info.value.why == expected_refusal(state, trigger, kw)
        assert machine.snapshot() == before
        assert machine.connect_pending == pending
        assert len(records) == count
    else:
        returned = machine.fire(trigger, **kw)
        result = returned[0] if returned else None
        assert machine.state is state_after
        assert machine.source == source_after
        assert machine.snapshot() == ConnectionSnapshot(state_after, source_after, machine.health)
        if kind == "noop":
            assert returned == []
            assert len(records) == count
            assert machine.snapshot() == before
            remembered = trigger is Trigger.CONNECT and state is S.DISCONNECTING
            assert machine.connect_pending == (remembered or pending)
        elif kind == "internal":
            assert isinstance(result, InternalTransition)
            assert records[count:] == [result]
            assert (result.state, result.trigger, result.seq) == (state, trigger, last_seq + 1)
            assert (result.previous_source, result.source) == (stored_source, source_after)
            assert result.in_state == 1.5
            assert result.at == clock.now
            assert result.detail == expected_detail(trigger, kw, source_after)
            if trigger is Trigger.PONG:
                assert machine.health == kw["health"]
        else:
            assert isinstance(result, StateChange)
            assert records[count:] == [result]
            assert (result.previous, result.current) == (state, state_after)
            assert (result.trigger, result.seq, result.source) == (
                trigger,
                last_seq + 1,
                source_after,
            )
            assert result.at == clock.now
            assert result.detail == expected_detail(trigger, kw, source_after)
            assert result.reconnect is (trigger is Trigger.CONNECT and kw["reconnect"] is True)
            assert machine.connect_pending is False

    # The sequence stays gap-free after whatever happened: the next record is numbered on.
    seq_now = records[-1].seq if records else 0
    machine.disconnect(UserInitiated())
    if records and records[-1].seq != seq_now:
        assert records[-1].seq == seq_now + 1


def test_fire_without_reconnect_is_a_user_connect() -> None:
    machine, records, _ = make()
    drive_to(machine, S.CONNECTED)
    machine.disconnect(UserInitiated())
    machine.closed()
    [record] = machine.fire(Trigger.CONNECT)
    assert isinstance(record, StateChange) and not record.reconnect
    assert record.detail == "user connect"
    machine.opened()
    machine.disconnect(UserInitiated())
    assert machine.fire(Trigger.CONNECT) == []
    assert machine.connect_pending
    machine.closed()
    assert isinstance(records[-1], StateChange) and not records[-1].reconnect


def test_type_errors_say_what_was_wrong() -> None:
    machine, _, _ = make()
    drive_to(machine, S.CONNECTED)
    with pytest.raises(TypeError, match=r"^disconnect needs a source$"):
        machine.fire(Trigger.DISCONNECT)
    with pytest.raises(TypeError, match=r"^source must be a DisconnectionSource, not str$"):
        machine.fire(Trigger.DISCONNECT, source="user")


def test_only_authenticated_reports_the_round_trip_in_its_detail() -> None:
    machine, records, _ = make()
    drive_to(machine, S.CONNECTED)
    machine.pong(HealthCheckInfo("c-1", 0.25, 1.0, 1))
    machine.closed(ServerInitiated(1006))
    machine.connect()
    machine.opened()
    machine.authenticated(HealthCheckInfo("c-2", 0.125, 2.0, 0))
    opened, authenticated = records[-2], records[-1]
    assert isinstance(opened, StateChange) and opened.trigger is Trigger.OPENED
    assert opened.detail == ""
    assert authenticated.detail == "round trip 125.0 ms"


# -- a connect remembered while disconnecting: who asked for it, and that it fires once --------


@pytest.mark.parametrize(
    ("connects", "reconnect"),
    [
        ((True,), True),
        ((False,), False),
        ((True, True), True),
        ((True, False), False),  # the user's connect wins over recovery's...
        ((False, True), False),  # ...whichever came first
    ],
)
@pytest.mark.parametrize(
    "close",
    [None, UserInitiated(), ServerInitiated(1001)],
    ids=["closed", "closed(user)", "closed(server)"],
)
def test_the_connect_after_the_close_says_who_asked_and_fires_once(
    connects: tuple[bool, ...], reconnect: bool, close: DisconnectionSource | None
) -> None:
    machine, _, _ = make()
    drive_to(machine, S.CONNECTED)
    machine.disconnect(NoPongReceived())
    for asked in connects:
        assert machine.connect(reconnect=asked) == []
    # The close completes the disconnect whatever source it carries: the stored one stays.
    closed, connecting = machine.closed(close) if close is not None else machine.closed()
    assert isinstance(closed, StateChange) and closed.current is S.DISCONNECTED
    assert closed.source == NoPongReceived()
    assert isinstance(connecting, StateChange) and connecting.current is S.CONNECTING
    assert connecting.reconnect is reconnect
    assert connecting.detail == ("reconnect" if reconnect else "user connect")
    assert machine.connect_pending is False
    # Spent: the next close brings nothing with it.
    machine.opened()
    machine.disconnect(NoPongReceived())
    [closed_again] = machine.closed()
    assert isinstance(closed_again, StateChange) and closed_again.current is S.DISCONNECTED


def test_a_later_non_user_disconnect_keeps_the_remembered_connect() -> None:
    machine, _, _ = make()
    drive_to(machine, S.CONNECTED)
    machine.disconnect(NoPongReceived())
    machine.connect(reconnect=True)
    assert machine.disconnect(ServerInitiated(1011)) == []  # the first source stands
    assert machine.connect_pending
    _, connecting = machine.closed()
    assert isinstance(connecting, StateChange) and connecting.reconnect


# -- one transitions.Machine per thread, shared by its clients ---------------------------------


def test_the_machines_of_a_thread_share_one_transitions_machine() -> None:
    # Checked in new threads, where the first machine builds the thread's transitions.Machine
    # (this thread's may have been built long ago, or inherited by a forked process).
    import threading

    from statesock.machine import _shared_machine

    shared: list[object] = []
    failures: list[BaseException] = []

    def share() -> None:
        try:
            first, second = ConnectionMachine(lambda: 0.0), ConnectionMachine(lambda: 0.0)
            assert first._transitions is second._transitions is _shared_machine()
            shared.append(first._transitions)
        except BaseException as exc:
            failures.append(exc)

    for _ in range(2):
        thread = threading.Thread(target=share)
        thread.start()
        thread.join()
    assert failures == []
    assert len(shared) == 2 and shared[0] is not shared[1]  # one per thread


def test_a_machine_built_in_a_new_thread_applies_every_rule() -> None:
    # The machine is built once per thread, by the first client there: its table must be
    # the same whichever thread (and whichever test) builds it.
    import threading

    from statesock.machine import _shared_machine

    failures: list[BaseException] = []
    events: list[set[str]] = []

    def check() -> None:
        try:
            events.append(set(_shared_machine().events))
            for case in MATRIX:
                check_matrix_case(*case.values)  # type: ignore[arg-type]
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=check)
    thread.start()
    thread.join()
    assert failures == []
    # Only the table's triggers: no auto transitions (to_connected(), ...) to misuse.
    assert events == [{trigger.value for trigger in Trigger}]


# -- the shared machine's quiet path (transitions' steps without the no-ops) -------------------


def _fire_everything(machine: ConnectionMachine) -> list[object]:
    """Every kind of outcome: changes, internal transitions, no-ops, guard refusals and a
    trigger with no transition from the state (transitions' MachineError)."""
    outcomes: list[object] = []
    steps: list[Callable[[], list[Record]]] = [
        lambda: machine.disconnect(UserInitiated()),
        machine.connect,
        machine.connect,
        machine.opened,
        machine.authenticated,
        lambda: machine.pong(HealthCheckInfo("c", round_trip=0.001, last_pong_at=1.0, pongs=1)),
        lambda: machine.fire(Trigger.PONG, health=HealthCheckInfo("c", pongs=2)),
        lambda: machine.disconnect(ServerInitiated(1011)),
        lambda: machine.disconnect(UserInitiated()),
        lambda: machine.connect(reconnect=True),
        machine.connect,
        machine.closed,
        machine.opened,
        lambda: machine.closed(SystemInitiated("x")),
    ]
    for step in steps:
        try:
            outcomes.append(step())
        except InvalidTransition as exc:
            outcomes.append(str(exc))
    return outcomes


@pytest.mark.parametrize("level", ["DEBUG", "INFO", "WARNING"])
def test_the_shared_machine_does_and_logs_what_a_plain_transitions_machine_does(
    level: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The shared machine skips transitions' steps that call nothing and log nothing; with
    transitions' log on it runs them all, so its records and log lines are a plain
    ``transitions.Machine``'s, whatever the log level."""
    import re

    from transitions import Machine

    results: list[tuple[list[object], list[tuple[str, str]]]] = []
    for kind in (Machine, type(machine_module._shared_machine())):
        machine = ConnectionMachine(lambda: 5.0)
        machine._transitions = machine_module._build_machine(kind)
        caplog.clear()
        with caplog.at_level(level, logger="transitions"):
            outcomes = _fire_everything(machine)
        lines = [
            (r.levelname, re.sub(r" at 0x[0-9a-f]+|@\d+", "", r.getMessage()))
            for r in caplog.records
            if r.name.startswith("transitions")
        ]
        results.append((outcomes, lines))
    assert results[0] == results[1]
    assert bool(results[0][1]) == (level != "WARNING")


def test_the_shared_machine_is_the_lean_one_where_it_fits_the_installed_transitions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from transitions import Machine

    from statesock.lean_transitions import LeanMachine, fits

    assert isinstance(machine_module._build_machine(), LeanMachine) == fits()
    monkeypatch.setattr(machine_module, "fits", lambda: False)  # an older transitions
    assert type(machine_module._build_machine()) is Machine
