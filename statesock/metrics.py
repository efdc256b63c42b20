"""OpenTelemetry metrics of a client: the instruments, and the hooks the shell calls.

Optional: with the ``statesock[otel]`` extra (``opentelemetry-api``). Nothing here imports
OpenTelemetry at import time; :func:`client_metrics` imports it when a client is built, and
returns None when it is not installed, so that a client without the extra has no metrics
object and pays one ``is not None`` check per record.

Like an instrumented library, statesock takes its meter from the global ``MeterProvider``
(``opentelemetry.metrics.get_meter("statesock", version)``): a no-op until the app installs
an SDK, so it always instruments when the API is importable. A client's ``meter_provider=``
option gives one instead.

Cost. The per-message path is untouched: the message, byte, drop and stall counts are
*observable* instruments whose callbacks read :class:`~statesock.stats.ClientStats` when a
reader collects, not a counter added to per message. Only what happens once per record (a
state change, a pong) or per buffered send is added to at once.

Instruments are made once per meter provider and shared by its clients; each observable
callback reports every live client of its provider (held weakly: metrics never keep a client
alive), each client's points carrying its label as ``statesock.client``. Give clients stable
labels: each label is a series.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .exceptions import SendAbandoned, SendBufferFull, SendExpired
from .machine import ACTIVE_STATES, ConnectionMachine, ConnectionState, Record, StateChange
from .sources import UserInitiated
from .states import Trigger

if TYPE_CHECKING:
    from types import ModuleType

    from opentelemetry.metrics import (
        CallbackOptions,
        Counter,
        Histogram,
        Meter,
        MeterProvider,
        Observation,
    )

    from .exceptions import SendBufferError
    from .stats import ClientStats

__all__ = ["CLIENT", "DIRECTION", "INSTRUMENTS", "OUTCOME", "SOURCE", "STATE", "client_metrics"]

# Attribute names.
CLIENT = "statesock.client"  # the client's label
STATE = "statesock.state"  # a ConnectionState's value
SOURCE = "statesock.disconnection.source"  # a DisconnectionSource's kind
OUTCOME = "statesock.send.outcome"  # written, expired, abandoned, full
DIRECTION = "network.io.direction"  # receive, transmit (OpenTelemetry semantic conventions)

# name: (kind, unit, description). The one list of what statesock reports.
INSTRUMENTS: dict[str, tuple[str, str, str]] = {
    "statesock.state.changes": (
        "counter", "{change}", "State changes, by the state entered (statesock.state).",
    ),
    "statesock.disconnections": (
        "counter", "{disconnection}",
        "Connections (or attempts) lost, by disconnection source and the state left.",
    ),
    "statesock.reconnect.attempts": (
        "counter", "{attempt}", "Connects fired by recovery (not by the user).",
    ),
    "statesock.reconnect.duration": (
        "histogram", "s",
        "Time to reconnect: from leaving connected to connected again, by the source that "
        "ended the connection. A user's disconnect starts no such interval.",
    ),
    "statesock.health_check.round_trip": (
        "histogram", "s", "Round trip of each answered health check.",
    ),
    "statesock.messages": (
        "observable_counter", "{message}",
        "App messages received and sent (network.io.direction); health checks sent excluded.",
    ),
    "statesock.io": (
        "observable_counter", "By",
        "Bytes of those messages (UTF-8 for text), received and sent (network.io.direction).",
    ),
    "statesock.events.dropped": (
        "observable_counter", "{event}",
        "Events dropped by a subscription whose overflow policy drops.",
    ),
    "statesock.subscribers.stalled": (
        "observable_counter", "{subscriber}",
        "Lossless subscribers cut off after taking nothing for stall_timeout.",
    ),
    "statesock.send_buffer.outcomes": (
        "counter", "{message}",
        "Outcomes of messages sent through the reconnect send buffer (statesock.send.outcome: "
        "written, expired, abandoned, full).",
    ),
    "statesock.clients": (
        "observable_up_down_counter", "{client}",
        "Clients in each state: 1 for the state a client is in, 0 for the others.",
    ),
}  # fmt: skip

# Seconds. Health checks are answered in milliseconds and time out after pong_timeout (3 s
# by default); reconnects take from a few milliseconds to the backoff cap (25 s) and beyond.
_ROUND_TRIP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_RECONNECT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300, 600)

_NO_API: Any = object()
_api: Any = None  # the opentelemetry.metrics module, _NO_API once it failed to import
_lock = threading.Lock()
_global: _Instruments | None = None
_by_provider: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()
_kept: dict[int, tuple[Any, _Instruments]] = {}  # providers that take no weak reference


def client_metrics(
    label: str,
    stats: ClientStats,
    machine: ConnectionMachine,
    meter_provider: MeterProvider | None = None,
) -> ClientMetrics | None:
    """The metrics of one client, or None when ``opentelemetry-api`` is not importable.

    ``machine`` is the client's, read for its state and health. Raises ImportError when a
    ``meter_provider`` is given and the API is missing.
    """
    api = _metrics_api()
    if api is None:
        if meter_provider is not None:
            raise ImportError("meter_provider needs OpenTelemetry: pip install 'statesock[otel]'")
        return None
    metrics = ClientMetrics(_instruments(api, meter_provider), label, stats, machine)
    metrics.instruments.add(metrics)
    return metrics


class ClientMetrics:
    """One client's hooks into its provider's instruments (the shell holds it)."""

    __slots__ = (
        "__weakref__",
        "_check_sent",
        "_left_at",
        "_left_source",
        "instruments",
        "label",
        "machine",
        "stats",
    )

    def __init__(
        self,
        instruments: _Instruments,
        label: str,
        stats: ClientStats,
        machine: ConnectionMachine,
    ) -> None:
        self.instruments = instruments
        self.stats = stats
        self.machine = machine
        # Attribute sets are built when used (per state change, pong or collection), not
        # kept: a client's memory matters more than ~100 ns per (rare) use.
        self.label = label
        self._left_at: float | None = None  # when the client last left connected
        self._left_source = ""
        self._check_sent = False  # a health check is waiting for its answer

    # -- hooks (the shell calls these) -----------------------------------------------------

    def record(self, record: Record) -> None:
        """Each record the client delivers, in ``seq`` order."""
        if isinstance(record, StateChange):
            self._changed(record)
        elif record.trigger is Trigger.PONG:
            if self._check_sent:
                self._check_sent = False
                round_trip = self.machine.health.round_trip
                if round_trip is not None:
                    self.instruments.round_trip.record(round_trip, {CLIENT: self.label})
        elif isinstance(record.source, UserInitiated):  # a user disconnect while going down
            self._left_at = None

    def health_check_sent(self) -> None:
        """A health check went out: the next pong answers it (an unsolicited pong repeats
        the last round trip, which must not count as a second sample)."""
        self._check_sent = True

    def send_resolved(self, error: SendBufferError | None) -> None:
        """A buffered message's outcome: written (None) or the error."""
        outcome = "written"
        if isinstance(error, SendExpired):
            outcome = "expired"
        elif isinstance(error, SendBufferFull):
            outcome = "full"
        elif isinstance(error, SendAbandoned):
            outcome = "abandoned"
        elif error is not None:
            outcome = type(error).__name__
        self.instruments.send_outcomes.add(1, {CLIENT: self.label, OUTCOME: outcome})

    # -- internals --------------------------------------------------------------------------

    def _changed(self, change: StateChange) -> None:
        instruments = self.instruments
        current, previous, source = change.current, change.previous, change.source
        instruments.state_changes.add(1, {CLIENT: self.label, STATE: current.value})
        self._check_sent = False  # a socket that went or came has no check pending
        if change.reconnect:
            instruments.reconnect_attempts.add(1, {CLIENT: self.label})
        if previous in ACTIVE_STATES and current not in ACTIVE_STATES:
            kind = source.kind if source is not None else "unknown"
            attributes = {CLIENT: self.label, SOURCE: kind, STATE: previous.value}
            instruments.disconnections.add(1, attributes)
        if isinstance(source, UserInitiated):
            self._left_at = None  # the user ended it: what follows is not a reconnect
        elif previous is ConnectionState.CONNECTED:
            self._left_at = change.at
            self._left_source = source.kind if source is not None else "unknown"
        if current is ConnectionState.CONNECTED and self._left_at is not None:
            took = max(change.at - self._left_at, 0.0)
            self._left_at = None
            attributes = {CLIENT: self.label, SOURCE: self._left_source}
            instruments.reconnect_duration.record(took, attributes)


