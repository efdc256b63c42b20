"""ConnectionCore's decisions, example by example: inputs in, effects out, a fake clock.

No asyncio and no sockets: :class:`Sim` is a fake shell that keeps the timers the core armed
and fires them in time order when the clock is advanced. Each test states one decision of
the core as the effects it must return at once (not as what a shell would do later).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from statesock.core import ConnectionCore
from statesock.core_io import (
    AbortSocket,
    Answer,
    AppPaused,
    AppResumed,
    AttachRecovery,
    BufferSend,
    CancelHook,
    CancelTimer,
    CloseSocket,
    CoreConfig,
    DetachRecovery,
    Effect,
    EndStreams,
    Finished,
    HealthAnswered,
    Hook,
    HookFinished,
    Input,
    Log,
    NetworkChanged,
    OpenSocket,
    ProtocolPingSent,
    ProtocolPong,
    ReadingPaused,
    ReadingResumed,
    RecoveryConfig,
    Reopened,
    ReportError,
    ResolveConnect,
    ResolveDisconnect,
    ResolveSend,
    RunHook,
    SendCancelled,
    SendHealthCheck,
    SendRoute,
    SendWritten,
    ServerErrorReceived,
    SocketClosed,
    SocketOpened,
    StartTimer,
    TimerFired,
    TimerKind,
    UserClose,
    UserConnect,
    UserDisconnect,
    WriteBuffered,
    truncate_close_reason,
)
from statesock.events import HealthCheckInfo, ServerErrorEvent
from statesock.exceptions import (
    ClientClosed,
    ConnectionRefused,
    HandshakeRejected,
    NotConnectedError,
    SendAbandoned,
    SendBufferFull,
    SendExpired,
)
from statesock.log_schema import LogEvent
from statesock.machine import ConnectionState, InternalTransition, Record, StateChange
from statesock.sources import (
    DisconnectionSource,
    NoPongReceived,
    ServerInitiated,
    SystemInitiated,
    Timeout,
    UserInitiated,
    default_reconnect_policy,
)
from tests.support import core_config, recovery_config_with

S = ConnectionState
T = TimerKind
DROP = ServerInitiated(1006)


@dataclass
class Strategy:
    """A retry strategy that records what it was asked and answers ``delay``."""

    delay: float | None = 1.0
    calls: list[tuple[int, DisconnectionSource]] = field(default_factory=list)

    def next_delay(self, attempt: int, source: DisconnectionSource) -> float | None:
        self.calls.append((attempt, source))
        return self.delay

    @property
    def attempts(self) -> list[int]:
        return [attempt for attempt, _ in self.calls]


def recovery_config(
    strategy: Strategy | None = None,
    policy: Callable[[DisconnectionSource], bool] = default_reconnect_policy,
    **kwargs: float | bool,
) -> RecoveryConfig:
    return recovery_config_with(policy, strategy or Strategy(), **kwargs)


class Sim:
    """A fake shell: a clock, the timers the core armed, and every effect it returned."""

    def __init__(
        self,
        config: CoreConfig | None = None,
        recovery: RecoveryConfig | None = None,
        *,
        network: bool = True,
        now: float = 0.0,
    ) -> None:
        self.now = now
        self.core = ConnectionCore(config or core_config(), now=now)
        self.timers: dict[TimerKind, float] = {}
        self.effects: list[Effect] = []
        self.records: list[Record] = []
        self.last_frame_at: float | None = None
        self._waiter = 0
        if recovery is not None:
            assert self.step(AttachRecovery(recovery, network)) == []

    def state(self) -> ConnectionState:
        return self.core.state

    @property
    def socket(self) -> int:
        assert self.core.socket is not None
        return self.core.socket

    def step(self, event: Input) -> list[Effect]:
        step = self.core.step(event, self.now)
        out = step.effects
        self.records += step.records
        for effect in out:
            if isinstance(effect, StartTimer):
                self.timers[effect.timer] = effect.at
            elif isinstance(effect, CancelTimer):
                assert effect.timer in self.timers, f"{effect.timer} cancelled but not armed"
                del self.timers[effect.timer]
        assert set(self.timers) == self.core.timers
        self.effects += out
        return out

    def advance(self, seconds: float) -> list[Effect]:
        """Move the clock on, firing every timer that falls due, in time order."""
        end = self.now + seconds
        out: list[Effect] = []
        fired_at: dict[tuple[TimerKind, float], int] = {}
        while True:
            due = sorted((at, t.value, t) for t, at in self.timers.items() if at <= end)
            if not due:
                break
            at, _, timer = due[0]
            # A timer re-armed for the instant it fired, again and again, is a livelock.
            fired_at[timer, at] = fired_at.get((timer, at), 0) + 1
            assert fired_at[timer, at] <= 3, f"{timer} keeps firing at {at}: livelock"
            self.now = max(self.now, at)
            del self.timers[timer]
            out += self.step(TimerFired(timer, self.last_frame_at))
        self.now = end
        return out

    def fire(self, timer: TimerKind) -> list[Effect]:
        """Fire ``timer`` now (the shell's timer ran late or early: the core decides)."""
        self.timers.pop(timer, None)
        return self.step(TimerFired(timer, self.last_frame_at))

    def connect(self) -> list[Effect]:
        self._waiter += 1
        return self.step(UserConnect(self._waiter))

    def open_and_ack(self) -> list[Effect]:
        socket = self.socket
        out = self.step(SocketOpened(socket))
        out += self.step(HealthAnswered(socket, "c-1", Answer.ACK))
        assert self.state() is S.CONNECTED
        return out

    def up(self) -> list[Effect]:
        """A user connect that succeeds."""
        return self.connect() + self.open_and_ack()

    def drop(self, code: int = 1006, error: HandshakeRejected | None = None) -> list[Effect]:
        return self.step(SocketClosed(self.socket, code if error is None else None, "", error))

    def reconnect_up(self) -> list[Effect]:
        """Let the reconnect timer fire and the new socket come up."""
        out = self.advance(self.timers[T.RECONNECT] - self.now)
        assert any(isinstance(e, OpenSocket) for e in out)
        return out + self.open_and_ack()

    def of(self, kind: type, effects: list[Effect] | None = None) -> list[Effect]:
        return [e for e in (self.effects if effects is None else effects) if isinstance(e, kind)]

    def changes(self) -> list[tuple[ConnectionState, ConnectionState]]:
        return [(r.previous, r.current) for r in self.records if isinstance(r, StateChange)]


def no_ping(**kwargs: float | bool | None) -> CoreConfig:
    return core_config(ping_interval=None, **kwargs)


def log_of(effects: list[Effect], event: str, level: str = "info") -> dict[str, object]:
    [log] = [e for e in effects if isinstance(e, Log) and e.event == event]
    assert isinstance(log, Log) and log.level == level
    return dict(log.fields)


# -- connecting, authenticating, connected ----------------------------------------------------


def test_a_fresh_core_starts_at_zero_with_nothing_current() -> None:
    core = ConnectionCore(core_config(ping_interval=None))
    assert core.socket is None
    assert (core.closed, core.done, core.final_source) == (False, False, None)
    assert core.step(UserConnect(1), 0.0).effects == [
        OpenSocket(1),
        StartTimer(T.CONNECT_DEADLINE, 10.0),
    ]


def test_a_user_connect_opens_one_socket_and_arms_the_connect_deadline() -> None:
    sim = Sim(now=5.0)
    out = sim.connect()
    assert out == [OpenSocket(1), StartTimer(T.CONNECT_DEADLINE, 15.0)]
    assert sim.state() is S.CONNECTING
    assert sim.step(UserConnect(2)) == []  # a second connect() waits on the same socket
    sim.now = 6.0
    out = sim.step(SocketOpened(1))
    assert out == [CancelTimer(T.CONNECT_DEADLINE), StartTimer(T.AUTH_DEADLINE, 16.0)]
    sim.now = 7.0
    out = sim.step(HealthAnswered(1, "c-7", Answer.ACK))
    assert out == [
        CancelTimer(T.AUTH_DEADLINE),
        StartTimer(T.HEALTH_CHECK, 32.0),
        ResolveConnect((1, 2)),
    ]
    assert sim.core.machine.health == HealthCheckInfo("c-7", None, 7.0, 0)
    assert sim.changes() == [
        (S.INITIALIZED, S.CONNECTING),
        (S.CONNECTING, S.AUTHENTICATING),
        (S.AUTHENTICATING, S.CONNECTED),
    ]


def test_connect_while_connected_resolves_at_once() -> None:
    sim = Sim(no_ping())
    sim.up()
    assert sim.step(UserConnect(9)) == [ResolveConnect((9,))]


def test_without_an_ack_step_authenticated_follows_opened_at_once() -> None:
    sim = Sim(no_ping(ack_required=False))
    sim.connect()
    out = sim.step(SocketOpened(1))
    assert sim.state() is S.CONNECTED
    assert ResolveConnect((1,)) in out
    assert sim.timers == {}


def test_the_auth_hook_runs_in_authenticating_and_its_end_authenticates_without_ack() -> None:
    sim = Sim(no_ping(ack_required=False, has_auth_hook=True, has_connected_hook=True))
    sim.connect()
    out = sim.step(SocketOpened(1))
    assert RunHook(1, Hook.ON_CONNECTION_ESTABLISHED) in out
    assert sim.state() is S.AUTHENTICATING
    assert sim.core.hooks == {Hook.ON_CONNECTION_ESTABLISHED}
    # A pong before auth completed means nothing.
    assert sim.step(HealthAnswered(1, None, Answer.ACK_OR_PONG)) == []
    assert sim.state() is S.AUTHENTICATING
    out = sim.step(HookFinished(1, Hook.ON_CONNECTION_ESTABLISHED))
    assert sim.state() is S.CONNECTED
    assert RunHook(1, Hook.ON_CONNECTED) in out
    assert sim.core.hooks == {Hook.ON_CONNECTED}


def test_with_an_ack_step_the_auth_hook_finishing_does_not_authenticate() -> None:
    sim = Sim(no_ping(has_auth_hook=True))
    sim.connect()
    sim.step(SocketOpened(1))
    assert sim.step(HookFinished(1, Hook.ON_CONNECTION_ESTABLISHED)) == []
    assert sim.state() is S.AUTHENTICATING
    assert sim.core.hooks == frozenset()
    assert sim.step(HealthAnswered(1, None, Answer.PONG)) == []  # a protocol pong is no ack
    assert sim.state() is S.AUTHENTICATING
    sim.step(HealthAnswered(1, None, Answer.ACK_OR_PONG))  # the legacy answer that is both
    assert sim.state() is S.CONNECTED


@pytest.mark.parametrize(
    ("timer", "state", "after"),
    [
        (T.CONNECT_DEADLINE, S.CONNECTING, 10.0),
        (T.AUTH_DEADLINE, S.AUTHENTICATING, 10.0),
    ],
)
def test_a_deadline_disconnects_with_a_timeout_of_its_state(
    timer: TimerKind, state: ConnectionState, after: float
) -> None:
    sim = Sim(no_ping(has_auth_hook=True))
    sim.connect()
    if state is S.AUTHENTICATING:
        sim.step(SocketOpened(1))
    assert sim.advance(after - 0.001) == []
    out = sim.advance(0.001)
    assert sim.state() is S.DISCONNECTING
    assert sim.core.machine.source == Timeout(state)
    reason = f"timed out in {state.value}"
    assert CloseSocket(1, 1000, reason, 5.0) in out
    if state is S.AUTHENTICATING:
        assert CancelHook(Hook.ON_CONNECTION_ESTABLISHED) in out  # a hung hook goes too
    assert sim.core.hooks == frozenset()
    assert set(sim.timers) == {T.CLOSE_DEADLINE}


def test_the_close_deadline_gives_the_socket_up_when_the_engine_never_reports() -> None:
    sim = Sim(no_ping())
    sim.up()
    out = sim.step(UserDisconnect(4))
    assert CloseSocket(1, 1000, "user disconnect", 5.0) in out
    assert sim.timers == {T.CLOSE_DEADLINE: 6.0}
    assert sim.advance(5.999) == []
    assert sim.state() is S.DISCONNECTING
    out = sim.advance(0.001)
    assert out[0] == AbortSocket(1)
    assert ResolveDisconnect((4,)) in out
    assert Finished(UserInitiated()) in out
    assert sim.state() is S.DISCONNECTED
    assert sim.core.socket is None
    assert sim.timers == {}


def test_a_dead_link_is_not_given_time_for_a_close_handshake() -> None:
    sim = Sim(core_config(ping_interval=10.0, pong_timeout=2.0))
    sim.up()
    sim.advance(12.0)
    assert sim.state() is S.DISCONNECTING
    assert sim.of(CloseSocket)[-1] == CloseSocket(1, 1000, "no pong received", 0.0)
    assert sim.timers == {T.CLOSE_DEADLINE: 13.0}


def test_the_close_deadline_is_cancelled_when_the_engine_reports_in_time() -> None:
    sim = Sim(no_ping())
    sim.up()
    sim.step(UserDisconnect())
    out = sim.step(SocketClosed(1, 1000, "bye"))
    assert CancelTimer(T.CLOSE_DEADLINE) in out
    assert sim.core.machine.source == UserInitiated()  # the close keeps the stored source
    assert sim.timers == {}
    assert sim.core.done


def test_socket_timers_and_hooks_are_cancelled_in_a_fixed_order() -> None:
    sim = Sim(
        core_config(
            ping_interval=10.0, idle_timeout=60.0, has_auth_hook=True, has_connected_hook=True
        )
    )
    sim.connect()
    sim.step(SocketOpened(1))
    sim.step(HealthAnswered(1, None, Answer.ACK))  # the auth hook is still running
    sim.advance(10.0)
    assert set(sim.timers) == {T.HEALTH_CHECK, T.IDLE_DEADLINE}
    out = sim.step(UserDisconnect())
    assert out[:5] == [
        EndStreams(UserInitiated()),  # first: a full subscriber must not hold up the close
        CancelTimer(T.HEALTH_CHECK),
        CancelTimer(T.IDLE_DEADLINE),
        CancelHook(Hook.ON_CONNECTED),
        CancelHook(Hook.ON_CONNECTION_ESTABLISHED),
    ]


def test_a_user_disconnect_before_any_connect_only_resolves_its_waiter() -> None:
    sim = Sim()
    assert sim.step(UserDisconnect(3)) == [ResolveDisconnect((3,))]
    assert sim.step(UserDisconnect()) == []
    assert sim.state() is S.INITIALIZED


def test_connect_while_disconnecting_opens_the_next_socket_once_the_close_completes() -> None:
    sim = Sim(no_ping())
    sim.up()
    sim.step(UserDisconnect())
    assert sim.step(UserConnect(8)) == []
    out = sim.step(SocketClosed(1, 1000))
    assert OpenSocket(2) in out
    assert not any(isinstance(e, Finished) for e in out)
    assert sim.state() is S.CONNECTING
    sim.open_and_ack()
    assert sim.of(ResolveConnect)[-1] == ResolveConnect((8,))


# -- health checks: fixed cadence, pongs of the current socket only --------------------------


def test_ping_cadence_is_fixed_whatever_the_round_trips_and_late_timers() -> None:
    sim = Sim(core_config(ping_interval=25.0, pong_timeout=3.0), now=13.0)
    sim.up()  # connected at 13.0
    assert sim.timers[T.HEALTH_CHECK] == 38.0
    due = [38.0]
    for late, round_trip in [(0.4, 0.2), (0.0, 1.7), (2.5, 0.3)]:
        sim.now = sim.timers[T.HEALTH_CHECK] + late
        out = sim.fire(T.HEALTH_CHECK)
        assert out == [
            SendHealthCheck(1, sim.core.machine.health),
            StartTimer(T.HEALTH_CHECK, sim.now + 3.0),  # the pong deadline comes first
        ]
        due.append(due[-1] + 25.0)
        sim.now += round_trip
        out = sim.step(HealthAnswered(1, None, Answer.ACK_OR_PONG))
        # The pong moves the one timer to the next check: the cadence does not move.
        assert out == [StartTimer(T.HEALTH_CHECK, due[-1])]
        assert sim.core.machine.health.round_trip == pytest.approx(round_trip)
    assert due == [38.0, 63.0, 88.0, 113.0]


def test_one_timer_serves_each_health_check_whatever_happens_to_it() -> None:
    sim = Sim(core_config(ping_interval=10.0, pong_timeout=2.0))
    sim.up()
    for event in [
        None,  # the check goes out
        ReadingPaused(1),
        ReadingResumed(1),
        HealthAnswered(1, None, Answer.ACK_OR_PONG),
        None,  # the next check
    ]:
        if event is None:
            sim.advance(sim.timers[T.HEALTH_CHECK] - sim.now)
        else:
            sim.step(event)
        assert set(sim.timers) == {T.HEALTH_CHECK}


def test_a_ping_timer_that_fired_very_late_skips_to_the_next_slot_of_the_cadence() -> None:
    sim = Sim(core_config(ping_interval=25.0), now=13.0)
    sim.up()
    sim.now = 90.0  # slots at 38, 63, 88: the next is 113
    sim.fire(T.HEALTH_CHECK)
    sim.step(HealthAnswered(1, None, Answer.ACK_OR_PONG))
    assert sim.timers[T.HEALTH_CHECK] == 113.0


def test_a_ping_slot_that_division_rounds_down_is_not_scheduled_for_now() -> None:
    sim = Sim(core_config(ping_interval=0.7, pong_timeout=0.1))
    sim.up()
    sim.now = 3 * 0.7  # 2.0999999999999996: floor(now / 0.7) rounds down to 2
    sim.fire(T.HEALTH_CHECK)
    sim.step(HealthAnswered(1, None, Answer.ACK_OR_PONG))
    assert sim.timers[T.HEALTH_CHECK] > sim.now
    assert sim.timers[T.HEALTH_CHECK] == pytest.approx(2.8)


def test_the_next_health_check_is_never_due_a_float_bit_after_the_one_that_fired() -> None:
    # Found by the day-long soak: connected at 3764.837535, the check due at 4114.837535
    # computed its successor 1 ULP ahead; a microsecond clock (looptime's) fired it again at
    # once, for ever.
    from statesock import core_io as cc

    machine = ConnectionCore(core_config(ack_required=False), now=0.0)
    connected_at = 3764.837535
    machine.step(cc.UserConnect(1), connected_at)
    machine.step(cc.SocketOpened(1), connected_at)
    assert machine.state.value == "connected"
    fired_at = 4114.837535  # 14 intervals later
    machine.step(cc.TimerFired(cc.TimerKind.HEALTH_CHECK, fired_at), fired_at)
    answered_at = fired_at + 0.1
    effects = machine.step(cc.HealthAnswered(1, None, cc.Answer.ACK_OR_PONG), answered_at).effects
    [next_check] = [
        e for e in effects if isinstance(e, cc.StartTimer) and e.timer is cc.TimerKind.HEALTH_CHECK
    ]
    assert next_check.at == pytest.approx(fired_at + 25.0)


def test_a_pong_updates_health_with_round_trip_and_count() -> None:
    sim = Sim(core_config(ping_interval=10.0))
    sim.up()
    sim.advance(10.0)
    sim.now = 10.25
    sim.step(HealthAnswered(1, None, Answer.ACK_OR_PONG))
    sim.advance(9.75)
    sim.now = 20.5
    sim.step(HealthAnswered(1, "c-2", Answer.PONG))
    assert sim.core.machine.health == HealthCheckInfo("c-2", 0.5, 20.5, 2)
    pongs = [r for r in sim.records if isinstance(r, InternalTransition)]
    assert [r.seq for r in pongs] == [4, 5]
    # An unsolicited pong keeps the last round trip and cancels nothing.
    sim.now = 21.0
    assert sim.step(HealthAnswered(1, None, Answer.ACK_OR_PONG)) == []
    assert sim.core.machine.health == HealthCheckInfo("c-2", 0.5, 21.0, 3)
    # A second ack is nothing.
    assert sim.step(HealthAnswered(1, "c-9", Answer.ACK)) == []
    assert sim.core.machine.health.pongs == 3


def test_a_protocol_pong_answers_only_a_check_sent_as_a_protocol_ping() -> None:
    sim = Sim(core_config(ping_interval=10.0, pong_timeout=2.0))
    sim.up()
    # A Pong nobody asked for (websockets' keepalive, an eager server): no record, nothing.
    assert sim.step(ProtocolPong(1)) == []
    assert sim.core.machine.health.pongs == 0
    sim.advance(10.0)
    assert sim.timers[T.HEALTH_CHECK] == 12.0  # the pong deadline
    assert sim.step(ProtocolPingSent(1)) == []
    sim.now = 10.25
    records = len(sim.records)
    assert sim.step(ProtocolPong(1)) == [StartTimer(T.HEALTH_CHECK, 20.0)]  # the next check
    assert sim.core.machine.health == HealthCheckInfo("c-1", 0.25, 10.25, 1)  # the ack's id
    [pong] = sim.records[records:]
    assert isinstance(pong, InternalTransition) and pong.trigger.value == "pong"
    # Answered once: a second Pong is nothing.
    assert sim.step(ProtocolPong(1)) == []
    assert sim.core.machine.health.pongs == 1


def test_a_check_sent_as_a_message_is_not_answered_by_a_protocol_pong() -> None:
    sim = Sim(core_config(ping_interval=10.0, pong_timeout=2.0))
    sim.up()
    sim.advance(10.0)
    sim.step(ProtocolPingSent(1))
    sim.step(ProtocolPong(1))
    sim.advance(10.0)  # the next check goes out as a message: no ProtocolPingSent
    assert sim.step(ProtocolPong(1)) == []
    assert sim.timers[T.HEALTH_CHECK] == 22.0  # still the pong deadline
    assert sim.core.machine.health.pongs == 1


def test_protocol_pings_and_pongs_of_a_socket_that_is_gone_are_dropped() -> None:
    sim = Sim(core_config(ping_interval=10.0, pong_timeout=2.0), recovery_config())
    sim.up()
    sim.advance(10.0)
    sim.drop()
    sim.reconnect_up()
    sim.advance(10.0)
    out = sim.step(ProtocolPingSent(1)) + sim.step(ProtocolPong(1))
    assert [e.event for e in out if isinstance(e, Log)] == [LogEvent.STALE_SOCKET_EVENT] * 2
    assert sim.timers[T.HEALTH_CHECK] == sim.now + 2.0  # still the pong deadline
    # The current socket's Pong finds no protocol Ping outstanding either.
    assert sim.step(ProtocolPong(2)) == []


def test_a_socket_going_forgets_its_protocol_ping() -> None:
    sim = Sim(core_config(ping_interval=10.0, pong_timeout=2.0))
    sim.up()
    sim.advance(10.0)
    sim.step(ProtocolPingSent(1))
    sim.step(ReadingPaused(1))
    sim.step(UserDisconnect())
    assert sim.step(ProtocolPong(1)) == []
    assert sim.core.machine.health.pongs == 0


def test_a_ping_still_unanswered_at_the_next_slot_sends_no_second_check() -> None:
    sim = Sim(core_config(ping_interval=10.0, pong_timeout=30.0))
    sim.up()
    sim.advance(10.0)
    out = sim.advance(10.0)
    assert out == [StartTimer(T.HEALTH_CHECK, 30.0)]  # the next slot, before the deadline at 40


def test_no_pong_within_the_deadline_disconnects() -> None:
    sim = Sim(core_config(ping_interval=10.0, pong_timeout=2.0))
    sim.up()
    sim.advance(11.999)
    assert sim.state() is S.CONNECTED
    sim.advance(0.001)
    assert sim.core.machine.source == NoPongReceived()


def test_any_frame_after_the_ping_counts_as_alive() -> None:
    sim = Sim(core_config(ping_interval=10.0, pong_timeout=2.0))
    sim.up()
    sim.advance(10.0)
    sim.last_frame_at = 10.5
    assert sim.advance(2.0) == [StartTimer(T.HEALTH_CHECK, 20.0)]  # alive: on to the next check
    assert sim.state() is S.CONNECTED
    sim.last_frame_at = 20.0  # a frame at the very moment of the ping is no answer to it
    sim.advance(8.0)
    sim.advance(1.999)
    assert sim.state() is S.CONNECTED
    sim.advance(0.001)
    assert sim.state() is S.DISCONNECTING


def test_a_stalled_reader_stops_the_pong_deadline_and_resuming_restarts_it() -> None:
    sim = Sim(core_config(ping_interval=10.0, pong_timeout=2.0))
    sim.up()
    sim.advance(10.0)
    # The timer goes from the deadline at 12 to the next check.
    assert sim.step(ReadingPaused(1)) == [StartTimer(T.HEALTH_CHECK, 20.0)]
    sim.advance(60.0)
    assert sim.state() is S.CONNECTED
    assert sim.of(SendHealthCheck) == [SendHealthCheck(1, HealthCheckInfo("c-1", None, 0.0, 0))]
    assert sim.timers[T.HEALTH_CHECK] == 80.0  # the next slot: no deadline
    out = sim.step(ReadingResumed(1))
    assert out == [StartTimer(T.HEALTH_CHECK, 72.0)]
    sim.advance(2.0)
    assert sim.core.machine.source == NoPongReceived()


def test_a_pong_deadline_and_a_check_due_together_are_both_handled_by_the_one_timer() -> None:
    sim = Sim(core_config(ping_interval=10.0, pong_timeout=2.0))
    sim.up()
    sim.advance(10.0)
    sim.step(ReadingPaused(1))
    sim.advance(8.0)
    sim.step(ReadingResumed(1))  # at 18: the deadline is at 20, with the next check
    assert sim.timers == {T.HEALTH_CHECK: 20.0}
    sim.last_frame_at = 19.0
    out = sim.advance(2.0)
    # Alive at its deadline, and the check due at that moment goes out.
    assert out == [SendHealthCheck(1, sim.core.machine.health), StartTimer(T.HEALTH_CHECK, 22.0)]
    sim.advance(2.0)
    assert sim.core.machine.source == NoPongReceived()


def test_a_deadline_resumed_past_the_next_check_waits_for_its_own_time() -> None:
    sim = Sim(core_config(ping_interval=10.0, pong_timeout=2.0))
    sim.up()
    sim.advance(10.0)
    sim.step(ReadingPaused(1))
    sim.advance(9.5)
    sim.step(ReadingResumed(1))  # at 19.5: the next check at 20 comes before the deadline
    assert sim.timers == {T.HEALTH_CHECK: 20.0}
    assert sim.advance(0.5) == [StartTimer(T.HEALTH_CHECK, 21.5)]  # no second check
    assert len(sim.of(SendHealthCheck)) == 1
    sim.advance(1.499)
    assert sim.state() is S.CONNECTED
    sim.advance(0.001)
    assert sim.core.machine.source == NoPongReceived()


@pytest.mark.parametrize("early", [1e-6, 0.0])
def test_a_health_timer_run_a_clock_tick_early_handles_what_it_was_armed_for(
    early: float,
) -> None:
    sim = Sim(core_config(ping_interval=10.0, pong_timeout=2.0))
    sim.up()
    sim.now = 10.0 - early
    assert sim.of(SendHealthCheck, sim.fire(T.HEALTH_CHECK)) != []
    sim.now = 12.0 - early
    sim.fire(T.HEALTH_CHECK)
    assert sim.core.machine.source == NoPongReceived()


def test_a_frame_after_resuming_proves_the_peer_alive() -> None:
    sim = Sim(core_config(ping_interval=10.0, pong_timeout=2.0))
    sim.up()
    sim.advance(10.0)
    sim.step(ReadingPaused(1))
    sim.advance(60.0)
    sim.step(ReadingResumed(1))
    sim.last_frame_at = 71.0
    sim.advance(1.999)
    out = sim.advance(0.001)
    assert sim.state() is S.CONNECTED
    assert sim.of(CloseSocket, out) == []


def test_a_ping_while_the_reader_is_stalled_arms_no_pong_deadline() -> None:
    sim = Sim(core_config(ping_interval=10.0, pong_timeout=2.0))
    sim.up()
    sim.step(ReadingPaused(1))
    out = sim.advance(10.0)
    assert out == [SendHealthCheck(1, sim.core.machine.health), StartTimer(T.HEALTH_CHECK, 20.0)]


def test_the_idle_deadline_counts_from_the_last_frame() -> None:
    sim = Sim(no_ping(idle_timeout=30.0))
    sim.up()
    assert sim.timers == {T.IDLE_DEADLINE: 30.0}
    sim.last_frame_at = 20.0
    assert sim.advance(30.0) == [StartTimer(T.IDLE_DEADLINE, 50.0)]
    sim.step(ReadingPaused(1))
    assert sim.advance(20.0) == [StartTimer(T.IDLE_DEADLINE, 80.0)]
    out = sim.step(ReadingResumed(1))
    assert out == [StartTimer(T.IDLE_DEADLINE, 80.0)]
    sim.advance(30.0)
    assert sim.core.machine.source == NoPongReceived()


def test_with_no_frames_at_all_the_idle_deadline_disconnects_exactly_on_time() -> None:
    sim = Sim(no_ping(idle_timeout=30.0))
    sim.up()
    sim.advance(29.999)
    assert sim.state() is S.CONNECTED
    sim.advance(0.001)
    assert sim.core.machine.source == NoPongReceived()


def test_an_idle_check_that_fires_early_counts_from_the_connection() -> None:
    sim = Sim(no_ping(idle_timeout=30.0), now=50.0)
    sim.up()
    sim.now = 60.0
    assert sim.fire(T.IDLE_DEADLINE) == [StartTimer(T.IDLE_DEADLINE, 80.0)]


def test_a_pong_from_an_older_socket_is_dropped() -> None:
    sim = Sim(core_config(ping_interval=10.0, pong_timeout=2.0), recovery_config())
    sim.up()
    sim.drop()
    sim.reconnect_up()
    assert sim.socket == 2
    sim.advance(sim.timers[T.HEALTH_CHECK] - sim.now)
    assert sim.timers[T.HEALTH_CHECK] == sim.now + 2.0  # the pong deadline
    records = len(sim.records)
    out = sim.step(HealthAnswered(1, "old", Answer.ACK_OR_PONG))
    assert out == [
        Log(
            "debug",
            LogEvent.STALE_SOCKET_EVENT,
            (("what", "health answer"), ("socket", 1), ("current", 2)),
        )
    ]
    assert len(sim.records) == records
    assert sim.timers[T.HEALTH_CHECK] == sim.now + 2.0
    sim.advance(2.0)
    assert sim.core.machine.source == NoPongReceived()


# -- stale sockets -----------------------------------------------------------------------------

STALE_INPUTS: list[Input] = [
    SocketOpened(1),
    HealthAnswered(1, "old", Answer.ACK),
    HealthAnswered(1, "old", Answer.ACK_OR_PONG),
    ServerErrorReceived(1, ServerErrorEvent("late")),
    SocketClosed(1, 1006),
    HookFinished(1, Hook.ON_CONNECTION_ESTABLISHED),
    ReadingPaused(1),
    ReadingResumed(1),
]


STALE_WHAT: dict[type, str] = {
    SocketOpened: "opened",
    HealthAnswered: "health answer",
    ServerErrorReceived: "server error",
    SocketClosed: "closed",
    HookFinished: "hook finished",
    ReadingPaused: "reading paused",
    ReadingResumed: "reading resumed",
}


@pytest.mark.parametrize("state", [S.CONNECTING, S.AUTHENTICATING, S.CONNECTED, S.DISCONNECTED])
@pytest.mark.parametrize("event", STALE_INPUTS, ids=lambda e: type(e).__name__)
def test_inputs_from_a_socket_that_is_gone_are_dropped(
    state: ConnectionState, event: Input
) -> None:
    sim = Sim(core_config(ping_interval=10.0, ack_required=False, has_auth_hook=True))
    sim.connect()
    sim.step(SocketOpened(1))
    sim.step(SocketClosed(1, 1006))  # no recovery: disconnected for good
    if state is not S.DISCONNECTED:
        sim.connect()
        if state is not S.CONNECTING:
            sim.step(SocketOpened(2))
        if state is S.CONNECTED:
            sim.step(HookFinished(2, Hook.ON_CONNECTION_ESTABLISHED))
    assert sim.state() is state
    snapshot, timers, hooks = sim.core.machine.snapshot(), dict(sim.timers), sim.core.hooks
    out = sim.step(event)
    current = sim.core.socket
    assert out == [
        Log(
            "debug",
            LogEvent.STALE_SOCKET_EVENT,
            (("what", STALE_WHAT[type(event)]), ("socket", 1), ("current", current)),
        )
    ]
    assert sim.core.machine.snapshot() == snapshot
    assert (sim.timers, sim.core.hooks) == (timers, hooks)


# -- close reasons -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("", ""),
        ("a" * 123, "a" * 123),
        ("a" * 124, "a" * 123),
        ("a" * 500, "a" * 123),
        ("é" * 61 + "a", "é" * 61 + "a"),  # 123 bytes exactly
        ("é" * 62, "é" * 61),  # 124 bytes: the last character would be cut in half
        ("a" + "€" * 41, "a" + "€" * 40 + ""),  # 124 bytes: 3-byte characters
        ("€" * 41, "€" * 41),  # 123 bytes
        ("🙂" * 31, "🙂" * 30),  # 4-byte characters: 120 bytes fit, 124 do not
    ],
)
def test_close_reasons_are_cut_to_123_bytes_on_a_character_boundary(
    reason: str, expected: str
) -> None:
    cut = truncate_close_reason(reason)
    assert cut == expected
    assert len(cut.encode("utf-8")) <= 123
    assert reason.startswith(cut)


