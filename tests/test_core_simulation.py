"""Deterministic simulation of the connection core: Hypothesis drives the fake world.

No asyncio and no sockets: tests/core_world.py plays the shell (timers, sockets, hooks,
writes) and checks its invariants after every input the core gets (see that module). Each
example starts from a random *reachable situation* (connected, backing off, offline, paused,
closing, with buffered messages, after a user disconnect, after recovery gave up...), not
only from ``initialized``, and then interleaves user commands, socket events, stale events
from old sockets, network and app changes and the passing of time. The ``settle`` rule stops
the faults and requires the client to be connected within the strategy's bound unless the
policy, the strategy or a user disconnect entitles it to stop.

The normal run makes about 400 examples of up to 60 rules; each rule feeds the core one or
more inputs (``settle`` and ``advance`` feed many). ``make soak`` runs the same world with
plain seeded randomness for millions of inputs.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from statesock import core_io as c
from statesock.machine import ConnectionState
from tests.core_world import SERVER_CLOSE_CODES, SITUATIONS, World, reach, strategies

S = ConnectionState
STEPS = [0]  # inputs fed to cores across this test run, reported by the soak target


class CoreSimulation(RuleBasedStateMachine):
    world: World

    @initialize(
        situation=st.sampled_from(SITUATIONS),
        seed=st.integers(0, 2**32 - 1),
        ack_required=st.booleans(),
        retry_first_connect=st.booleans(),
    )
    def start(
        self, situation: str, seed: int, ack_required: bool, retry_first_connect: bool
    ) -> None:
        rng = random.Random(seed)
        self.world = World.new(
            seed,
            ack_required=ack_required or situation in ("authenticating", "hung_hook"),
            recovery=situation != "no_recovery",
            strategy=strategies(rng),
            retry_first_connect=retry_first_connect,
        )
        reach(self.world, situation)

    def teardown(self) -> None:
        world = getattr(self, "world", None)
        if world is None:
            return
        while world.writing:
            world.write_completes()
        world.step(c.UserClose())
        for _ in range(10):
            if world.core.state in (S.DISCONNECTED, S.INITIALIZED):
                break
            world.socket_closes()
            world.fire_next_timer()
        assert world.core.closed
        assert world.core.state in (S.DISCONNECTED, S.INITIALIZED)
        assert not world.connect_waiters
        assert all(len(outcomes) == 1 for outcomes in world.outcomes.values()), world.outcomes
        assert not set(world.timers) - {c.TimerKind.SEND_EXPIRY}
        STEPS[0] += world.steps

    # -- the user ------------------------------------------------------------------------

    @rule()
    def user_connect(self) -> None:
        self.world.user_connect()

    @rule()
    def user_disconnect(self) -> None:
        self.world.user_disconnect()

    @rule()
    def send(self) -> None:
        self.world.send()

    @rule(paused=st.booleans())
    def app(self, paused: bool) -> None:
        self.world.pause(paused)

    # -- the server and the socket -------------------------------------------------------

    @rule()
    def socket_opens(self) -> None:
        self.world.socket_opens()

    @rule(ack=st.sampled_from([None, True, False]))
    def server_answers(self, ack: bool | None) -> None:
        self.world.server_acks_or_answers(ack)

    @rule(code=st.sampled_from(SERVER_CLOSE_CODES))
    def socket_closes(self, code: int) -> None:
        self.world.socket_closes(code)

    @rule()
    def stale_event(self) -> None:
        self.world.stale_event()

    @rule()
    def server_down_or_up(self) -> None:
        self.world.server_up = not self.world.server_up

    @rule()
    def server_stops_or_resumes_acking(self) -> None:
        self.world.server_acks = not self.world.server_acks

    @rule()
    def hook_finishes(self) -> None:
        self.world.hook_finishes()

    @rule()
    def hook_hangs_or_not(self) -> None:
        self.world.hook_hangs = not self.world.hook_hangs

    @rule(ok=st.booleans())
    def write_completes(self, ok: bool) -> None:
        self.world.write_completes(ok)

    @rule()
    def reading_pauses_and_resumes(self) -> None:
        number = self.world.core.socket
        if number is not None:
            self.world.step(c.ReadingPaused(number))
            self.world.advance(5.0)
            self.world.step(c.ReadingResumed(number))

    # -- the network and time ------------------------------------------------------------

    @rule(up=st.booleans())
    def network(self, up: bool) -> None:
        self.world.network(up)

    @rule()
    def network_flaps_in_one_tick(self) -> None:
        self.world.network(False)
        self.world.network(True)

    @rule(seconds=st.sampled_from([0.0, 0.5, 2.9, 3.1, 10.0, 25.0, 60.0]))
    def time_passes(self, seconds: float) -> None:
        self.world.advance(seconds)

    @rule()
    def next_timer_fires(self) -> None:
        self.world.fire_next_timer()

    @rule()
    def faults_stop(self) -> None:
        self.world.settle()

    @invariant()
    def holds(self) -> None:
        if hasattr(self, "world"):
            self.world.check()


CoreSimulation.TestCase.settings = settings(
    max_examples=400,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCoreSimulation = CoreSimulation.TestCase


def test_the_hypothesis_examples_fed_the_core_enough_inputs() -> None:
    # Runs after TestCoreSimulation (file order); guards against a silently tiny run.
    if STEPS[0]:
        assert STEPS[0] >= 5_000, STEPS[0]


def test_random_walks_keep_every_invariant() -> None:
    # 100 seeded walks of 1,000 inputs each, on top of the Hypothesis examples above.
    from tests.core_world import random_walk

    total = 0
    for seed in range(100):
        total += random_walk(seed, 1_000).steps
    STEPS[0] += total
    assert total >= 100_000