class _Instruments:
    """The instruments of one meter, and the live clients its observable callbacks read."""

    def __init__(self, api: ModuleType, meter_provider: MeterProvider | None) -> None:
        # The package's version, read from the loaded package: ``from . import __version__``
        # would make statesock/__init__ (whose type-only imports reach the client, then the
        # shell, then this module) an import cycle for the layout's rules.
        version = getattr(sys.modules.get("statesock"), "__version__", "")
        meter: Meter = api.get_meter("statesock", version, meter_provider)
        self.observation: type[Observation] = api.Observation
        self._clients: weakref.WeakSet[ClientMetrics] = weakref.WeakSet()
        self._clients_lock = threading.Lock()  # callbacks run in the reader's thread

        def counter(name: str) -> Counter:
            _, unit, description = INSTRUMENTS[name]
            return meter.create_counter(name, unit, description)

        def histogram(name: str, buckets: tuple[float, ...]) -> Histogram:
            _, unit, description = INSTRUMENTS[name]
            try:
                return meter.create_histogram(
                    name, unit, description, explicit_bucket_boundaries_advisory=buckets
                )
            except TypeError:  # an API older than the extra's floor (1.30): default buckets
                return meter.create_histogram(name, unit, description)

        self.state_changes = counter("statesock.state.changes")
        self.disconnections = counter("statesock.disconnections")
        self.reconnect_attempts = counter("statesock.reconnect.attempts")
        self.send_outcomes = counter("statesock.send_buffer.outcomes")
        self.reconnect_duration = histogram("statesock.reconnect.duration", _RECONNECT_BUCKETS)
        self.round_trip = histogram("statesock.health_check.round_trip", _ROUND_TRIP_BUCKETS)
        observed: dict[str, Callable[[CallbackOptions], Iterable[Observation]]] = {
            "statesock.messages": self._messages,
            "statesock.io": self._bytes,
            "statesock.events.dropped": self._dropped,
            "statesock.subscribers.stalled": self._stalled,
            "statesock.clients": self._states,
        }
        for name, callback in observed.items():
            kind, unit, description = INSTRUMENTS[name]
            if kind == "observable_up_down_counter":
                meter.create_observable_up_down_counter(name, [callback], unit, description)
            else:
                meter.create_observable_counter(name, [callback], unit, description)

    def add(self, client: ClientMetrics) -> None:
        with self._clients_lock:
            self._clients.add(client)

    def _live(self) -> list[ClientMetrics]:
        with self._clients_lock:
            return list(self._clients)

    # Observable callbacks: run when a reader collects, in its thread.

    def _messages(self, options: CallbackOptions) -> Iterator[Observation]:
        for client in self._live():
            stats, label = client.stats, client.label
            yield self.observation(stats.messages_received, {CLIENT: label, DIRECTION: "receive"})
            yield self.observation(stats.messages_sent, {CLIENT: label, DIRECTION: "transmit"})

    def _bytes(self, options: CallbackOptions) -> Iterator[Observation]:
        for client in self._live():
            stats, label = client.stats, client.label
            yield self.observation(stats.bytes_received, {CLIENT: label, DIRECTION: "receive"})
            yield self.observation(stats.bytes_sent, {CLIENT: label, DIRECTION: "transmit"})

    def _dropped(self, options: CallbackOptions) -> Iterator[Observation]:
        for client in self._live():
            yield self.observation(client.stats.events_dropped, {CLIENT: client.label})

    def _stalled(self, options: CallbackOptions) -> Iterator[Observation]:
        for client in self._live():
            yield self.observation(client.stats.subscribers_stalled, {CLIENT: client.label})

    def _states(self, options: CallbackOptions) -> Iterator[Observation]:
        for client in self._live():
            current = client.machine.state
            for state in ConnectionState:
                attributes = {CLIENT: client.label, STATE: state.value}
                yield self.observation(int(state is current), attributes)