@pytest.mark.parametrize("message", ["x" * 300, "é" * 200, "€" * 100])
def test_the_close_frame_reason_fits_in_a_close_frame(message: str) -> None:
    sim = Sim(no_ping())
    sim.up()
    out = sim.step(ServerErrorReceived(1, ServerErrorEvent(message)))
    [close] = sim.of(CloseSocket, out)
    assert isinstance(close, CloseSocket)
    full = f"server error: {message}"
    assert 120 <= len(close.reason.encode("utf-8")) <= 123
    assert full.startswith(close.reason)
    assert close.reason == truncate_close_reason(full)
    assert (close.socket, close.code, close.timeout) == (1, 1000, 5.0)


# -- recovery: policy, strategy, flapping guard ---------------------------------------------------


def test_a_drop_schedules_a_reconnect_with_the_strategys_delay() -> None:
    strategy = Strategy(delay=2.5)
    sim = Sim(no_ping(), recovery_config(strategy))
    sim.up()
    sim.now = 4.0
    out = sim.drop()
    assert strategy.calls == [(1, DROP)]
    assert StartTimer(T.RECONNECT, 6.5) in out
    assert sim.core.recovery is not None and sim.core.recovery.retry_in == 2.5
    assert not any(isinstance(e, Finished) for e in out)
    assert sim.advance(2.499) == []
    out = sim.advance(0.001)
    assert out[0] == OpenSocket(2)
    reconnect = sim.records[-1]
    assert isinstance(reconnect, StateChange) and reconnect.reconnect
    assert sim.core.recovery.reconnects == 1
    assert sim.core.recovery.retry_in is None


