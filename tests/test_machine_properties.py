"""Hypothesis state-machine tests of the pure machine.

The test keeps its own, independently written record of what the path must be (``expected``)
and checks every step of the real machine against it, plus these invariants:

* every change is an edge of the table, and no change has previous == current;
* connected is entered only from authenticating;
* disconnecting / disconnected carry a source, and no other state does;
* after a user disconnect the stored source stays UserInitiated until the user connects again,
  and a reconnect is refused meanwhile;
* the transition log's ``seq`` runs 1, 2, 3... with no gap, one log event per record.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from structlog.testing import capture_logs

from statesock.events import HealthCheckInfo
from statesock.exceptions import InvalidTransition
from statesock.machine import ConnectionState, Record, StateChange
from statesock.sources import (
    DisconnectionSource,
    NoPongReceived,
    ServerInitiated,
    SystemInitiated,
    Timeout,
    UserInitiated,
)
from statesock.transition_log import TransitionLogger
from tests.support import DOWN, LEGAL_CHANGES, Recording

S = ConnectionState
ACTIVE = {S.CONNECTING, S.AUTHENTICATING, S.CONNECTED}

sources = st.one_of(
    st.just(UserInitiated()),
    st.just(NoPongReceived()),
    st.just(SystemInitiated()),
    st.sampled_from([Timeout(S.CONNECTING), Timeout(S.AUTHENTICATING)]),
    st.builds(ServerInitiated, st.sampled_from([None, 1000, 1006, 1011, 4401, 4500])),
)


class MachineSpec(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self._capture = capture_logs()
        self.logs: list[MutableMapping[str, Any]] = self._capture.__enter__()
        self.machine = Recording(lambda: self.now, TransitionLogger("prop"))
        self.records: list[Record] = self.machine.records
        # The independent record.
        self.state = S.INITIALIZED
        self.source: DisconnectionSource | None = None
        self.connect_pending = False
        self.user_down = False

    def teardown(self) -> None:
        self._capture.__exit__(None, None, None)

    # -- helpers ---------------------------------------------------------------------

    def _expect_refusal(self, call: Any) -> None:
        count = len(self.records)
        snapshot = self.machine.snapshot()
        try:
            call()
        except InvalidTransition:
            assert self.machine.snapshot() == snapshot
            assert len(self.records) == count
        else:
            raise AssertionError(f"expected a refusal in {self.state}")

    def _go(self, state: ConnectionState, source: DisconnectionSource | None) -> None:
        self.state, self.source = state, source

    # -- rules -----------------------------------------------------------------------

    @rule(reconnect=st.booleans())
    def connect(self, reconnect: bool) -> None:
        refused = reconnect and isinstance(self.source, UserInitiated)
        if self.state in ACTIVE:
            assert self.machine.connect(reconnect=reconnect) == []
        elif refused or (self.state is S.DISCONNECTING and refused):
            self._expect_refusal(lambda: self.machine.connect(reconnect=reconnect))
        elif self.state is S.DISCONNECTING:
            assert self.machine.connect(reconnect=reconnect) == []
            self.connect_pending = True
        else:
            self.machine.connect(reconnect=reconnect)
            self._go(S.CONNECTING, None)
            if not reconnect:
                self.user_down = False

    @rule()
    def opened(self) -> None:
        if self.state is S.CONNECTING:
            self.machine.opened()
            self._go(S.AUTHENTICATING, None)
        else:
            self._expect_refusal(self.machine.opened)

    @rule(rtt=st.floats(0, 5))
    def authenticated(self, rtt: float) -> None:
        if self.state is S.AUTHENTICATING:
            self.machine.authenticated(HealthCheckInfo("c", round_trip=rtt))
            self._go(S.CONNECTED, None)
        else:
            self._expect_refusal(self.machine.authenticated)

    @rule(rtt=st.floats(0, 5))
    def pong(self, rtt: float) -> None:
        info = HealthCheckInfo("c", round_trip=rtt, last_pong_at=self.now)
        if self.state is S.CONNECTED:
            self.machine.pong(info)
            assert self.machine.health == info
        else:
            self._expect_refusal(lambda: self.machine.pong(info))

    @rule(source=sources)
    def disconnect(self, source: DisconnectionSource) -> None:
        user = isinstance(source, UserInitiated)
        if self.state in ACTIVE:
            self.machine.disconnect(source)
            self._go(S.DISCONNECTING, source)
        elif self.state in DOWN:
            self.machine.disconnect(source)
            if user:
                self.source = source
                self.connect_pending = False
        elif user:
            assert self.machine.disconnect(source) == []
        else:
            self._expect_refusal(lambda: self.machine.disconnect(source))
        if user and self.state is not S.INITIALIZED:
            self.user_down = True

    @rule(source=st.one_of(st.none(), sources))
    def closed(self, source: DisconnectionSource | None) -> None:
        if self.state in ACTIVE and source is not None:
            self.machine.closed(source)
            self._go(S.DISCONNECTED, source)
            self.user_down = self.user_down or isinstance(source, UserInitiated)
        elif self.state is S.DISCONNECTING:
            self.machine.closed(source)
            self._go(S.DISCONNECTED, self.source)
            if self.connect_pending:
                self.connect_pending = False
                self._go(S.CONNECTING, None)
                self.user_down = False
        else:
            self._expect_refusal(lambda: self.machine.closed(source))

    @rule(seconds=st.floats(0, 30))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def matches_the_independent_record(self) -> None:
        assert self.machine.state is self.state
        assert self.machine.source == self.source

    @invariant()
    def changes_follow_the_table(self) -> None:
        for record in self.records:
            if isinstance(record, StateChange):
                assert record.previous is not record.current
                assert (record.previous, record.current, record.trigger.value) in LEGAL_CHANGES
                if record.current is S.CONNECTED:
                    assert record.previous is S.AUTHENTICATING

    @invariant()
    def source_exactly_when_going_down(self) -> None:
        assert (self.machine.source is not None) == (self.machine.state in DOWN)
        for record in self.records:
            state = record.current if isinstance(record, StateChange) else record.state
            assert (record.source is not None) == (state in DOWN)

    @invariant()
    def user_disconnect_sticks(self) -> None:
        if self.user_down and self.machine.state in DOWN:
            assert isinstance(self.machine.source, UserInitiated)
            assert not self.machine.reconnect_allowed

    @invariant()
    def log_seq_has_no_gaps(self) -> None:
        assert [r.seq for r in self.records] == list(range(1, len(self.records) + 1))
        assert [e["seq"] for e in self.logs] == [r.seq for r in self.records]


MachineSpec.TestCase.settings = settings(
    max_examples=400,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestMachineSpec = MachineSpec.TestCase