def _metrics_api() -> ModuleType | None:
    """``opentelemetry.metrics``, imported on first use; None when it is not importable."""
    global _api
    if _api is None:
        try:
            from opentelemetry import metrics as api
        except ImportError:
            api = _NO_API
        _api = api
    return None if _api is _NO_API else _api


def _instruments(api: ModuleType, meter_provider: MeterProvider | None) -> _Instruments:
    """The instruments for ``meter_provider`` (None: the global one), made once each.

    A meter keeps the first callbacks registered under an instrument's name and ignores
    later ones, so one set of instruments per provider is shared by all its clients. The
    global provider's set is made through the API's proxy (it follows a provider set later);
    a provider passed explicitly that is the global one shares that set.
    """
    global _global
    with _lock:
        current = api.get_meter_provider()
        if meter_provider is None or meter_provider is current:
            if _global is None:
                with contextlib.suppress(TypeError):  # TypeError: takes no weak reference
                    _global = _by_provider.get(current)
                _global = _global or _Instruments(api, None)
            return _global
        try:
            found = _by_provider.get(meter_provider)
        except TypeError:  # a provider that takes no weak reference: kept for good
            kept = _kept.get(id(meter_provider))
            if kept is None:
                kept = _kept[id(meter_provider)] = (
                    meter_provider,
                    _Instruments(api, meter_provider),
                )
            return kept[1]
        if found is None:
            found = _by_provider[meter_provider] = _Instruments(api, meter_provider)
        return found