@pytest.mark.parametrize(("up_for", "second_attempt"), [(9.999, 2), (10.0, 1), (60.0, 1)])
def test_the_flapping_guard_keeps_backing_off_after_a_short_connection(
    up_for: float, second_attempt: int
) -> None:
    strategy = Strategy(delay=1.0)
    sim = Sim(no_ping(), recovery_config(strategy, stable_after=10.0))
    sim.up()
    sim.advance(1.0)
    sim.drop()
    sim.reconnect_up()
    sim.advance(up_for)
    sim.drop()
    assert strategy.attempts == [1, second_attempt]


def test_a_server_that_accepts_and_closes_at_once_backs_off_ever_further() -> None:
    strategy = Strategy(delay=1.0)
    sim = Sim(no_ping(), recovery_config(strategy, stable_after=10.0))
    sim.up()
    for _ in range(4):
        sim.drop()
        sim.reconnect_up()
    sim.drop()
    assert strategy.attempts == [1, 2, 3, 4, 5]


def test_failed_attempts_that_never_connect_count_up() -> None:
    strategy = Strategy(delay=1.0)
    sim = Sim(no_ping(), recovery_config(strategy, stable_after=0.0))
    sim.up()
    sim.advance(5.0)
    sim.drop()
    for _ in range(3):
        sim.advance(1.0)
        sim.step(SocketClosed(sim.socket, None, "", ConnectionRefused("refused")))
    assert strategy.attempts == [1, 2, 3, 4]


