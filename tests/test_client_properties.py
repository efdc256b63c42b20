"""Hypothesis state-machine test of the whole client in virtual time.

Each example gets its own looptime event loop (created in ``@initialize``, closed in
``teardown``), a real TestServer and a real client. Rules interleave user commands, server
faults and the passing of time. Invariants, checked after every step:

* every recorded change is an edge of the table, connected only from authenticating, a
  source exactly in disconnecting/disconnected, and the log's ``seq`` has no gap;
* at most one socket task is alive;
* the ping timer is armed iff the client is connected, no socket timer is armed and no
  hook runs while there is no socket, and no client stays in disconnecting longer than
  its close deadline;
* a user disconnect's source stays until the next user connect;
* after ``close()`` no task made by the client survives (checked in ``teardown``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

import looptime
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from statesock import core_io as core
from statesock.client import WebSocketClient
from statesock.exceptions import (
    ClientClosed,
    ConnectFailed,
    ConnectionFailure,
    NotConnectedError,
)
from statesock.machine import ConnectionState, Record, StateChange
from statesock.sources import UserInitiated
from statesock.testing import TestServer, auth_hook, decode_message
from tests.support import DOWN, LEGAL_CHANGES

S = ConnectionState
R = TypeVar("R")


class ClientSpec(RuleBasedStateMachine):
    loop: asyncio.AbstractEventLoop
    server: TestServer
    client: WebSocketClient

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        return self.loop.run_until_complete(coro)

    @initialize()
    def setup(self) -> None:
        self.loop = looptime.new_event_loop(start=0.0, end=10_000_000.0)
        self.server = self.run(TestServer().start())
        self.client = WebSocketClient(
            self.server.url,
            decode_message,
            on_connection_established=auth_hook("t"),
            connect_timeout=5,
            auth_timeout=5,
            close_timeout=2,
        )
        self.records: list[Record] = []
        self.client.add_listener(self.records.append)
        self.attempts: list[asyncio.Future[Any]] = []
        self.user_down = False

    def teardown(self) -> None:
        if not hasattr(self, "loop"):
            return
        try:
            self.run(self.client.close())
            for attempt in self.attempts:
                with contextlib.suppress(ConnectFailed, ClientClosed, asyncio.CancelledError):
                    self.run(asyncio.wait_for(attempt, 30))
            self.run(self.server.stop())
            self.run(asyncio.sleep(0))
            leftover = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            assert not leftover, [t.get_name() for t in leftover]
            assert self.client.state.state is S.DISCONNECTED or not self.records
        finally:
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.run_until_complete(asyncio.sleep(0))
            self.loop.close()

    # -- user commands -----------------------------------------------------------------

    @rule()
    def connect(self) -> None:
        self.attempts.append(asyncio.ensure_future(self.client.connect(), loop=self.loop))
        self.user_down = False
        self.run(asyncio.sleep(0.01))

    @rule()
    def connect_and_disconnect_in_the_same_tick(self) -> None:
        # Once left the client stuck in disconnecting: the socket task was cancelled
        # before its first step and never reported its close.
        self.attempts.append(asyncio.ensure_future(self.client.connect(), loop=self.loop))
        self.run(asyncio.sleep(0))
        self.run(self.client.disconnect())
        assert self.client.state.state in (S.DISCONNECTED, S.INITIALIZED)
        self.user_down = bool(self.records)

    @rule()
    def connect_and_wait(self) -> None:
        self.user_down = False
        try:
            snapshot = self.run(self.client.connect())
        except ConnectFailed as failed:
            assert self.client.state.state in (S.DISCONNECTED, S.CONNECTING)
            assert failed.source is not None
        else:
            assert snapshot.state is S.CONNECTED

    @rule()
    def disconnect(self) -> None:
        snapshot = self.run(self.client.disconnect())
        if self.records:
            assert snapshot.state is S.DISCONNECTED
            assert snapshot.source == UserInitiated()
            self.user_down = True

    @rule(text=st.text(max_size=20))
    def send(self, text: str) -> None:
        state = self.client.state.state
        try:
            self.run(self.client.send({"type": "note", "text": text}))
        except NotConnectedError:
            assert state not in (S.AUTHENTICATING, S.CONNECTED)
        except ConnectionFailure:
            pass  # the socket closed under the send; the engine reports it

    # -- server faults -----------------------------------------------------------------

    @rule(code=st.sampled_from([1000, 1001, 1011, 4000, 4401]))
    def server_closes(self, code: int) -> None:
        self.run(self.server.close_all(code, "fault"))

    @rule()
    def server_crashes_and_restarts(self) -> None:
        self.run(self.server.kill())
        self.run(asyncio.sleep(0.5))
        self.run(self.server.start())

    @rule()
    def server_goes_silent_or_speaks_again(self) -> None:
        self.server.silent = not self.server.silent

    @rule()
    def server_stops_or_resumes_acking(self) -> None:
        self.server.ack = not self.server.ack

    @rule(count=st.integers(1, 50))
    def server_sends_a_burst(self, count: int) -> None:
        self.run(self.server.send_burst(count))

    @rule(seconds=st.sampled_from([0.1, 1.0, 3.0, 10.0, 26.0, 60.0]))
    def time_passes(self, seconds: float) -> None:
        self.run(asyncio.sleep(seconds))

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def changes_follow_the_table(self) -> None:
        for record in getattr(self, "records", []):
            if isinstance(record, StateChange):
                assert (record.previous, record.current, record.trigger.value) in LEGAL_CHANGES
                assert (record.source is not None) == (record.current in DOWN)
        seqs = [r.seq for r in getattr(self, "records", [])]
        assert seqs == list(range(1, len(seqs) + 1))

    @invariant()
    def at_most_one_socket(self) -> None:
        if hasattr(self, "client"):
            assert self.client._engine.sockets <= 1

    @invariant()
    def timers_and_hooks_live_and_die_with_their_socket(self) -> None:
        if not hasattr(self, "client"):
            return
        state = self.client.state.state
        timers = set(self.client._timers)
        assert (core.TimerKind.HEALTH_CHECK in timers) == (state is S.CONNECTED)
        if state in (S.INITIALIZED, S.DISCONNECTED):
            assert not timers & core.SOCKET_TIMERS
            assert not self.client._hooks
        if state is S.DISCONNECTING:
            assert core.TimerKind.CLOSE_DEADLINE in timers

    @invariant()
    def user_disconnect_sticks(self) -> None:
        if getattr(self, "user_down", False):
            assert self.client.state.source == UserInitiated()


ClientSpec.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestClientSpec = ClientSpec.TestCase
