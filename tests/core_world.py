"""A fake world for the connection core: a clock, sockets, a server, a network, the app.

The core (``statesock.core``) is driven here without asyncio and without sockets. The world
carries out the core's effects the way the asyncio shell would (timers in a table, sockets
that open and close when the test says so, hooks that finish or hang) and checks, after
every input, what must always hold:

* the records follow an independent model of the path (legal edges, ``previous``,
  ``in_state``, a source exactly while down, gap-free ``seq``, reconnect vs user connect);
* a user disconnect sticks: no connect follows it until the user connects again;
* no timer or hook outlives its socket, and the world's timers are the core's;
* every ``connect()`` waiter is resolved once connected or done; none is resolved twice;
* every buffered message gets exactly one outcome.

``settle()`` stops the faults (server up and acking, network up, app resumed) and runs the
world until the client is connected: it must be, within a bound, unless the policy, the
strategy or a user disconnect says otherwise. Used by tests/test_core_simulation.py
(Hypothesis) and by ``make soak`` (millions of seeded random steps).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from statesock import core_io as c
from statesock.core import ConnectionCore
from statesock.exceptions import SendBufferError
from statesock.machine import ConnectionState, InternalTransition, Record, StateChange
from statesock.retry import DelayList, ExponentialBackoff, RetryStrategy
from statesock.sources import (
    DisconnectionSource,
    ServerInitiated,
    SystemInitiated,
    UserInitiated,
    default_reconnect_policy,
)
from tests.support import DOWN, LEGAL_CHANGES, core_config

S = ConnectionState
# What a decoded answer means, by the old boolean: ack, legacy ack-or-pong, pong only.
_ANSWERS = {True: c.Answer.ACK, None: c.Answer.ACK_OR_PONG, False: c.Answer.PONG}
# Longest a settled world may take to connect: the 25 s backoff cap, a connect timeout and
# an auth timeout, twice over (a timer may be pending from before the faults stopped).
SETTLE_BOUND = 2 * (25.0 + 10.0 + 10.0) + 5.0


@dataclass
class Socket:
    number: int
    opened: bool = False
    closing: bool = False
    closed: bool = False


@dataclass
class World:
    core: ConnectionCore
    rng: random.Random
    now: float = 0.0
    steps: int = 0
    timers: dict[c.TimerKind, float] = field(default_factory=dict)
    sockets: dict[int, Socket] = field(default_factory=dict)
    hooks: dict[c.Hook, int] = field(default_factory=dict)
    connect_waiters: set[int] = field(default_factory=set)
    resolved_connects: set[int] = field(default_factory=set)
    disconnect_waiters: set[int] = field(default_factory=set)
    outcomes: dict[int, list[SendBufferError | None]] = field(default_factory=dict)
    writing: set[int] = field(default_factory=set)
    records: list[Record] = field(default_factory=list)
    finished: list[c.Finished] = field(default_factory=list)
    last_frame_at: float | None = None
    # The independent model.
    model_state: ConnectionState = S.INITIALIZED
    entered_at: float = 0.0
    user_down: bool = False
    ids: int = 0
    # The world's faults.
    server_up: bool = True
    server_acks: bool = True
    hook_hangs: bool = False
    network_up: bool = True
    paused: bool = False

    @classmethod
    def new(
        cls,
        seed: int,
        *,
        ack_required: bool = True,
        auth_hook: bool = True,
        recovery: bool = True,
        buffer: int = 3,
        strategy: RetryStrategy | None = None,
        retry_first_connect: bool = False,
    ) -> World:
        config = core_config(
            ack_required=ack_required,
            has_auth_hook=auth_hook,
            has_connected_hook=True,
            has_token_provider=True,
        )
        world = cls(ConnectionCore(config), random.Random(seed))
        if recovery:
            rng = random.Random(seed)
            world.step(
                c.AttachRecovery(
                    c.RecoveryConfig(
                        default_reconnect_policy,
                        strategy or ExponentialBackoff(rng=rng),
                        stable_after=10.0,
                        buffer_size=buffer,
                        buffer_ttl=30.0,
                        retry_first_connect=retry_first_connect,
                    )
                )
            )
        return world

    # -- feeding the core ----------------------------------------------------------------

    def step(self, event: c.Input) -> None:
        self.steps += 1
        if isinstance(event, c.UserConnect):
            self.user_down = False
        elif isinstance(event, c.UserDisconnect | c.UserClose):
            self.user_down = self.core.state is not S.INITIALIZED or self.user_down
        step = self.core.step(event, self.now)
        for record in step.records:  # delivered after the step, as the shell does
            self.records.append(record)
            self._check_record(record)
        for effect in step.effects:
            self._carry_out(effect)
        self.check()

    def _carry_out(self, effect: c.Effect) -> None:
        if isinstance(effect, c.OpenSocket):
            assert effect.socket not in self.sockets
            assert all(s.closed or s.closing for s in self.sockets.values())
            self.sockets[effect.socket] = Socket(effect.socket)
            self.last_frame_at = None
        elif isinstance(effect, c.CloseSocket):
            assert effect.socket == self.core.socket
            assert len(effect.reason.encode()) <= c.MAX_CLOSE_REASON_BYTES
            self.sockets[effect.socket].closing = True
        elif isinstance(effect, c.AbortSocket):
            self.sockets[effect.socket].closed = True
        elif isinstance(effect, c.StartTimer):
            assert effect.at >= self.now
            self.timers[effect.timer] = effect.at
        elif isinstance(effect, c.CancelTimer):
            assert effect.timer in self.timers, effect
            del self.timers[effect.timer]
        elif isinstance(effect, c.SendHealthCheck):
            assert effect.socket == self.core.socket and self.core.state is S.CONNECTED
        elif isinstance(effect, c.RunHook):
            assert effect.hook not in self.hooks
            self.hooks[effect.hook] = effect.socket
        elif isinstance(effect, c.CancelHook):
            del self.hooks[effect.hook]
        elif isinstance(effect, c.ResolveConnect):
            for waiter in effect.waiters:
                assert waiter in self.connect_waiters, "resolved twice or never asked"
                self.connect_waiters.discard(waiter)
                self.resolved_connects.add(waiter)
        elif isinstance(effect, c.ResolveDisconnect):
            for waiter in effect.waiters:
                self.disconnect_waiters.discard(waiter)
        elif isinstance(effect, c.WriteBuffered):
            assert self.core.state is S.CONNECTED and effect.socket == self.core.socket
            assert effect.message not in self.writing
            self.writing.add(effect.message)
        elif isinstance(effect, c.ResolveSend):
            self.outcomes[effect.message].append(effect.error)
            assert len(self.outcomes[effect.message]) == 1, "two outcomes for one message"
            self.writing.discard(effect.message)
        elif isinstance(effect, c.Finished):
            self.finished.append(effect)
        elif isinstance(effect, c.ReportError):
            raise AssertionError(f"unexpected user-code error: {effect.error!r}")

    # -- what must always hold ------------------------------------------------------------

    def _check_record(self, record: Record) -> None:
        assert record.seq == len(self.records)
        if isinstance(record, InternalTransition):
            assert record.state is self.model_state
            assert record.in_state == self.now - self.entered_at
            return
        assert isinstance(record, StateChange)
        assert record.previous is self.model_state, (record, self.model_state)
        assert (record.previous, record.current, record.trigger.value) in LEGAL_CHANGES
        assert (record.source is not None) == (record.current in DOWN)
        assert record.in_state == self.now - self.entered_at
        if record.current is S.CONNECTING:
            # Only the user's connect follows a user disconnect.
            assert not (self.user_down and record.reconnect)
        self.model_state = record.current
        self.entered_at = self.now

    def check(self) -> None:
        core = self.core
        assert core.state is self.model_state
        assert set(self.timers) == set(core.timers)
        if core.socket is None:
            assert not set(self.timers) & c.SOCKET_TIMERS
            assert not self.hooks
        else:
            assert all(number == core.socket for number in self.hooks.values())
        if core.state is S.CONNECTED or core.done:
            assert not self.connect_waiters
        if core.done:
            assert c.TimerKind.RECONNECT not in self.timers
            assert not any(o == [] for m, o in self.outcomes.items() if m not in self.writing)
        if self.user_down and core.state in DOWN:
            assert isinstance(core.machine.source, UserInitiated)
        if core.state is S.DISCONNECTING:
            assert c.TimerKind.CLOSE_DEADLINE in self.timers
        if core.state in (S.INITIALIZED, S.DISCONNECTED):
            assert not self.disconnect_waiters

    # -- the world's moves ----------------------------------------------------------------

    def new_id(self) -> int:
        self.ids += 1
        return self.ids

    def user_connect(self) -> None:
        waiter = self.new_id()
        self.connect_waiters.add(waiter)
        self.step(c.UserConnect(waiter))

    def user_disconnect(self) -> None:
        waiter = self.new_id()
        self.disconnect_waiters.add(waiter)
        self.step(c.UserDisconnect(waiter))

    def send(self) -> None:
        route, _ = self.core.send_route()
        if route is c.SendRoute.BUFFER:
            message = self.new_id()
            self.outcomes[message] = []
            self.step(c.BufferSend(message))

    def current(self) -> Socket | None:
        number = self.core.socket
        return self.sockets.get(number) if number is not None else None

    def socket_opens(self) -> None:
        sock = self.current()
        if sock is not None and not sock.opened and not sock.closed and self.server_up:
            sock.opened = True
            self.step(c.SocketOpened(sock.number))

    def server_acks_or_answers(self, ack: bool | None = None) -> None:
        sock = self.current()
        if sock is not None and sock.opened and not sock.closed and self.server_acks:
            self.last_frame_at = self.now
            self.step(c.HealthAnswered(sock.number, "c-1", _ANSWERS[ack]))

    def socket_closes(self, code: int | None = 1011) -> None:
        """The current socket closes: the server's close, a failed attempt, or our close
        completing."""
        sock = self.current()
        if sock is None or sock.closed:
            return
        sock.closed = True
        if sock.closing or not sock.opened:
            code = 1000 if sock.closing else None
        self.step(c.SocketClosed(sock.number, code, "", None))

    def stale_event(self) -> None:
        """Something from a socket that is not the current one: must change nothing."""
        old = [s.number for s in self.sockets.values() if s.number != self.core.socket]
        if not old:
            return
        number = self.rng.choice(old)
        before = (len(self.records), self.core.state, dict(self.timers))
        stale: list[c.Input] = [
            c.SocketOpened(number),
            c.HealthAnswered(number, "old", c.Answer.ACK_OR_PONG),
            c.ProtocolPong(number),
            c.SocketClosed(number, 1011),
            c.HookFinished(number, c.Hook.ON_CONNECTION_ESTABLISHED),
            c.ReadingPaused(number),
        ]
        self.step(self.rng.choice(stale))
        assert (len(self.records), self.core.state, dict(self.timers)) == before

    def hook_finishes(self) -> None:
        for hook, number in list(self.hooks.items()):
            if hook is c.Hook.ON_CONNECTION_ESTABLISHED and self.hook_hangs:
                continue
            del self.hooks[hook]
            self.step(c.HookFinished(number, hook))
            return

    def write_completes(self, ok: bool = True) -> None:
        if self.writing:
            message = min(self.writing)
            self.writing.discard(message)
            sock = self.current()
            self.step(c.SendWritten(message, ok and sock is not None and not sock.closed))

    def network(self, up: bool) -> None:
        self.network_up = up
        self.step(c.NetworkChanged(up))

    def pause(self, paused: bool) -> None:
        self.paused = paused
        self.step(c.AppPaused() if paused else c.AppResumed())

    def advance(self, seconds: float) -> None:
        """Let time pass, firing each due timer in order (as the event loop would)."""
        end = self.now + seconds
        while self.timers:
            timer, at = min(self.timers.items(), key=lambda item: (item[1], item[0].value))
            if at > end:
                break
            self.now = max(self.now, at)
            del self.timers[timer]
            self.step(c.TimerFired(timer, self.last_frame_at))
        self.now = max(self.now, end)

    def fire_next_timer(self) -> None:
        if self.timers:
            at = min(self.timers.values())
            self.advance(max(0.0, at - self.now))

    # -- settling ----------------------------------------------------------------------------

    def settle(self) -> None:
        """Faults stop; the world answers promptly. The client must end up connected within
        SETTLE_BOUND, unless something entitled to stop it did."""
        self.server_up = self.server_acks = True
        self.hook_hangs = False
        if not self.network_up:
            self.network(True)
        if self.paused:
            self.pause(False)
        deadline = self.now + SETTLE_BOUND
        while self.now <= deadline:
            if self.core.state is S.CONNECTED:
                break
            if self.core.done:
                self._assert_entitled_to_stop()
                return
            progressed = self._prompt_world_move()
            if not progressed:
                if not self.timers:
                    break
                self.fire_next_timer()
        if self.core.state is not S.CONNECTED:
            if self.core.done or self.core.state is S.INITIALIZED:
                self._assert_entitled_to_stop()
                return
            raise AssertionError(
                f"stuck in {self.core.state} at {self.now:.1f} s, timers {self.timers}"
            )

    def _prompt_world_move(self) -> bool:
        sock = self.current()
        state = self.core.state
        if self.writing:
            self.write_completes()
            return True
        if sock is None or sock.closed:
            return False
        if state is S.CONNECTING and not sock.opened:
            self.socket_opens()
            return True
        if state is S.AUTHENTICATING and self.hooks:
            self.hook_finishes()
            return True
        if state is S.AUTHENTICATING and self.core.config.ack_required:
            self.server_acks_or_answers(ack=True)
            return True
        if state is S.DISCONNECTING:
            self.socket_closes()
            return True
        return False

    def _assert_entitled_to_stop(self) -> None:
        source = self.core.machine.source
        recovery = self.core.recovery
        if self.core.state is S.INITIALIZED or source is None:
            return  # never asked to connect
        if isinstance(source, UserInitiated) or recovery is None:
            return
        assert recovery.gave_up or not default_reconnect_policy_allows(source), source


def default_reconnect_policy_allows(source: DisconnectionSource) -> bool:
    if isinstance(source, SystemInitiated):
        return True
    return default_reconnect_policy(source)


def strategies(rng: random.Random) -> RetryStrategy:
    choices: list[RetryStrategy] = [
        ExponentialBackoff(rng=rng),
        DelayList([0.0, 1.0, 5.0]),
        DelayList([2.0], repeat=False),
    ]
    return rng.choice(choices)


SERVER_CLOSE_CODES = (1000, 1001, 1006, 1008, 1011, 1012, 4000, 4401, 4429)
_ = ServerInitiated


# The situations a test starts a world in, each reached through legal moves only.
SITUATIONS = (
    "initialized",
    "connecting",
    "authenticating",
    "connected",
    "disconnecting",
    "backoff",
    "offline",
    "paused",
    "buffered",
    "user_down",
    "gave_up",
    "no_recovery",
    "hung_hook",
)


def reach(world: World, situation: str) -> None:
    """Drive a fresh world to ``situation`` through legal moves only."""
    if situation == "initialized":
        return
    world.user_connect()
    if situation == "connecting":
        return
    world.socket_opens()
    if situation == "hung_hook":
        world.hook_hangs = True
        return
    world.hook_finishes()
    if situation == "authenticating":
        return
    world.server_acks_or_answers(ack=True)
    assert world.core.state is S.CONNECTED
    if situation in ("connected", "no_recovery"):
        return
    if situation == "disconnecting":
        world.user_disconnect()
        return
    if situation == "offline":
        world.network(False)
        return
    if situation == "paused":
        world.pause(True)
        return
    if situation == "user_down":
        world.user_disconnect()
        world.socket_closes()
        return
    world.socket_closes(1008 if situation == "gave_up" else 1011)
    if situation == "buffered":
        world.send()
        world.send()


def random_walk(seed: int, steps: int) -> World:
    """``steps`` random moves from a random situation, checking every invariant as it goes;
    the faults stop and the world settles every few hundred moves."""
    rng = random.Random(seed)
    situation = rng.choice(SITUATIONS)
    world = World.new(
        seed,
        ack_required=rng.random() < 0.7 or situation in ("authenticating", "hung_hook"),
        recovery=situation != "no_recovery",
        strategy=strategies(rng),
        retry_first_connect=rng.random() < 0.3,
    )
    reach(world, situation)
    moves = [
        (8, world.user_connect),
        (3, world.user_disconnect),
        (6, world.send),
        (3, lambda: world.pause(rng.random() < 0.5)),
        (10, world.socket_opens),
        (10, lambda: world.server_acks_or_answers(rng.choice([None, True, False]))),
        (6, lambda: world.socket_closes(rng.choice(SERVER_CLOSE_CODES))),
        (4, world.stale_event),
        (3, lambda: setattr(world, "server_up", not world.server_up)),
        (2, lambda: setattr(world, "server_acks", not world.server_acks)),
        (8, world.hook_finishes),
        (2, lambda: setattr(world, "hook_hangs", not world.hook_hangs)),
        (6, lambda: world.write_completes(rng.random() < 0.8)),
        (3, lambda: world.network(rng.random() < 0.6)),
        (12, lambda: world.advance(rng.choice([0.0, 0.5, 2.9, 3.1, 10.0, 25.0, 60.0]))),
        (12, world.fire_next_timer),
    ]
    weights = [w for w, _ in moves]
    actions = [a for _, a in moves]
    while world.steps < steps:
        rng.choices(actions, weights)[0]()
        if rng.random() < 0.005:
            world.settle()
    world.settle()
    return world