def test_a_user_connect_resets_the_attempt_count() -> None:
    strategy = Strategy(delay=1.0)
    sim = Sim(no_ping(), recovery_config(strategy, stable_after=10.0))
    sim.up()
    for _ in range(3):
        sim.drop()
        sim.reconnect_up()
    assert sim.core.recovery is not None and sim.core.recovery.attempt == 3
    sim.step(UserDisconnect())
    sim.step(SocketClosed(sim.socket, 1000))
    sim.up()
    assert sim.core.recovery.attempt == 0
    sim.drop()
    assert strategy.attempts == [1, 2, 3, 1]


def test_a_user_connect_while_waiting_to_reconnect_resets_the_attempt_count() -> None:
    strategy = Strategy(delay=5.0)
    sim = Sim(no_ping(), recovery_config(strategy))
    sim.up()
    sim.drop()
    out = sim.connect()  # the user does not wait for the backoff
    assert CancelTimer(T.RECONNECT) in out
    assert sim.core.recovery is not None and sim.core.recovery.attempt == 0
    assert not sim.core.recovery.reconnect_pending
    reconnect = sim.records[-1]
    assert isinstance(reconnect, StateChange) and not reconnect.reconnect
    sim.open_and_ack()
    sim.drop()
    assert strategy.attempts == [1, 1]


@pytest.mark.parametrize(
    "source",
    [ServerInitiated(1000), ServerInitiated(4400), ServerInitiated(error=HandshakeRejected(404))],
)
def test_the_policy_stops_recovery(source: ServerInitiated) -> None:
    strategy = Strategy()
    sim = Sim(no_ping(), recovery_config(strategy))
    sim.up()
    out = sim.step(SocketClosed(1, source.close_code, "", source.error))  # type: ignore[arg-type]
    assert strategy.calls == []
    assert T.RECONNECT not in sim.timers
    assert out[-1] == Finished(source, gave_up=True)
    assert sim.core.recovery is not None and sim.core.recovery.gave_up
    assert sim.core.done and sim.core.final_source == source
    assert sim.advance(1000.0) == []


def test_a_strategy_answering_none_gives_up() -> None:
    sim = Sim(no_ping(), recovery_config(Strategy(delay=None)))
    sim.up()
    out = sim.drop()
    assert T.RECONNECT not in sim.timers
    logs = [e for e in sim.of(Log, out) if isinstance(e, Log) and e.event == "recovery_stopped"]
    assert dict(logs[0].fields)["reason"] == "the retry strategy gave up after 0 retries"
    assert out[-1] == Finished(DROP, gave_up=True)


@pytest.mark.parametrize(("delay", "at"), [(math.nan, None), (-3.0, 0.0), (2, 2.0)])
def test_odd_strategy_answers(delay: float, at: float | None) -> None:
    sim = Sim(no_ping(), recovery_config(Strategy(delay=delay)))
    sim.up()
    out = sim.drop()
    if at is None:
        assert out[-1] == Finished(DROP, gave_up=True)
    else:
        assert StartTimer(T.RECONNECT, at) in out
        assert isinstance(sim.core.recovery.retry_in, float)  # type: ignore[union-attr]


def test_a_strategy_answer_that_is_not_a_number_gives_up() -> None:
    sim = Sim(no_ping(), recovery_config(Strategy(delay="soon")))  # type: ignore[arg-type]
    sim.up()
    out = sim.drop()
    assert out[-1] == Finished(DROP, gave_up=True)


class Broken(Exception):
    pass


def test_a_raising_strategy_is_reported_and_recovery_gives_up() -> None:
    class Raising:
        def next_delay(self, attempt: int, source: DisconnectionSource) -> float | None:
            raise Broken("strategy")

    sim = Sim(no_ping(), recovery_config_with(default_reconnect_policy, Raising()))
    sim.up()
    out = sim.drop()
    [report] = sim.of(ReportError, out)
    assert isinstance(report, ReportError) and report.where == "retry strategy"
    assert isinstance(report.error, Broken)
    assert out[-1] == Finished(DROP, gave_up=True)
    assert T.RECONNECT not in sim.timers


def test_a_raising_policy_is_reported_and_recovery_gives_up() -> None:
    def policy(source: DisconnectionSource) -> bool:
        raise Broken("policy")

    strategy = Strategy()
    sim = Sim(no_ping(), recovery_config(strategy, policy))
    sim.up()
    out = sim.drop()
    [report] = sim.of(ReportError, out)
    assert isinstance(report, ReportError) and report.where == "reconnect policy"
    assert out[-1] == Finished(DROP, gave_up=True)
    assert strategy.calls == []


def test_raising_user_functions_are_reported_with_their_exception_and_why() -> None:
    error = Broken("policy")

    def policy(source: DisconnectionSource) -> bool:
        raise error

    sim = Sim(no_ping(), recovery_config(Strategy(), policy))
    sim.up()
    out = sim.drop()
    assert ReportError(error, "reconnect policy") in out
    assert log_of(out, "recovery_stopped", "warning")["reason"] == "the reconnect policy raised"

    class Raising:
        def next_delay(self, attempt: int, source: DisconnectionSource) -> float | None:
            raise error

    sim = Sim(no_ping(), recovery_config_with(default_reconnect_policy, Raising()))
    sim.up()
    out = sim.drop()
    assert log_of(out, "recovery_stopped", "warning")["reason"] == "the retry strategy raised"


def test_a_user_connect_after_giving_up_recovers_again() -> None:
    strategy = Strategy(delay=None)
    sim = Sim(no_ping(), recovery_config(strategy))
    sim.up()
    sim.drop()
    assert sim.core.done
    strategy.delay = 1.0
    sim.up()
    assert not sim.core.done and sim.core.final_source is None
    assert sim.core.recovery is not None and not sim.core.recovery.gave_up
    out = sim.drop()
    assert StartTimer(T.RECONNECT, sim.now + 1.0) in out


@pytest.mark.parametrize(
    ("error", "code"),
    [(HandshakeRejected(401), None), (HandshakeRejected(403), None), (None, 4401)],
)
def test_an_auth_rejection_is_retried_once_with_a_fresh_token(
    error: HandshakeRejected | None, code: int | None
) -> None:
    strategy = Strategy(delay=1.0)
    sim = Sim(no_ping(has_token_provider=True), recovery_config(strategy))
    sim.up()
    source = ServerInitiated(code, "", error)
    sim.step(SocketClosed(1, code, "", error))
    assert T.RECONNECT in sim.timers
    sim.advance(1.0)
    out = sim.step(SocketClosed(2, code, "", error))
    assert out[-1] == Finished(source, gave_up=True)
    assert strategy.attempts == [1]


def test_without_a_token_provider_an_auth_rejection_stops_at_once() -> None:
    sim = Sim(no_ping(), recovery_config())
    sim.up()
    out = sim.step(SocketClosed(1, None, "", HandshakeRejected(401)))
    assert isinstance(out[-1], Finished) and out[-1].gave_up


def test_a_stable_connection_earns_a_new_token_retry() -> None:
    strategy = Strategy(delay=1.0)
    sim = Sim(no_ping(has_token_provider=True), recovery_config(strategy, stable_after=10.0))
    sim.up()
    sim.step(SocketClosed(1, 4401))
    sim.reconnect_up()
    sim.advance(10.0)
    sim.step(SocketClosed(2, 4401))
    assert T.RECONNECT in sim.timers
    assert strategy.attempts == [1, 1]


def test_a_user_connect_earns_a_new_token_retry() -> None:
    sim = Sim(no_ping(has_token_provider=True), recovery_config())
    sim.up()
    sim.step(SocketClosed(1, 4401))
    sim.advance(1.0)
    sim.step(SocketClosed(2, 4401))
    assert sim.core.done
    sim.up()
    sim.step(SocketClosed(3, 4401))
    assert T.RECONNECT in sim.timers


def test_recovery_flags_are_plain_booleans() -> None:
    sim = Sim(no_ping(has_token_provider=True), recovery_config(stable_after=1.0))
    sim.up()
    sim.step(SocketClosed(1, 4401))
    recovery = sim.core.recovery
    assert recovery is not None and recovery.token_retry_used is True
    assert recovery.reconnect_pending is True
    sim.reconnect_up()
    assert (recovery.reconnect_pending, recovery.gave_up, sim.core.done) == (False, False, False)
    sim.advance(1.0)
    sim.drop()
    assert recovery.token_retry_used is False
    sim.step(UserDisconnect())
    assert recovery.reconnect_pending is False


# -- recovery: a user disconnect sticks ---------------------------------------------------------


def test_a_user_disconnect_cancels_the_backoff_timer_at_once() -> None:
    sim = Sim(no_ping(), recovery_config(Strategy(delay=30.0)))
    sim.up()
    sim.drop()
    assert T.RECONNECT in sim.timers
    out = sim.step(UserDisconnect(5))
    assert CancelTimer(T.RECONNECT) in out
    assert ResolveDisconnect((5,)) in out
    assert out[-1] == Finished(UserInitiated())
    assert sim.core.timers == frozenset()
    assert sim.core.recovery is not None and not sim.core.recovery.reconnect_pending
    assert sim.core.recovery.retry_in is None
    assert sim.advance(100.0) == []


def test_a_user_close_cancels_the_backoff_timer_at_once() -> None:
    sim = Sim(no_ping(), recovery_config(Strategy(delay=30.0)))
    sim.up()
    sim.drop()
    out = sim.step(UserClose(6))
    assert CancelTimer(T.RECONNECT) in out
    assert ResolveDisconnect((6,)) in out
    assert sim.core.closed and sim.core.timers == frozenset()
    assert sim.step(UserClose(7)) == [ResolveDisconnect((7,))]
    assert sim.step(UserConnect(8)) == [ResolveConnect((8,), UserInitiated(), closed=True)]


def test_a_user_disconnect_while_going_down_prevents_the_reconnect() -> None:
    sim = Sim(core_config(ping_interval=10.0, pong_timeout=1.0), recovery_config())
    sim.up()
    sim.advance(11.0)  # no pong: disconnecting
    assert sim.state() is S.DISCONNECTING
    sim.step(UserDisconnect())
    out = sim.step(SocketClosed(1, 1006))
    assert out[-1] == Finished(UserInitiated())
    assert T.RECONNECT not in sim.timers
    assert sim.advance(100.0) == []


def test_detaching_recovery_cancels_its_timers_and_settles_the_buffer() -> None:
    sim = Sim(no_ping(), recovery_config(Strategy(delay=30.0), buffer_size=4))
    sim.up()
    sim.drop()
    sim.step(BufferSend(1))
    out = sim.step(DetachRecovery())
    assert CancelTimer(T.RECONNECT) in out
    assert CancelTimer(T.SEND_EXPIRY) in out
    [resolve] = sim.of(ResolveSend, out)
    assert isinstance(resolve, ResolveSend) and isinstance(resolve.error, SendAbandoned)
    assert out[-1] == Finished(DROP)
    assert sim.core.recovery is None
    assert sim.step(DetachRecovery()) == []


def test_detaching_recovery_while_connected_finishes_nothing() -> None:
    sim = Sim(no_ping(), recovery_config(buffer_size=2))
    sim.up()
    assert sim.step(DetachRecovery()) == []
    assert sim.core.done is False and sim.core.recovery is None


def test_detaching_recovery_abandons_each_waiting_message_by_number() -> None:
    sim = buffered_sim()
    sim.step(BufferSend(7))
    out = sim.step(DetachRecovery())
    [abandoned] = sim.of(ResolveSend, out)
    assert isinstance(abandoned, ResolveSend) and abandoned.message == 7
    assert str(abandoned.error) == "message not sent: the recovery handler was closed"


def test_attaching_recovery_twice_is_refused_with_a_warning() -> None:
    sim = Sim(recovery=recovery_config())
    assert sim.step(AttachRecovery(recovery_config())) == [
        Log("warning", LogEvent.RECOVERY_ALREADY_ATTACHED)
    ]


# -- recovery: network and pause ----------------------------------------------------------------


def test_losing_the_network_disconnects_and_schedules_nothing_until_it_is_back() -> None:
    strategy = Strategy(delay=1.0)
    sim = Sim(no_ping(), recovery_config(strategy))
    sim.up()
    out = sim.step(NetworkChanged(available=False))
    assert CloseSocket(1, 1000, "network unavailable", 5.0) in out
    assert sim.core.machine.source == SystemInitiated("network unavailable")
    out = sim.step(SocketClosed(1, 1006))
    assert T.RECONNECT not in sim.timers
    assert not sim.of(OpenSocket, out)
    assert sim.advance(1000.0) == []
    assert strategy.calls == []
    assert sim.core.recovery is not None and sim.core.recovery.reconnect_pending
    out = sim.step(NetworkChanged(available=True))
    assert out[0] == Log(
        "info",
        LogEvent.RECONNECT_NOW,
        (("attempt", 0), ("source", "system"), ("code", None), ("reason", "network available")),
    )
    assert OpenSocket(2) in out
    assert sim.state() is S.CONNECTING


def test_a_drop_while_offline_schedules_no_reconnect() -> None:
    strategy = Strategy(delay=1.0)
    sim = Sim(no_ping(), recovery_config(strategy), network=False)
    sim.up()
    out = sim.drop()
    assert T.RECONNECT not in sim.timers
    assert strategy.calls == []
    assert not sim.core.done
    assert sim.advance(1000.0) == []
    out = sim.step(NetworkChanged(available=True))
    assert OpenSocket(2) in out


def test_losing_the_network_during_the_backoff_cancels_the_reconnect_timer() -> None:
    sim = Sim(no_ping(), recovery_config(Strategy(delay=5.0)))
    sim.up()
    sim.drop()
    out = sim.step(NetworkChanged(available=False))
    assert out == [CancelTimer(T.RECONNECT)]
    assert sim.advance(100.0) == []
    out = sim.step(NetworkChanged(available=True))
    assert OpenSocket(2) in out


def test_network_reports_that_change_nothing_are_ignored() -> None:
    sim = Sim(no_ping(), recovery_config())
    sim.up()
    assert sim.step(NetworkChanged(available=True)) == []
    assert Sim().step(NetworkChanged(available=False)) == []  # no recovery attached


def test_network_back_while_nothing_waits_does_not_connect() -> None:
    sim = Sim(no_ping(), recovery_config(), network=False)
    assert sim.step(NetworkChanged(available=True)) == []
    assert sim.state() is S.INITIALIZED


def test_pausing_disconnects_and_resuming_reconnects_at_once() -> None:
    sim = Sim(no_ping(), recovery_config(Strategy(delay=9.0)))
    sim.up()
    out = sim.step(AppPaused())
    assert CloseSocket(1, 1000, "app paused", 5.0) in out
    assert sim.step(AppPaused()) == []
    sim.step(SocketClosed(1, 1000))
    assert sim.advance(100.0) == []
    assert sim.step(NetworkChanged(available=False)) == []
    assert sim.step(NetworkChanged(available=True)) == []  # still paused
    out = sim.step(AppResumed())
    assert OpenSocket(2) in out
    assert sim.step(AppResumed()) == []
    assert Sim().step(AppPaused()) == []
    assert Sim().step(AppResumed()) == []


def test_resumed_before_the_close_completed_reconnects_when_it_does() -> None:
    sim = Sim(no_ping(), recovery_config(Strategy(delay=9.0)))
    sim.up()
    sim.step(AppPaused())
    assert sim.step(AppResumed()) == []
    out = sim.step(SocketClosed(1, 1000))
    assert OpenSocket(2) in out
    assert T.RECONNECT not in sim.timers


def test_a_reconnect_timer_that_fires_while_paused_does_not_connect() -> None:
    sim = Sim(no_ping(), recovery_config(Strategy(delay=9.0)))
    sim.up()
    sim.drop()
    recovery = sim.core.recovery
    assert recovery is not None
    recovery.paused = True  # paused in the same tick the timer fired
    assert sim.fire(T.RECONNECT) == []
    assert sim.state() is S.DISCONNECTED
    assert recovery.retry_in is None


def test_the_network_coming_back_after_recovery_gave_up_does_not_reconnect() -> None:
    sim = Sim(no_ping(), recovery_config(policy=lambda s: False))
    sim.up()
    sim.drop()
    assert sim.step(NetworkChanged(available=False)) == []
    assert sim.step(NetworkChanged(available=True)) == []
    assert sim.state() is S.DISCONNECTED


# -- connect() waiters ----------------------------------------------------------------------------


def test_a_failed_connect_without_recovery_fails_every_waiter_once() -> None:
    sim = Sim(no_ping())
    sim.step(UserConnect(1))
    sim.step(UserConnect(2))
    error = ConnectionRefused("refused")
    refused = ServerInitiated(None, "", error)
    out = sim.step(SocketClosed(1, None, "", error))
    assert sim.of(ResolveConnect, out) == [ResolveConnect((1, 2), refused)]
    assert out[-1] == Finished(refused)


def test_with_recovery_a_failed_first_connect_fails_its_waiters_unless_asked_to_retry() -> None:
    sim = Sim(no_ping(), recovery_config())
    sim.step(UserConnect(1))
    sim.step(UserConnect(2))  # while connecting: waits on the same attempt
    error = ConnectionRefused("refused")
    out = sim.step(SocketClosed(1, None, "", error))
    assert sim.of(ResolveConnect, out) == [ResolveConnect((1, 2), ServerInitiated(None, "", error))]
    assert T.RECONNECT in sim.timers


def test_retry_first_connect_keeps_waiters_until_connected() -> None:
    sim = Sim(no_ping(), recovery_config(retry_first_connect=True))
    sim.step(UserConnect(1))
    out = sim.step(SocketClosed(1, None, "", ConnectionRefused("refused")))
    assert sim.of(ResolveConnect, out) == []
    sim.reconnect_up()
    assert sim.of(ResolveConnect)[-1] == ResolveConnect((1,))


def test_retry_first_connect_fails_waiters_when_recovery_gives_up() -> None:
    strategy = Strategy(delay=1.0)
    sim = Sim(no_ping(), recovery_config(strategy, retry_first_connect=True))
    sim.step(UserConnect(1))
    sim.step(SocketClosed(1, None, "", ConnectionRefused("refused")))
    strategy.delay = None
    sim.advance(1.0)
    out = sim.step(SocketClosed(2, None, "", ConnectionRefused("again")))
    [resolve] = sim.of(ResolveConnect, out)
    assert isinstance(resolve, ResolveConnect) and resolve.waiters == (1,)
    assert resolve.source is not None and not resolve.closed


def test_retry_first_connect_fails_waiters_on_user_disconnect() -> None:
    sim = Sim(no_ping(), recovery_config(Strategy(delay=5.0), retry_first_connect=True))
    sim.step(UserConnect(1))
    sim.step(SocketClosed(1, None, "", ConnectionRefused("refused")))
    out = sim.step(UserDisconnect())
    assert ResolveConnect((1,), UserInitiated()) in out


def test_retry_first_connect_keeps_waiting_while_offline() -> None:
    sim = Sim(no_ping(), recovery_config(retry_first_connect=True), network=False)
    sim.step(UserConnect(1))
    out = sim.step(SocketClosed(1, None, "", ConnectionRefused("offline")))
    assert sim.of(ResolveConnect, out) == []
    sim.step(NetworkChanged(available=True))
    sim.open_and_ack()
    assert sim.of(ResolveConnect)[-1] == ResolveConnect((1,))


def test_without_retry_first_connect_an_offline_failure_fails_the_waiter_with_its_source() -> None:
    sim = Sim(no_ping(), recovery_config(), network=False)
    sim.step(UserConnect(1))
    error = ConnectionRefused("offline")
    out = sim.step(SocketClosed(1, None, "", error))
    assert sim.of(ResolveConnect, out) == [ResolveConnect((1,), ServerInitiated(None, "", error))]


def test_a_connect_remembered_then_cancelled_by_the_user_fails_its_waiter() -> None:
    sim = Sim(no_ping(), recovery_config())
    sim.up()
    sim.step(UserDisconnect())
    assert sim.step(UserConnect(5)) == []  # remembered until the close completes
    sim.step(UserDisconnect())  # the user's last word
    out = sim.step(SocketClosed(1, 1000))
    assert ResolveConnect((5,), UserInitiated()) in out
    assert sim.state() is S.DISCONNECTED


def test_a_connect_waiter_that_arrived_between_attempts_waits_for_the_next() -> None:
    sim = Sim(no_ping(), recovery_config(Strategy(delay=5.0), retry_first_connect=True))
    sim.step(UserConnect(1))
    sim.step(SocketClosed(1, None, "", ConnectionRefused("refused")))
    assert sim.state() is S.DISCONNECTED
    sim.step(UserConnect(2))  # a user connect: an attempt at once
    sim.open_and_ack()
    assert sim.of(ResolveConnect)[-1] == ResolveConnect((1, 2))


def test_waiters_of_a_closed_client_are_failed_as_closed() -> None:
    sim = Sim(no_ping())
    sim.step(UserConnect(1))
    out = sim.step(UserClose(2))
    assert CloseSocket(1, 1000, "user disconnect", 5.0) in out
    route, error = sim.core.send_route()
    assert route is SendRoute.REFUSE and isinstance(error, ClientClosed)
    out = sim.step(SocketClosed(1, None))
    assert ResolveConnect((1,), UserInitiated(), closed=True) in out
    assert ResolveDisconnect((2,)) in out
    assert out[-1] == Finished(UserInitiated())
    assert sim.core.closed


def test_close_before_any_connect_finishes_at_once() -> None:
    sim = Sim()
    assert sim.step(UserClose(1)) == [ResolveDisconnect((1,)), Finished(None)]
    assert sim.core.closed and sim.core.done
    assert sim.step(UserConnect(2)) == [ResolveConnect((2,), None, closed=True)]


def test_a_connect_while_closing_fails_at_once() -> None:
    sim = Sim(no_ping())
    sim.up()
    sim.step(UserClose())
    assert sim.step(UserConnect(9)) == [ResolveConnect((9,), None, closed=True)]


# -- the send buffer ------------------------------------------------------------------------------


def buffered_sim(size: int = 3, ttl: float = 30.0) -> Sim:
    sim = Sim(no_ping(), recovery_config(Strategy(delay=5.0), buffer_size=size, buffer_ttl=ttl))
    sim.up()
    sim.drop()
    return sim


def test_send_routes() -> None:
    plain = Sim(no_ping())
    route, error = plain.core.send_route()
    assert route is SendRoute.REFUSE and isinstance(error, NotConnectedError)
    assert "'initialized'" in str(error)
    plain.connect()
    plain.step(SocketOpened(1))
    assert plain.core.send_route() == (SendRoute.DIRECT, None)
    plain.step(HealthAnswered(1, None, Answer.ACK))
    assert plain.core.send_route() == (SendRoute.DIRECT, None)
    plain.step(UserClose())
    route, error = plain.core.send_route()
    assert route is SendRoute.REFUSE and isinstance(error, ClientClosed)

    sim = buffered_sim()
    assert sim.core.send_route()[0] is SendRoute.BUFFER
    sim.advance(5.0)
    sim.step(SocketOpened(2))
    # In authenticating only the auth hook's messages go straight out.
    assert sim.core.send_route(handshake=True) == (SendRoute.DIRECT, None)
    assert sim.core.send_route()[0] is SendRoute.BUFFER
    sim.step(HealthAnswered(2, None, Answer.ACK))
    assert sim.core.send_route() == (SendRoute.DIRECT, None)
    sim.step(SocketClosed(2, 1006))
    sim.step(BufferSend(1))
    sim.reconnect_up()
    # A message waits behind a buffered one still being written.
    assert sim.core.send_route()[0] is SendRoute.BUFFER


def test_a_send_buffer_in_authenticating_without_buffering_goes_direct() -> None:
    sim = Sim(no_ping(), recovery_config())
    sim.connect()
    sim.step(SocketOpened(1))
    assert sim.core.send_route() == (SendRoute.DIRECT, None)


def test_buffered_messages_are_written_in_order_one_at_a_time() -> None:
    sim = buffered_sim()
    assert sim.step(BufferSend(1)) == [StartTimer(T.SEND_EXPIRY, 30.0)]
    sim.now = 1.0
    assert sim.step(BufferSend(2)) == [StartTimer(T.SEND_EXPIRY, 30.0)]
    assert sim.core.pending_sends == 2
    out = sim.reconnect_up()
    assert sim.of(WriteBuffered, out) == [WriteBuffered(2, 1)]
    # Message 1 is on the wire: it can no longer expire, message 2 still can.
    out = sim.advance(25.0)
    assert out == [StartTimer(T.SEND_EXPIRY, 31.0)]
    out = sim.step(SendWritten(1, ok=True))
    assert out == [ResolveSend(1), WriteBuffered(2, 2)]
    out = sim.step(SendWritten(2, ok=True))
    assert out == [ResolveSend(2)]
    assert sim.core.pending_sends == 0
    assert sim.step(SendWritten(2, ok=True)) == []  # unknown message: nothing
    assert sim.advance(10.0) == []  # a leftover expiry check finds nothing to expire


def test_a_send_while_connected_goes_through_the_buffer_to_keep_order() -> None:
    sim = Sim(no_ping(), recovery_config(buffer_size=2))
    sim.up()
    out = sim.step(BufferSend(1))
    assert out == [StartTimer(T.SEND_EXPIRY, 30.0), WriteBuffered(1, 1)]
    assert sim.core.send_route()[0] is SendRoute.BUFFER  # behind message 1
    out = sim.step(BufferSend(2))
    assert out == [StartTimer(T.SEND_EXPIRY, 30.0)]
    assert sim.step(SendWritten(1, ok=True)) == [ResolveSend(1), WriteBuffered(1, 2)]


def test_a_full_buffer_refuses_the_message() -> None:
    sim = buffered_sim(size=2)
    sim.step(BufferSend(1))
    sim.step(BufferSend(2))
    out = sim.step(BufferSend(3))
    [resolve] = out
    assert isinstance(resolve, ResolveSend) and resolve.message == 3
    assert isinstance(resolve.error, SendBufferFull)
    assert str(resolve.error) == "send buffer full (2 waiting)"
    assert sim.core.pending_sends == 2


def test_a_buffer_of_one_buffers_and_no_buffer_refuses() -> None:
    sim = Sim(no_ping(), recovery_config(Strategy(delay=5.0), buffer_size=1))
    sim.up()
    sim.drop()
    assert sim.core.send_route() == (SendRoute.BUFFER, None)
    sim = Sim(no_ping(), recovery_config(Strategy(delay=5.0)))
    sim.up()
    sim.drop()
    route, error = sim.core.send_route()
    assert route is SendRoute.REFUSE and isinstance(error, NotConnectedError)


def test_a_buffered_message_expires_after_its_time_to_live() -> None:
    sim = buffered_sim(ttl=3.0)
    sim.step(BufferSend(1))
    sim.now += 1.0
    sim.step(BufferSend(2))
    assert sim.timers[T.SEND_EXPIRY] == 3.0
    out = sim.advance(1.999)
    assert sim.of(ResolveSend, out) == []
    out = sim.advance(0.001)
    [expired] = sim.of(ResolveSend, out)
    assert isinstance(expired, ResolveSend) and expired.message == 1
    assert isinstance(expired.error, SendExpired)
    assert str(expired.error) == "message waited 3 s for a connection and expired"
    assert sim.timers[T.SEND_EXPIRY] == 4.0
    out = sim.advance(1.0)
    assert [e.message for e in sim.of(ResolveSend, out)] == [2]  # type: ignore[union-attr]
    assert T.SEND_EXPIRY not in sim.timers


def test_a_waiting_message_keeps_its_expiry_when_the_socket_goes() -> None:
    sim = Sim(no_ping(), recovery_config(Strategy(delay=5.0), buffer_size=3))
    sim.up()
    sim.step(BufferSend(1))
    sim.step(BufferSend(2))
    sim.drop()
    assert sim.timers[T.SEND_EXPIRY] == 30.0


@pytest.mark.parametrize("state", [S.CONNECTING, S.AUTHENTICATING])
def test_a_message_expiring_while_connecting_does_not_touch_the_connection(
    state: ConnectionState,
) -> None:
    sim = buffered_sim(ttl=6.0)
    sim.step(BufferSend(1))
    sim.advance(5.0)  # the reconnect: connecting
    if state is S.AUTHENTICATING:
        sim.step(SocketOpened(2))
    out = sim.advance(1.0)
    assert sim.of(ResolveSend, out) != []
    assert sim.state() is state


def test_a_message_expiring_while_disconnecting_does_not_abort_the_socket() -> None:
    sim = Sim(no_ping(), recovery_config(buffer_size=3, buffer_ttl=0.5))
    sim.up()
    sim.step(BufferSend(1))  # being written
    sim.step(BufferSend(2))
    sim.step(ServerErrorReceived(1, ServerErrorEvent("bye")))
    assert sim.state() is S.DISCONNECTING
    out = sim.advance(0.5)
    assert [e.message for e in sim.of(ResolveSend, out)] == [2]  # type: ignore[union-attr]
    assert sim.of(AbortSocket, out) == []
    assert sim.state() is S.DISCONNECTING


def test_a_failed_write_puts_the_message_back_for_the_next_socket() -> None:
    sim = buffered_sim()
    sim.step(BufferSend(1))
    sim.step(BufferSend(2))
    sim.reconnect_up()
    sim.step(SocketClosed(2, 1006))
    out = sim.step(SendWritten(1, ok=False))
    assert sim.of(ResolveSend, out) == []
    assert sim.timers[T.SEND_EXPIRY] == 30.0
    out = sim.reconnect_up()
    assert sim.of(WriteBuffered, out) == [WriteBuffered(3, 1)]


def test_a_failed_write_past_its_time_to_live_expires() -> None:
    sim = buffered_sim(ttl=10.0)
    sim.step(BufferSend(1))
    sim.reconnect_up()  # at 5 s: message 1 is written
    sim.advance(7.0)  # its time to live ends while its write is in flight
    assert sim.of(ResolveSend) == []
    sim.step(SocketClosed(2, 1006))
    out = sim.step(SendWritten(1, ok=False))
    [expired] = sim.of(ResolveSend, out)
    assert isinstance(expired, ResolveSend) and isinstance(expired.error, SendExpired)
    assert sim.core.pending_sends == 0


def test_a_write_failing_at_the_instant_its_time_is_up_expires_at_once() -> None:
    sim = buffered_sim(ttl=10.0)
    sim.step(BufferSend(1))
    sim.reconnect_up()
    sim.advance(5.0)
    sim.step(SocketClosed(2, 1006))
    assert sim.now == 10.0
    out = sim.step(SendWritten(1, ok=False))
    [expired] = sim.of(ResolveSend, out)
    assert isinstance(expired, ResolveSend) and isinstance(expired.error, SendExpired)


def test_a_failed_write_after_the_client_is_done_is_abandoned_with_the_final_cause() -> None:
    sim = Sim(no_ping(), recovery_config(Strategy(delay=None), buffer_size=3))
    sim.up()
    sim.step(BufferSend(1))
    sim.drop()
    assert sim.core.done
    out = sim.step(SendWritten(1, ok=False))
    [abandoned] = sim.of(ResolveSend, out)
    assert isinstance(abandoned, ResolveSend) and abandoned.message == 1
    assert str(abandoned.error) == "message not sent: server closed with 1006"
    assert sim.core.pending_sends == 0


def test_a_failed_write_while_closing_is_abandoned() -> None:
    sim = Sim(no_ping(), recovery_config(buffer_size=3))
    sim.up()
    sim.step(BufferSend(1))
    sim.step(UserClose())
    out = sim.step(SendWritten(1, ok=False))  # before the close completed
    [abandoned] = sim.of(ResolveSend, out)
    assert isinstance(abandoned, ResolveSend) and isinstance(abandoned.error, SendAbandoned)
    assert str(abandoned.error) == "message not sent: the client is done"
    assert sim.core.pending_sends == 0


def test_a_user_disconnect_abandons_waiting_messages_at_once() -> None:
    sim = Sim(no_ping(), recovery_config(buffer_size=3))
    sim.up()
    sim.step(BufferSend(1))  # being written
    sim.step(BufferSend(2))
    out = sim.step(UserDisconnect())
    [abandoned] = sim.of(ResolveSend, out)
    assert isinstance(abandoned, ResolveSend) and abandoned.message == 2
    assert isinstance(abandoned.error, SendAbandoned)
    assert str(abandoned.error) == "message not sent: the user disconnected"
    assert sim.step(SendWritten(1, ok=True)) == [ResolveSend(1)]


def test_a_user_disconnect_while_waiting_to_reconnect_abandons_the_buffer() -> None:
    sim = buffered_sim()
    sim.step(BufferSend(1))
    out = sim.step(UserDisconnect())
    [abandoned] = sim.of(ResolveSend, out)
    assert isinstance(abandoned, ResolveSend) and abandoned.message == 1
    assert str(abandoned.error) == "message not sent: the user disconnected"
    route, error = sim.core.send_route()
    assert route is SendRoute.REFUSE and str(error) == "message not sent: user disconnect"


def test_closing_while_waiting_to_reconnect_abandons_the_buffer() -> None:
    sim = buffered_sim()
    sim.step(BufferSend(1))
    out = sim.step(UserClose())
    [abandoned] = sim.of(ResolveSend, out)
    assert isinstance(abandoned, ResolveSend)
    assert str(abandoned.error) == "message not sent: the client was closed"
    route, error = sim.core.send_route()
    assert route is SendRoute.REFUSE and str(error) == "the client is closed"


def test_giving_up_abandons_the_buffer_and_refuses_later_sends() -> None:
    strategy = Strategy(delay=1.0)
    sim = Sim(no_ping(), recovery_config(strategy, buffer_size=3))
    sim.up()
    sim.drop()
    sim.step(BufferSend(1))
    strategy.delay = None
    sim.advance(1.0)
    out = sim.step(SocketClosed(2, None, "", ConnectionRefused("refused")))
    [abandoned] = sim.of(ResolveSend, out)
    assert isinstance(abandoned, ResolveSend) and isinstance(abandoned.error, SendAbandoned)
    assert "recovery stopped" in str(abandoned.error)
    route, error = sim.core.send_route()
    assert route is SendRoute.REFUSE and isinstance(error, SendAbandoned)
    out = sim.step(BufferSend(2))
    [refused] = out
    assert isinstance(refused, ResolveSend) and isinstance(refused.error, SendAbandoned)


def test_a_cancelled_send_leaves_the_buffer() -> None:
    sim = buffered_sim()
    sim.step(BufferSend(1))
    sim.step(BufferSend(2))
    out = sim.step(SendCancelled(1))
    assert out == [StartTimer(T.SEND_EXPIRY, 30.0)]
    assert sim.core.pending_sends == 1
    assert sim.step(SendCancelled(9)) == []
    out = sim.reconnect_up()
    assert sim.of(WriteBuffered, out) == [WriteBuffered(2, 2)]
    assert sim.step(SendCancelled(2)) == []  # on the wire: its write decides
    assert sim.core.pending_sends == 1


def test_a_cancelled_last_message_cancels_the_expiry_check() -> None:
    sim = buffered_sim()
    sim.step(BufferSend(1))
    assert sim.step(SendCancelled(1)) == [CancelTimer(T.SEND_EXPIRY)]


def test_without_recovery_buffer_inputs_are_refused_or_ignored() -> None:
    sim = Sim(no_ping())
    [refused] = sim.step(BufferSend(1))
    assert isinstance(refused, ResolveSend) and isinstance(refused.error, SendAbandoned)
    assert sim.step(SendWritten(1, ok=True)) == []
    assert sim.step(SendCancelled(1)) == []
    assert sim.core.pending_sends == 0


def test_without_recovery_a_buffered_send_is_refused_with_why() -> None:
    sim = Sim(no_ping())
    [refused] = sim.step(BufferSend(4))
    assert isinstance(refused, ResolveSend) and refused.message == 4
    assert isinstance(refused.error, SendAbandoned)
    assert str(refused.error) == (
        "cannot send in state 'initialized': sending needs authenticating or connected"
    )


# -- the clock: it never goes back; time in a state counts from the right instant -----------------


def test_the_core_clock_never_goes_back_and_ignores_nan() -> None:
    sim = Sim(no_ping(), now=10.0)
    sim.now = 5.0
    assert sim.connect() == [OpenSocket(1), StartTimer(T.CONNECT_DEADLINE, 20.0)]
    sim.now = math.nan
    assert sim.step(SocketOpened(1)) == [
        CancelTimer(T.CONNECT_DEADLINE),
        StartTimer(T.AUTH_DEADLINE, 20.0),
    ]


def test_time_in_initialized_counts_from_the_core_creation_when_given() -> None:
    core = ConnectionCore(core_config(ping_interval=None), now=3.0)
    records = core.step(UserConnect(1), 7.0).records
    assert records[-1].in_state == 4.0


def test_without_a_creation_time_initialized_counts_from_the_first_input_only() -> None:
    core = ConnectionCore(core_config(ping_interval=None))
    records = core.step(UserConnect(1), 7.0).records + core.step(SocketOpened(1), 9.5).records
    assert [r.in_state for r in records] == [0.0, 2.5]


def test_inputs_before_the_first_record_do_not_restart_the_clock() -> None:
    core = ConnectionCore(core_config(ping_interval=None))
    core.step(AttachRecovery(recovery_config()), 2.0)
    records = core.step(UserConnect(1), 7.0).records
    assert records[0].in_state == 5.0


# -- the core calls nobody: a step returns its effects and its records -----------------------------


def test_a_step_returns_every_record_its_input_produced_in_order() -> None:
    core = ConnectionCore(core_config(ping_interval=None, ack_required=False), now=0.0)
    core.step(UserConnect(1), 0.0)
    step = core.step(SocketOpened(1), 1.0)
    assert [(r.previous, r.current) for r in step.records if isinstance(r, StateChange)] == [
        (S.CONNECTING, S.AUTHENTICATING),
        (S.AUTHENTICATING, S.CONNECTED),
    ]
    assert [r.seq for r in step.records] == [2, 3]
    assert ResolveConnect((1,)) in step.effects


def test_a_step_that_changes_nothing_returns_no_record() -> None:
    core = ConnectionCore(core_config(ping_interval=None), now=0.0)
    core.step(UserConnect(1), 0.0)
    step = core.step(UserConnect(2), 0.5)  # already connecting: a no-op
    assert step.records == []
    assert step.effects == []


def test_records_are_handed_over_once() -> None:
    core = ConnectionCore(core_config(ping_interval=None), now=0.0)
    first = core.step(UserConnect(1), 0.0)
    second = core.step(SocketOpened(1), 0.1)
    assert [r.seq for r in first.records] == [1]
    assert [r.seq for r in second.records] == [2]


# -- logs a reader relies on ----------------------------------------------------------------------


def test_the_recovery_logs_a_reader_relies_on() -> None:
    strategy = Strategy(delay=2.1234567)
    sim = Sim(no_ping(), recovery_config(strategy))
    sim.up()
    out = sim.drop()
    assert log_of(out, "reconnect_scheduled") == {
        "attempt": 1,
        "source": "server",
        "code": 1006,
        "retry_in": 2.123457,
    }
    sim.reconnect_up()
    assert sim.core.recovery is not None and sim.core.recovery.reconnects == 1
    sim.drop()
    sim.reconnect_up()
    assert sim.core.recovery.reconnects == 2
    out = sim.step(NetworkChanged(available=False))
    out = sim.step(SocketClosed(3, 1006))
    assert log_of(out, "recovery_waiting") == {
        "attempt": 2,
        "source": "system",
        "code": None,
        "reason": "network unavailable or paused",
    }


def test_the_logs_of_an_immediate_reconnect() -> None:
    sim = Sim(no_ping(), recovery_config(Strategy(delay=9.0)))
    sim.up()
    sim.step(AppPaused())
    sim.step(AppResumed())
    out = sim.step(SocketClosed(1, 1000))
    assert log_of(out, "reconnect_now") == {
        "attempt": 0,
        "source": "system",
        "code": None,
        "reason": "the system cause is already gone",
    }
    sim.open_and_ack()
    sim.step(AppPaused())
    sim.step(SocketClosed(2, 1000))
    out = sim.step(AppResumed())
    assert log_of(out, "reconnect_now")["reason"] == "resumed"
    assert sim.core.recovery is not None and sim.core.recovery.paused is False


@pytest.mark.parametrize(
    ("policy", "strategy", "reason", "attempt"),
    [
        (lambda s: False, Strategy(), "the policy does not reconnect after this source", 0),
        (
            default_reconnect_policy,
            Strategy(delay=None),
            "the retry strategy gave up after 0 retries",
            1,
        ),
    ],
)
def test_recovery_stopped_says_why(
    policy: Callable[[DisconnectionSource], bool], strategy: Strategy, reason: str, attempt: int
) -> None:
    sim = Sim(no_ping(), recovery_config(strategy, policy))
    sim.up()
    out = sim.drop()
    assert log_of(out, "recovery_stopped", "warning") == {
        "attempt": attempt,
        "source": "server",
        "code": 1006,
        "reason": reason,
    }
    recovery = sim.core.recovery
    assert recovery is not None
    assert (recovery.gave_up, recovery.reconnect_pending, recovery.retry_in) == (True, False, None)


# -- the end: streams end only when the client is done, or at the user's own disconnect ---------


def test_a_user_connect_after_the_end_reopens_the_streams() -> None:
    sim = Sim(no_ping())
    sim.up()
    sim.step(UserDisconnect())
    out = sim.step(SocketClosed(1, 1000))
    assert out[-1] == Finished(UserInitiated())
    out = sim.connect()
    assert out[0] == Reopened()
    assert OpenSocket(2) in out


def test_a_connect_that_follows_a_disconnect_before_the_end_reopens_nothing() -> None:
    sim = Sim(no_ping())
    sim.up()
    assert sim.step(UserDisconnect())[0] == EndStreams(UserInitiated())
    sim.connect()  # remembered while disconnecting: the client never ends
    out = sim.step(SocketClosed(1, 1000))
    assert OpenSocket(2) in out
    assert not any(isinstance(e, Finished | Reopened) for e in out)
    assert not sim.core.done


def test_a_disconnect_of_a_client_already_done_ends_no_stream_again() -> None:
    sim = Sim(no_ping())
    sim.up()
    sim.step(UserDisconnect())
    sim.step(SocketClosed(1, 1000))
    assert not any(isinstance(e, EndStreams) for e in sim.step(UserDisconnect()))
    assert not any(isinstance(e, EndStreams) for e in sim.step(UserClose()))


# -- the end is logged where a production setup at WARNING sees it --------------------------------


def test_a_client_done_because_of_an_error_says_so_at_warning() -> None:
    sim = Sim(no_ping())
    sim.up()
    out = sim.drop(1011)
    assert log_of(out, "client_ended", "warning") == {
        "attempt": 0,
        "source": "server",
        "code": 1011,
        "reason": ServerInitiated(1011).close_reason,
    }
    assert out.index(
        next(e for e in out if isinstance(e, Log) and e.event == "client_ended")
    ) < out.index(Finished(ServerInitiated(1011, "")))


@pytest.mark.parametrize("end", ["disconnect", "close", "give_up"])
def test_a_client_ended_by_the_user_or_a_give_up_logs_no_client_ended(end: str) -> None:
    sim = Sim(no_ping(), recovery_config(policy=lambda _s: False))
    sim.up()
    if end == "disconnect":
        out = sim.step(UserDisconnect()) + sim.step(SocketClosed(1, 1000))
    elif end == "close":
        out = sim.step(UserClose()) + sim.step(SocketClosed(1, 1000))
    else:
        out = sim.drop(1011)
        assert log_of(out, "recovery_stopped", "warning")["code"] == 1011
    assert any(isinstance(e, Finished) for e in out)
    assert not [e for e in out if isinstance(e, Log) and e.event == "client_ended"]


# -- which socket is current ---------------------------------------------------------------------


def test_only_the_socket_now_open_is_current() -> None:
    sim = Sim(no_ping(), recovery_config())
    assert not sim.core.is_current(1)  # none yet
    sim.up()
    assert sim.core.is_current(1)
    assert not sim.core.is_current(2)
    sim.drop()
    sim.reconnect_up()
    assert sim.core.is_current(2)
    assert not sim.core.is_current(1)


def test_an_input_of_a_kind_the_core_does_not_know_raises_and_names_it() -> None:
    class Bogus:
        def __repr__(self) -> str:
            return "<bogus input>"

    core = ConnectionCore(no_ping(), now=0.0)
    with pytest.raises(AssertionError, match="<bogus input>"):
        core.step(Bogus(), 0.0)  # type: ignore[arg-type]


# -- protocol Pings and Pongs across sockets ----------------------------------------------------


def test_a_new_socket_has_no_protocol_ping_outstanding() -> None:
    sim = Sim(core_config(ping_interval=10.0, pong_timeout=2.0), recovery_config())
    sim.up()
    sim.drop()
    sim.reconnect_up()
    records = len(sim.records)
    assert sim.step(ProtocolPong(2)) == []  # unsolicited: the new socket sent no Ping yet
    assert len(sim.records) == records
    assert sim.core.machine.health.pongs == 0


@pytest.mark.parametrize(
    ("event", "what"),
    [(ProtocolPingSent(1), "protocol ping sent"), (ProtocolPong(1), "protocol pong")],
    ids=["ping sent", "pong"],
)
def test_a_protocol_ping_or_pong_of_a_socket_that_is_gone_is_logged_by_name(
    event: Input, what: str
) -> None:
    sim = Sim(core_config(ping_interval=10.0, pong_timeout=2.0), recovery_config())
    sim.up()
    sim.drop()
    sim.reconnect_up()
    assert sim.step(event) == [
        Log("debug", LogEvent.STALE_SOCKET_EVENT, (("what", what), ("socket", 1), ("current", 2)))
    ]


# -- a ping timer that fires early ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("early", "next_check"),
    [
        (1.0, 1000.0),  # a thousandth of the interval early: the slot still stands
        (0.9995, 2000.0),  # less: this is the slot's own check, the next is one interval on
        (0.0, 2000.0),
    ],
)
def test_a_ping_timer_within_a_thousandth_of_the_interval_of_its_slot_is_that_slots_check(
    early: float, next_check: float
) -> None:
    sim = Sim(core_config(ping_interval=1000.0, pong_timeout=3.0))
    sim.up()
    assert sim.timers[T.HEALTH_CHECK] == 1000.0
    sim.now = 1000.0 - early
    sim.fire(T.HEALTH_CHECK)
    sim.step(HealthAnswered(1, None, Answer.ACK_OR_PONG))
    assert sim.timers[T.HEALTH_CHECK] == next_check
